"""Reading the grader's reports: one `Graded` per report file, whatever its shape.

A report is either what the classroom grader keeps (``<student>/<commit>.json``: student,
repository, commit, time (the push time), graded_at, sandbox, and the `course grade` report under
``report``, or ``error`` when grading could not run; see `autograder.classroom.grading`) or a bare
`course grade --json` report, whose student is then its file name and whose time is the file's.
A kept report's public copy (``<commit>.public.json``) is read only for its count of redactions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path


@dataclass
class Graded:
    student: str
    repository: str
    commit: str
    time: datetime  # when the work was handed in: the push time, else the grading time
    report: dict | None
    error: str | None = None
    sandbox: dict = field(default_factory=dict)
    redactions: int = 0
    source: str = ""
    graded_at: datetime | None = None

    def week(self, week_id: str) -> dict | None:
        return (self.report or {}).get("weeks", {}).get(week_id)

    @property
    def authoritative(self) -> bool:
        # A report that says nothing about its sandbox is not taken on trust.
        return bool(self.sandbox.get("authoritative"))


def _time(text: str | None, fallback: datetime | None) -> datetime | None:
    if not text:
        return fallback
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _redactions(public: Path) -> int:
    if not public.exists():
        return 0
    try:
        return int(json.loads(public.read_text()).get("redactions", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0


def load_reports(paths: list[Path]) -> tuple[list[Graded], list[str]]:
    """The reports in ``paths`` (files, or folders searched recursively), and the files skipped
    with the reason."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*.json") if not p.name.endswith(".public.json"))
        elif path.is_file():
            files.append(path)
    graded, skipped = [], []
    for path in files:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            skipped.append(f"{path}: {exc}")
            continue
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        try:
            if isinstance(data, dict) and "student" in data and "report" in data:
                graded_at = _time(data.get("graded_at"), None)
                graded.append(
                    Graded(
                        student=str(data["student"]),
                        repository=str(data.get("repository") or ""),
                        commit=str(data.get("commit") or ""),
                        time=_time(data.get("time"), graded_at or mtime),
                        report=data["report"],
                        error=data.get("error"),
                        sandbox=data.get("sandbox") or {},
                        redactions=_redactions(path.with_name(path.stem + ".public.json")),
                        source=str(path),
                        graded_at=graded_at,
                    )
                )
            elif isinstance(data, dict) and data.get("schema_version") == 1 and "weeks" in data:
                graded.append(
                    Graded(
                        path.stem, "", "", mtime, data, sandbox=data.get("sandbox") or {}, source=str(path)
                    )
                )
            else:
                skipped.append(f"{path}: not a grade report")
        except (ValueError, TypeError) as exc:  # a time that is not ISO 8601, a sandbox not a table
            skipped.append(f"{path}: {exc}")
    return graded, skipped
