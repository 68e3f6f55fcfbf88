"""The class book: every student's weeks and notebooks after the late rule, their final grade and
their flags (what needs a look is in `look`, the failure rates in `failures`).

The late rule is the schedule's (`autograder.tools.schedule`); here it is applied. For a coded week:

* ``raw``: the week's score in the latest report that graded it;
* ``handed_in``: when that work was handed in: the push of the first report in the latest run of
  reports with the same results for the week (a later push that changes nothing in the week,
  say work on the next week, is not late work for this one); ``hours_late`` counts from the
  student's deadline (the schedule's, plus their extension);
* ``score``: the best of the last on-time score and, for each report within the late window, its
  score less its penalty. Reports after the window add nothing; work handed in only after it
  earns 0. So pushing late never lowers a grade;
* ``status``: ``on time``, ``late`` (within the window), ``too late`` (after it: not counted),
  ``missing``, or ``no deadline`` (no schedule: the raw score counts).

A notebook (nbgrader) has one submission: its score less the penalty of its timestamp, 0 past
the window. The final grade is 100 × Σ weight × score / maximum over the weighted items, divided
by the sum of the weights; an item with no score counts 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ...weeks import WEEKS
from ..schedule import Schedule, Weights
from .notebooks import Submitted
from .reports import Graded

TITLES = {w.id: w.title for w in WEEKS}


@dataclass
class Person:
    """A student's identifiers in the learning management system (the LMS roster's row)."""

    student: str
    name: str = ""
    lms_id: str = ""
    sis_id: str = ""
    login: str = ""
    email: str = ""
    section: str = ""

    @property
    def identified(self) -> bool:
        return any((self.lms_id, self.sis_id, self.login, self.email))


@dataclass
class Item:
    """One week (``w01``) or notebook (``nb:review``) of one student, after the late rule."""

    key: str
    title: str
    max_score: float
    raw: float | None = None
    on_time: float | None = None
    deadline: datetime | None = None  # this student's: the schedule's plus their extension
    extension_hours: float = 0.0
    handed_in: datetime | None = None
    hours_late: float = 0.0  # of the latest work
    penalty: float = 0.0  # the fraction taken from the work that counts
    score: float | None = None  # what counts
    status: str = "missing"
    commit: str = ""  # the commit whose score counts
    needs_grading: bool = False

    @property
    def late(self) -> bool:
        return self.status in ("late", "too late")

    @property
    def fraction(self) -> float:
        return (self.score or 0.0) / self.max_score if self.max_score else 0.0


@dataclass
class StudentBook:
    student: str
    history: list[Graded]  # oldest first
    weeks: dict[str, Item]
    notebooks: dict[str, Item]  # by assignment name
    person: Person | None = None
    final: float | None = None

    @property
    def latest(self) -> Graded | None:
        with_report = [g for g in self.history if g.report]
        return with_report[-1] if with_report else (self.history[-1] if self.history else None)

    @property
    def items(self) -> dict[str, Item]:
        return {**self.weeks, **{item.key: item for item in self.notebooks.values()}}

    @property
    def total(self) -> float:
        return round(sum(item.score or 0.0 for item in self.weeks.values()), 4)

    @property
    def max_total(self) -> float:
        return sum(item.max_score for item in self.weeks.values())

    @property
    def sandboxed(self) -> bool:
        """True when every report of the student says it was graded in the jail."""
        trusted = [g for g in self.history if g.report]
        return bool(trusted) and all(g.authoritative for g in trusted)

    @property
    def redactions(self) -> int:
        return sum(g.redactions for g in self.history)

    @property
    def grading_errors(self) -> int:
        return sum(1 for g in self.history if g.error)

    @property
    def late_items(self) -> list[Item]:
        return [item for item in self.items.values() if item.late]


@dataclass
class Cause:
    """One reason to look, and who it concerns: (student or None, detail)."""

    title: str
    hint: str
    entries: list[tuple[str | None, str]] = field(default_factory=list)


@dataclass
class ClassBook:
    students: list[StudentBook]
    week_ids: list[str]  # the weeks any report graded, in course order
    assignments: list[str]  # nbgrader assignments
    maxima: dict[str, float]  # per item key
    weights: Weights  # as applied (the schedule's, a file's, or every item the same)
    schedule: Schedule | None
    causes: list[Cause] = field(default_factory=list)


# --------------------------------------------------------------------------- the late rule
def _hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


def _results(week: dict) -> tuple:
    """What a week's results are, test by test: equal results mean the same work."""
    return week.get("score"), tuple((t.get("name"), t.get("status"), t.get("score")) for t in week["tests"])


def week_item(
    history: list[Graded], week_id: str, max_score: float, schedule: Schedule | None, extension: float
) -> Item:
    item = Item(week_id, TITLES.get(week_id, week_id), max_score, extension_hours=extension)
    deadline = schedule.deadline(week_id) if schedule else None
    if deadline is not None:
        item.deadline = deadline + timedelta(hours=extension)
    graded = [g for g in history if g.week(week_id)]
    if not graded:
        return item
    latest = graded[-1]
    item.raw = float(latest.week(week_id)["score"])
    handed = latest
    for g in reversed(graded):
        if _results(g.week(week_id)) != _results(latest.week(week_id)):
            break
        handed = g
    item.handed_in = handed.time
    if item.deadline is None:
        item.score, item.status, item.commit = item.raw, "no deadline", latest.commit
        return item
    item.hours_late = max(0.0, _hours(handed.time - item.deadline))
    on_time = [g for g in graded if g.time <= item.deadline]
    if on_time:
        item.on_time = float(on_time[-1].week(week_id)["score"])
    best: tuple[float, float, str] | None = None  # (points, penalty, commit)
    for g in graded:
        penalty = schedule.late_penalty(_hours(g.time - item.deadline))
        if penalty is None or (g.time <= item.deadline and g is not on_time[-1]):
            continue  # after the window; or on time, but not the last on-time work
        points = round(float(g.week(week_id)["score"]) * (1 - penalty), 4)
        if best is None or points > best[0]:  # a tie keeps the earlier: on time before late
            best = (points, penalty, g.commit)
    item.score, item.penalty, item.commit = best if best else (0.0, 0.0, "")
    if item.hours_late == 0:
        item.status = "on time"
    else:
        item.status = "late" if schedule.late_penalty(item.hours_late) is not None else "too late"
    return item


def notebook_item(sub: Submitted, schedule: Schedule | None, extension: float) -> Item:
    item = Item(f"nb:{sub.assignment}", sub.assignment, sub.max_score, extension_hours=extension)
    item.raw, item.handed_in, item.needs_grading = sub.score, sub.timestamp, sub.needs_grading
    deadline = schedule.deadline(sub.assignment) if schedule else None
    if deadline is None or sub.timestamp is None:
        # No deadline of ours: nbgrader's own due date flags it, and the score counts as it is.
        item.score, item.hours_late = sub.score, _hours(sub.nbgrader_late)
        item.status = "late" if sub.nbgrader_late > timedelta(0) else "no deadline"
        return item
    item.deadline = deadline + timedelta(hours=extension)
    item.hours_late = max(0.0, _hours(sub.timestamp - item.deadline))
    penalty = schedule.late_penalty(item.hours_late)
    if item.hours_late == 0:
        item.on_time = sub.score
    item.status = "on time" if item.hours_late == 0 else ("late" if penalty is not None else "too late")
    item.penalty = penalty or 0.0
    item.score = 0.0 if penalty is None else round(sub.score * (1 - penalty), 4)
    return item


def final_grade(student: StudentBook, weights: Weights) -> float | None:
    """Percent, from the weighted items; None when nothing carries weight."""
    parts = [(w, student.weeks.get(k)) for k, w in weights.weeks.items()]
    parts += [(w, student.notebooks.get(k)) for k, w in weights.notebooks.items()]
    total = sum(w for w, _ in parts)
    if not total:
        return None
    return round(100 * sum(w * item.fraction for w, item in parts if item) / total, 2)


# --------------------------------------------------------------------------- the book
def build_book(
    graded: list[Graded],
    schedule: Schedule | None,
    *,
    notebooks: dict[str, dict[str, Submitted]] | None = None,
    assignments: list[str] | None = None,
    extensions: dict[str, dict[str, float]] | None = None,
    weights: Weights | None = None,
    roster: dict[str, Person] | None = None,
) -> ClassBook:
    notebooks, assignments = notebooks or {}, assignments or []
    extensions, roster = extensions or {}, roster or {}
    seen = {w for g in graded for w in (g.report or {}).get("weeks", {})}
    week_ids = [w.id for w in WEEKS if w.id in seen]
    maxima: dict[str, float] = {}
    for g in graded:
        for week_id, week in (g.report or {}).get("weeks", {}).items():
            maxima[week_id] = max(maxima.get(week_id, 0.0), float(week["max_score"]))
    for subs in notebooks.values():
        for sub in subs.values():
            key = f"nb:{sub.assignment}"
            maxima[key] = max(maxima.get(key, 0.0), sub.max_score)
    if weights is None or weights.empty:
        weights = (schedule.weights if schedule else None) or Weights()
    if weights.empty:
        weights = Weights({w.id: 1.0 for w in WEEKS}, {a: 1.0 for a in assignments})

    history: dict[str, list[Graded]] = {}
    for g in sorted(graded, key=lambda g: g.time):
        history.setdefault(g.student, []).append(g)
    names = set(history) | set(notebooks) | set(roster)
    students = []
    for student in sorted(names, key=lambda s: (s.lower(), s)):
        own = history.get(student, [])
        valid = [g for g in own if g.report]
        granted = extensions.get(student, {})

        def extension(key: str, granted=granted) -> float:
            if key in granted:
                return granted[key]
            try:  # a week's notebook (w01_attention) shares the week's extension
                return granted.get(schedule.item_key(key), 0.0) if schedule else 0.0
            except ValueError:
                return 0.0

        weeks = {w: week_item(valid, w, maxima.get(w, 0.0), schedule, extension(w)) for w in week_ids}
        nbs = {
            name: notebook_item(sub, schedule, extension(name))
            for name, sub in sorted(notebooks.get(student, {}).items())
        }
        book = StudentBook(student, own, weeks, nbs, roster.get(student))
        book.final = final_grade(book, weights)
        students.append(book)
    return ClassBook(students, week_ids, list(assignments), maxima, weights, schedule)
