"""Telling students their grade: a sanitised report on the commit, and a commit status linking it.

For each new report: the public copy (`sanitize`) is written beside it (``<commit>.public.json``
and ``.md``), posted as a comment on the student's commit (the student can read it; the
instructor's repository stays private), and a commit status ``course/grade`` with the score
links to that comment.

The status is a notification. Anyone with write access to a repository can set statuses on it,
students included, so the gradebook never reads statuses: it reads the reports this grader kept.
"""

from __future__ import annotations

import json
from pathlib import Path

from .github import GitHub, GitHubError
from .sanitize import sanitize, secret_lines, status_line, to_markdown

CONTEXT = "course/grade"


def write_public(report_path: Path, secret: set[str]) -> dict:
    wrapper = json.loads(report_path.read_text())
    public = sanitize(wrapper, secret)
    stem = report_path.with_suffix("")
    stem.with_suffix(".public.json").write_text(json.dumps(public, indent=2) + "\n")
    stem.with_suffix(".public.md").write_text(to_markdown(public))
    return public


def post(
    report_paths: list[Path], github: GitHub, *, link: str = "comment", context: str = CONTEXT
) -> list[str]:
    """Posts every report; returns one line per problem (a failed post does not stop the rest)."""
    secret = secret_lines()
    problems = []
    for path in report_paths:
        public = write_public(path, secret)
        repo, sha = public["repository"], public["commit"]
        state, description = status_line(public)
        try:
            target = None
            if link == "comment":
                target = github.commit_comment(repo, sha, to_markdown(public)).get("html_url")
            github.post_status(repo, sha, state, description, context, target)
            print(f"{public['student']} @ {sha[:10]}: {state}: {description}")
        except (GitHubError, ValueError) as exc:
            problems.append(f"{public['student']} @ {sha[:10]}: {exc}")
    return problems


def new_reports(folder: Path) -> list[Path]:
    """The report files of a folder written by `grading` (not their public copies)."""
    return sorted(p for p in folder.rglob("*.json") if not p.name.endswith(".public.json"))
