"""The GitHub REST calls the classroom scripts make, through urllib.

The API base URL is a parameter (``--api-url``, default ``$GITHUB_API_URL`` or
https://api.github.com), so GitHub Enterprise works and the project's tests can point it at a
local server. Tokens go in the Authorization header only and never appear in an error message.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime

DEFAULT_API = "https://api.github.com"
USER_AGENT = "transformer-deep-dive-classroom"


class GitHubError(RuntimeError):
    def __init__(self, status: int, message: str):
        super().__init__(f"GitHub API {status}: {message}")
        self.status = status


def api_url(value: str | None = None) -> str:
    return (value or os.environ.get("GITHUB_API_URL") or DEFAULT_API).rstrip("/")


def check_repository(name: str) -> str:
    """``owner/name`` as GitHub allows it; anything else is refused before it reaches a URL."""
    owner, _, repo = name.partition("/")
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
    if not owner or not repo or "/" in repo or not set(owner + repo) <= allowed or repo in (".", ".."):
        raise ValueError(f"not a GitHub repository name (owner/name): {name!r}")
    return name


def check_sha(sha: str) -> str:
    if len(sha) != 40 or not set(sha) <= set("0123456789abcdef"):
        raise ValueError(f"not a full commit SHA (40 lowercase hex digits): {sha!r}")
    return sha


class GitHub:
    def __init__(self, api: str | None = None, token: str | None = None, timeout: float = 30.0):
        self.api = api_url(api)
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: dict | None = None, retries: int = 2):
        """One API call; JSON in and out. Retries server errors and rate limits briefly."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": USER_AGENT,
        }
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        for attempt in range(retries + 1):
            req = urllib.request.Request(self.api + path, data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    text = resp.read().decode() or "null"
                    return json.loads(text)
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode(errors="replace")[:300]
                if exc.code in (429, 500, 502, 503, 504) and attempt < retries:
                    time.sleep(2**attempt)
                    continue
                try:
                    detail = json.loads(detail).get("message", detail)
                except (ValueError, AttributeError):
                    pass
                raise GitHubError(exc.code, f"{method} {path}: {detail}") from None
            except urllib.error.URLError as exc:
                if attempt < retries:
                    time.sleep(2**attempt)
                    continue
                raise GitHubError(0, f"{method} {path}: {exc.reason}") from None
        raise AssertionError("unreachable")

    # -- the calls we make ------------------------------------------------------------
    def post_status(
        self, repository: str, sha: str, state: str, description: str, context: str, target_url: str | None
    ) -> dict:
        body = {"state": state, "description": description[:140], "context": context}
        if target_url:
            body["target_url"] = target_url
        path = f"/repos/{check_repository(repository)}/statuses/{check_sha(sha)}"
        return self.request("POST", path, body)

    def commit_comment(self, repository: str, sha: str, body: str) -> dict:
        path = f"/repos/{check_repository(repository)}/commits/{check_sha(sha)}/comments"
        return self.request("POST", path, {"body": body[:65000]})

    def repository_dispatch(self, repository: str, event_type: str, payload: dict) -> None:
        path = f"/repos/{check_repository(repository)}/dispatches"
        self.request("POST", path, {"event_type": event_type, "client_payload": payload})

    def pushed_at(self, repository: str, sha: str) -> datetime | None:
        """When GitHub received the push that made ``sha`` a branch head (the repository
        activity log): a time the student cannot forge, unlike the commit's own dates."""
        query = urllib.parse.urlencode({"per_page": 100})
        try:
            events = self.request("GET", f"/repos/{check_repository(repository)}/activity?{query}")
        except GitHubError:
            return None
        times = [
            datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
            for e in events or []
            if isinstance(e, dict) and e.get("after") == sha and e.get("timestamp")
        ]
        return min(times) if times else None
