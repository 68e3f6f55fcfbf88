"""Notebook scores from nbgrader's database: one `Submitted` per student per assignment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path


@dataclass(frozen=True)
class Submitted:
    assignment: str
    score: float
    max_score: float
    timestamp: datetime | None  # when it was collected (the push time for collect-notebooks)
    needs_grading: bool  # written answers still to grade by hand
    nbgrader_late: timedelta  # nbgrader's own lateness, against its own due date


def read_nbgrader(db: Path) -> tuple[dict[str, dict[str, Submitted]], list[str]]:
    """``({student: {assignment: Submitted}}, assignment names in order)``."""
    from nbgrader.api import Gradebook, MissingEntry

    if not db.is_file():  # nbgrader would quietly create an empty one
        raise ValueError(f"no nbgrader database at {db}")
    found: dict[str, dict[str, Submitted]] = {}
    with Gradebook(f"sqlite:///{db.resolve()}") as gb:
        students = [s.id for s in gb.students]
        assignments = sorted(a.name for a in gb.assignments)
        for name in assignments:
            for student in students:
                try:
                    sub = gb.find_submission(name, student)
                except MissingEntry:
                    continue
                found.setdefault(student, {})[name] = Submitted(
                    assignment=name,
                    score=float(sub.score or 0.0),
                    max_score=float(sub.max_score or 0.0),
                    # nbgrader keeps naive UTC times.
                    timestamp=sub.timestamp.replace(tzinfo=UTC) if sub.timestamp else None,
                    needs_grading=bool(sub.needs_manual_grade),
                    nbgrader_late=timedelta(seconds=sub.total_seconds_late or 0),
                )
    return found, assignments
