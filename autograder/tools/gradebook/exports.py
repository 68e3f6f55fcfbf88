"""The gradebook's CSV files: the class at a glance, the details, failure rates, and the files
Canvas and Moodle import.

Canvas (Grades → Import): the leading columns are those of Canvas's own gradebook export,
``Student, ID, SIS User ID, SIS Login ID, Section`` (Canvas matches a row by ``ID``, its own user
id, else by ``SIS User ID`` or ``SIS Login ID``); then one column per assignment, whose title
Canvas matches to an assignment of that name or creates one; the second row, ``Points Possible``,
gives each assignment's maximum, as in Canvas's export. Scores are points after the late rule;
a missing score is left blank (ungraded), and ``Final grade (%)`` is an assignment of 100 points.

Moodle (Grade administration → Import → CSV file): any header row; at import you map one column
to the user (``Email address`` to email, ``Username`` to username or ``ID number`` to ID number)
and each other column to a grade item, or to a new grade item. Moodle's file has no maxima and a
new grade item's maximum is 100, so every score is a percentage of its item's maximum.

Text cells pass through `messages.csv_cell` (no spreadsheet formula).
"""

from __future__ import annotations

import csv
from pathlib import Path

from ... import messages
from .book import TITLES, ClassBook, Item, Person, StudentBook

ROSTER_COLUMNS = ("student", "name", "lms_id", "sis_id", "login", "email", "section")
CANVAS_LEADING = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
MOODLE_LEADING = ("Email address", "Username", "ID number", "Full name")
FINAL = "Final grade (%)"


def number(value: float | None) -> str:
    """A score for a CSV cell: blank for none, at most two decimals, no trailing zeros."""
    return "" if value is None else f"{round(value, 2):g}"


def text(value: object) -> str:
    return messages.csv_cell(value)


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def load_roster(path: Path) -> dict[str, Person]:
    """The LMS roster: a CSV with a ``student`` column (the id in the reports) and any of
    ``name, lms_id, sis_id, login, email, section``; other columns are ignored, so
    ``course/roster.csv`` with these columns added will do."""
    with open(path, newline="", encoding="utf-8-sig") as fh:  # utf-8-sig: a spreadsheet's BOM
        reader = csv.DictReader(fh)
        if "student" not in (reader.fieldnames or []):
            raise ValueError(f"{path}: the LMS roster needs a `student` column ({', '.join(ROSTER_COLUMNS)})")
        people: dict[str, Person] = {}
        for line, row in enumerate(reader, start=2):
            student = (row.get("student") or "").strip()
            if not student:
                continue
            if student in people:
                raise ValueError(f"{path}, line {line}: {student} is listed twice")
            people[student] = Person(**{c: (row.get(c) or "").strip() for c in ROSTER_COLUMNS})
    return people


# --------------------------------------------------------------------------- our own files
def _items(book: ClassBook) -> list[str]:
    return [*book.week_ids, *(f"nb:{a}" for a in book.assignments)]


def gradebook_csv(book: ClassBook, path: Path) -> None:
    """One row per student: final grade, points in the weeks, each week and notebook after the
    late rule, which items were late, and the flags."""
    items = _items(book)
    header = ["student", "name", "final", "total", "max_score", *items]
    header += ["late", "sandboxed", "grading_errors", "redactions"]
    rows = []
    for s in book.students:
        scores = s.items
        rows.append(
            [
                text(s.student),
                text(s.person.name if s.person else ""),
                number(s.final),
                number(s.total),
                number(s.max_total),
                *(number(scores[k].score) if k in scores else "" for k in items),
                " ".join(i.key for i in s.late_items),
                "yes" if s.sandboxed else "no",
                str(s.grading_errors),
                str(s.redactions),
            ]
        )
    write_csv(path, header, rows)


def _weight(book: ClassBook, item: Item) -> float:
    if item.key.startswith("nb:"):
        return book.weights.notebooks.get(item.key[3:], 0.0)
    return book.weights.weeks.get(item.key, 0.0)


def _when(value) -> str:
    return value.isoformat(timespec="seconds") if value else ""


def details_csv(book: ClassBook, path: Path) -> None:
    """One row per student per week or notebook: how the late rule arrived at the score."""
    header = [
        "student",
        "item",
        "title",
        "status",
        "raw",
        "max_score",
        "on_time",
        "deadline",
        "extension_hours",
        "handed_in",
        "hours_late",
        "penalty",
        "score",
        "weight",
        "commit",
        "needs_grading",
    ]
    rows = []
    for s in book.students:
        for item in s.items.values():
            rows.append(
                [
                    text(s.student),
                    item.key,
                    text(item.title),
                    item.status,
                    number(item.raw),
                    number(item.max_score),
                    number(item.on_time),
                    _when(item.deadline),
                    number(item.extension_hours),
                    _when(item.handed_in),
                    f"{item.hours_late:.1f}" if item.handed_in else "",
                    number(item.penalty),
                    number(item.score),
                    number(_weight(book, item)),
                    item.commit,
                    "yes" if item.needs_grading else "",
                ]
            )
    write_csv(path, header, rows)


def failures_csv(failures: list[dict], path: Path) -> None:
    columns = [
        "week",
        "test",
        "hidden",
        "points",
        "students",
        "failed",
        "failure_rate",
        "most_common_message",
    ]
    write_csv(path, columns, [[str(r[c]) for c in columns] for r in failures])


# --------------------------------------------------------------------------- LMS files
def item_title(book: ClassBook, key: str) -> str:
    """An item's column title in the LMS files: stable from term to term, so that a second import
    updates the assignments the first one created."""
    if key.startswith("nb:"):
        return f"Notebook {key[3:]}"
    return f"{key} {TITLES.get(key, '')}".strip()


def _person(s: StudentBook) -> Person:
    return s.person or Person(s.student)


def canvas_csv(book: ClassBook, path: Path) -> None:
    items = _items(book)
    header = [*CANVAS_LEADING, *(item_title(book, k) for k in items), FINAL]
    possible = ["Points Possible", "", "", "", "", *(number(book.maxima.get(k, 0.0)) for k in items), "100"]
    rows = [possible]
    for s in book.students:
        p, scores = _person(s), s.items
        rows.append(
            [
                text(p.name or s.student),
                text(p.lms_id),
                text(p.sis_id),
                text(p.login),
                text(p.section),
                *(number(scores[k].score) if k in scores else "" for k in items),
                number(s.final),
            ]
        )
    write_csv(path, header, rows)


def moodle_csv(book: ClassBook, path: Path) -> None:
    items = _items(book)
    header = [*MOODLE_LEADING, *(f"{item_title(book, k)} (%)" for k in items), FINAL]
    rows = []
    for s in book.students:
        p, scores = _person(s), s.items
        percents = []
        for k in items:
            item = scores.get(k)
            has_score = item is not None and item.score is not None and item.max_score
            percents.append(number(100 * item.fraction) if has_score else "")
        rows.append(
            [
                text(p.email),
                text(p.login),
                text(p.sis_id),
                text(p.name or s.student),
                *percents,
                number(s.final),
            ]
        )
    write_csv(path, header, rows)
