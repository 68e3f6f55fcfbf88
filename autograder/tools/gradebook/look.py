"""What needs a look: one `Cause` per reason, listing the students it concerns, so that an
instructor of 200 reads a dozen lines rather than one line per student per issue."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from .book import Cause, ClassBook


def _list(keys: list[str]) -> str:
    return ", ".join(keys)


def needs_a_look(
    book: ClassBook,
    skipped: list[str],
    extensions: dict[str, dict[str, float]],
    with_roster: bool,
    now: datetime | None,
) -> list[Cause]:
    """What an instructor should look at, one entry per cause; causes with nobody are left out."""
    causes = [
        Cause("Report files skipped", "not read as grade reports", [(None, s) for s in skipped]),
        Cause("Grading failed", "the grader produced no report; the error is on the student's page"),
        Cause(
            "Not authoritative",
            "graded without the jail at least once: regrade before these grades count",
        ),
        Cause("Messages redacted", "a failure message quoted grader files: worth a look at the code"),
        Cause("Late work", "handed in after the deadline, within the late window: penalised"),
        Cause("Too late", "handed in after the late window: that work earned nothing"),
        Cause("Missing work", "nothing handed in, and the late window has closed"),
        Cause("Notebooks awaiting manual grading", "written answers to grade in nbgrader's formgrader"),
        Cause("Extensions for no one", "the extensions file names a student who has no grades"),
        Cause(
            "Extensions past the solutions",
            "the extended deadline falls after the week's solutions are published",
        ),
        Cause("No LMS identifiers", "not in the LMS roster (or no id there): the LMS cannot match the row"),
    ]
    by_title = {c.title: c for c in causes}
    now = now or datetime.now(UTC)
    for s in book.students:
        who = s.student
        if s.grading_errors:
            last = next(g for g in reversed(s.history) if g.error)
            by_title["Grading failed"].entries.append(
                (who, f"{s.grading_errors} time(s), last at {last.commit[:10] or 'a report'}")
            )
        with_report = [g for g in s.history if g.report]
        unsandboxed = [g for g in with_report if not g.authoritative]
        if unsandboxed:
            by_title["Not authoritative"].entries.append(
                (who, f"{len(unsandboxed)} of {len(with_report)} reports")
            )
        if s.redactions:
            by_title["Messages redacted"].entries.append((who, f"{s.redactions} part(s)"))
        late = [i for i in s.items.values() if i.status == "late"]
        if late:
            by_title["Late work"].entries.append(
                (who, _list([f"{i.key} {i.hours_late:.0f} h (−{i.penalty:.0%})" for i in late]))
            )
        too_late = [i for i in s.items.values() if i.status == "too late"]
        if too_late:
            by_title["Too late"].entries.append(
                (who, _list([f"{i.key} {i.hours_late:.0f} h" for i in too_late]))
            )
        missing = []
        if book.schedule:
            window = book.schedule.late_window
            for week_id, item in s.weeks.items():
                closes = book.schedule.deadline(week_id) + timedelta(hours=item.extension_hours) + window
                if item.status == "missing" and closes < now:
                    missing.append(week_id)
        if not s.history and not s.notebooks:
            missing = ["everything"]
        if missing:
            by_title["Missing work"].entries.append((who, _list(missing)))
        pending = [i.title for i in s.notebooks.values() if i.needs_grading]
        if pending:
            by_title["Notebooks awaiting manual grading"].entries.append((who, _list(pending)))
        if with_roster and not (s.person and s.person.identified):
            by_title["No LMS identifiers"].entries.append(
                (who, "not in the roster" if not s.person else "no id")
            )
    known = {s.student for s in book.students}
    window_h = book.schedule.late_window.total_seconds() / 3600 if book.schedule else math.inf
    for student, granted in sorted(extensions.items()):
        if student not in known:
            by_title["Extensions for no one"].entries.append((None, f"{student}: {_list(sorted(granted))}"))
            continue
        past = [f"{k} +{h:g} h" for k, h in granted.items() if h > window_h]
        if past:
            by_title["Extensions past the solutions"].entries.append((student, _list(past)))
    return [c for c in causes if c.entries]
