"""Support for the classroom tests: a private copy of the course, a stand-in for the GitHub API
on loopback, git helpers, and an independent scan for leaked course material."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.helpers import ROOT

GIT_ID = ["-c", "user.name=Test Student", "-c", "user.email=student@example.invalid"]


def copy_course(dest: Path) -> Path:
    """What `course release` reads, as committed (HEAD): a clean checkout, as CI and an
    instructor releasing would have, without work in progress and with nbgrader's files kept
    out of the repository."""
    dest.mkdir(parents=True)
    paths = ["autograder", "exercises", "solutions", "course", "datasets", "pyproject.toml"]
    tracked = subprocess.run(
        ["git", "ls-tree", "--name-only", "HEAD", *paths], cwd=ROOT, capture_output=True, text=True
    )
    archive = subprocess.run(
        ["git", "archive", "--format=tar", "HEAD", *tracked.stdout.split()],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def git(cwd: Path, *args: str, env: dict | None = None) -> str:
    proc = subprocess.run(["git", *GIT_ID, *args], cwd=cwd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


# --------------------------------------------------------------------------- leak scan
MARKER_LINE = re.compile(r"^\s*(#+|=+)\s*(BEGIN|END) (SOLUTION|HIDDEN TESTS|MARK SCHEME)")
NOTEBOOK_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "BEGIN MARK SCHEME")


def public_text(root: Path = ROOT) -> str:
    """Every line students are given anyway: the stubs `course sync` makes, the public tests and
    the engine (without its hidden suites)."""
    from autograder.tools.sync import plan

    texts = list(plan(root).values())
    texts += [p.read_text() for p in (root / "exercises" / "tests").rglob("*.py")]
    texts += [p.read_text() for p in (root / "autograder").rglob("*.py") if "suites" not in p.parts]
    return "\n".join(line.strip() for text in texts for line in text.splitlines())


def solution_region_lines(root: Path = ROOT, min_len: int = 25) -> set[str]:
    """Distinctive lines from inside the reference's solution regions."""
    lines: set[str] = set()
    for path in (root / "solutions").rglob("*.py"):
        inside = False
        for line in path.read_text().splitlines():
            text = line.strip()
            if text == "### BEGIN SOLUTION":
                inside = True
            elif text == "### END SOLUTION":
                inside = False
            elif inside and len(text) >= min_len and not text.startswith("#"):
                lines.add(text)
    public = public_text(root)
    return {line for line in lines if line not in public}


def hidden_suite_lines(root: Path = ROOT, min_len: int = 30) -> set[str]:
    """Distinctive lines of the hidden suites: code, not comments or docstring text."""
    lines = set()
    for path in (root / "autograder" / "suites").rglob("*.py"):
        for line in path.read_text().splitlines():
            text = line.strip()
            if len(text) >= min_len and ("(" in text or "=" in text) and not text.startswith("#"):
                lines.add(text)
    public = public_text(root)
    return {line for line in lines if line not in public}


def leaks(tree: Path, solution_lines: set[str], hidden_lines: set[str], copied: int = 5) -> list[str]:
    """Files of ``tree`` holding marked regions, notebook outputs, any line of the reference's
    solution regions, or a copy of hidden tests (``copied`` or more of their lines: a notebook
    may share an idiom or two with a hidden test, such as building a causal mask)."""
    found = []
    for path in sorted(p for p in tree.rglob("*") if p.is_file() and ".git" not in p.relative_to(tree).parts):
        rel = path.relative_to(tree)
        data = path.read_bytes()
        if b"\0" in data[:4096]:
            continue
        text = data.decode(errors="replace")
        if path.suffix == ".ipynb":
            for i, cell in enumerate(json.loads(text)["cells"]):
                source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                found += [f"{rel} cell {i}: {m}" for m in NOTEBOOK_MARKERS if m in source]
                if cell.get("outputs") or cell.get("execution_count"):
                    found.append(f"{rel} cell {i}: outputs")
        for no, line in enumerate(text.splitlines(), 1):
            if MARKER_LINE.match(line):
                found.append(f"{rel}:{no}: marker {line.strip()}")
        found += [f"{rel}: reference line {s[:60]!r}" for s in solution_lines if s in text]
        hidden = [s for s in hidden_lines if s in text]
        if len(hidden) >= copied:
            found.append(f"{rel}: {len(hidden)} lines of the hidden tests, e.g. {hidden[0][:60]!r}")
    return found


# --------------------------------------------------------------------------- GitHub on loopback
class FakeGitHub:
    """Records the REST calls the classroom scripts make; answers like GitHub's API would."""

    def __init__(self, token: str = "test-token", login: str = "course-grader-bot"):
        self.token = token
        self.login = login  # the account the token belongs to: the creator of its statuses
        self.calls: list[dict] = []
        self.posted: dict[str, list[dict]] = {}  # sha -> statuses, newest first
        self.pushes: dict[str, list[dict]] = {}  # "owner/name" -> activity entries
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, code: int, body=None):
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                call = {
                    "method": method,
                    "path": self.path,
                    "body": body,
                    "auth": self.headers.get("Authorization"),
                }
                fake.calls.append(call)
                if call["auth"] != f"Bearer {fake.token}":
                    return self._reply(401, {"message": "Bad credentials"})
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts[0] != "repos" or len(parts) < 4:
                    return self._reply(404, {"message": "Not Found"})
                repo = f"{parts[1]}/{parts[2]}"
                if method == "GET" and parts[3] == "activity":
                    return self._reply(200, fake.pushes.get(repo, []))
                if method == "POST" and parts[3] == "statuses":
                    status = {**body, "creator": {"login": fake.login}}
                    fake.posted.setdefault(parts[4], []).insert(0, status)
                    return self._reply(201, {"state": body["state"], "context": body["context"]})
                if method == "GET" and parts[3] == "commits" and parts[-1] == "statuses":
                    return self._reply(200, fake.posted.get(parts[4], []))
                if method == "POST" and parts[3] == "commits" and parts[-1] == "comments":
                    n = len(fake.comments())
                    return self._reply(
                        201, {"html_url": f"https://github.test/{repo}/commit/{parts[4]}#r{n}"}
                    )
                if method == "POST" and parts[3] == "dispatches":
                    return self._reply(204)
                return self._reply(404, {"message": "Not Found"})

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def _posts(self, kind: str) -> list[dict]:
        return [
            c
            for c in self.calls
            if c["method"] == "POST" and kind in c["path"] and c["auth"] == f"Bearer {self.token}"
        ]

    def statuses(self) -> list[dict]:
        return self._posts("/statuses/")

    def comments(self) -> list[dict]:
        return self._posts("/comments")

    def dispatches(self) -> list[dict]:
        return self._posts("/dispatches")
