"""The term's calendar (`course/schedule.toml`): when each week opens, when it is due, and when
its solutions may be published; what late work costs, each student's extensions, and how much
each week and notebook counts towards the final grade.

One place answers "is this late?" and "what does it earn?" (the gradebook), "which weeks are
open?" (the authoritative grader) and "whose solutions are public yet?" (the solutions branch).

The late rule (``[course]``): work handed in ``h`` hours after its deadline (``h > 0``) loses
``late_penalty_per_day`` of its points for every started day (``ceil(h / 24)`` days), at most
``late_penalty_max``; work handed in more than ``late_window_hours`` after the deadline earns
nothing. Both fractions default to 0: without them late work is flagged, not penalised.

Extensions (`load_extensions`, ``course/extensions.toml``): extra hours per student per week
or notebook assignment. They move that student's deadline, and the late window with it; they do
not move the publication of the solutions (see `Schedule.solutions_due`).

Weights (``[grading.weeks]`` and ``[grading.notebooks]``, or a file of the same two tables):
each item's share of the final grade; the shares are normalised, so only their ratios matter.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..weeks import ROOT, WEEKS, get_week

SCHEDULE = ROOT / "course" / "schedule.toml"
EXTENSIONS = ROOT / "course" / "extensions.toml"


@dataclass(frozen=True)
class Dates:
    id: str  # "w01" for a coded week, the nbgrader assignment id otherwise ("review")
    release: datetime
    deadline: datetime


@dataclass(frozen=True)
class Weights:
    """Shares of the final grade: coded weeks by week id, notebooks by nbgrader assignment name."""

    weeks: dict[str, float] = field(default_factory=dict)
    notebooks: dict[str, float] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.weeks and not self.notebooks


@dataclass(frozen=True)
class Schedule:
    weeks: dict[str, Dates]  # "w01" -> dates
    assignments: dict[str, Dates]  # notebook-only assignments: "review" -> dates
    late_window: timedelta
    late_penalty_per_day: float = 0.0  # fraction of the points lost per started day late
    late_penalty_max: float = 0.0  # the most late work can lose (within the window)
    weights: Weights = field(default_factory=Weights)

    def deadline(self, key: str) -> datetime | None:
        """Deadline of a week (``w01``, ``1``, ``attention``, ``w01_attention``) or an assignment."""
        if key in self.assignments:
            return self.assignments[key].deadline
        try:
            week_id = get_week(key).id
        except KeyError:
            return None
        return self.weeks[week_id].deadline if week_id in self.weeks else None

    def released(self, now: datetime) -> list[str]:
        """Weeks that have opened by ``now``, in course order."""
        return [w for w, d in self.weeks.items() if d.release <= now]

    def solutions_due(self, now: datetime) -> list[str]:
        """Weeks whose deadline and late window have both passed by ``now``."""
        return [w for w, d in self.weeks.items() if d.deadline + self.late_window <= now]

    def is_late(self, key: str, when: datetime) -> bool:
        deadline = self.deadline(key)
        return deadline is not None and when > deadline

    def late_penalty(self, hours_late: float) -> float | None:
        """The fraction of its points that work ``hours_late`` after its deadline loses (0 when
        on time); None past the late window, where it earns nothing."""
        if hours_late <= 0:
            return 0.0
        if hours_late > self.late_window.total_seconds() / 3600:
            return None
        return min(self.late_penalty_per_day * math.ceil(hours_late / 24), self.late_penalty_max)

    def describe_late_rule(self) -> str:
        """The late rule in one sentence, for the gradebook's pages."""
        hours = f"{self.late_window.total_seconds() / 3600:g} h"
        if not self.late_penalty_per_day:
            return f"late work is flagged, not penalised; nothing counts after {hours}"
        return (
            f"late work loses {self.late_penalty_per_day:.0%} per started day, at most "
            f"{self.late_penalty_max:.0%}; nothing counts after {hours}"
        )

    def item_key(self, key: str) -> str:
        """A week in any spelling as its id (``3``, ``positional`` -> ``w03``); an assignment
        of the schedule as it is; ValueError otherwise."""
        if key in self.assignments:
            return key
        try:
            return get_week(key).id
        except KeyError:
            known = ", ".join([*self.weeks, *self.assignments])
            raise ValueError(f"unknown week or assignment {key!r}; expected one of {known}") from None


def _dates(entry: dict, where: str) -> Dates:
    for key in ("id", "release", "deadline"):
        if key not in entry:
            raise ValueError(f"{where}: every entry needs `{key}`")
    release, deadline = entry["release"], entry["deadline"]
    for name, value in (("release", release), ("deadline", deadline)):
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"{where} {entry['id']}: `{name}` must be a TOML datetime with an offset (…Z)")
    if deadline <= release:
        raise ValueError(f"{where} {entry['id']}: the deadline is not after the release")
    return Dates(str(entry["id"]), release, deadline)


def load_schedule(path: Path = SCHEDULE) -> Schedule:
    data = tomllib.loads(Path(path).read_text())
    weeks = {}
    for entry in data.get("weeks", []):
        dates = _dates(entry, str(path))
        weeks[get_week(dates.id).id] = dates
    unknown = [w.id for w in WEEKS if w.id not in weeks]
    if unknown:
        raise ValueError(f"{path}: no dates for {', '.join(unknown)}")
    assignments = {a["id"]: _dates(a, str(path)) for a in data.get("assignments", [])}
    course = data.get("course", {})
    hours = _number(course, "late_window_hours", 0.0, f"{path} [course]")
    per_day = _number(course, "late_penalty_per_day", 0.0, f"{path} [course]", upper=1.0)
    # Without a cap, late work within the window can lose everything.
    most = _number(course, "late_penalty_max", 1.0, f"{path} [course]", upper=1.0)
    weights = parse_weights(data.get("grading", {}), f"{path} [grading]")
    ordered = {w.id: weeks[w.id] for w in WEEKS}
    return Schedule(ordered, assignments, timedelta(hours=hours), per_day, most, weights)


def _number(table: dict, key: str, default: float, where: str, upper: float | None = None) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{where}: `{key}` must be a number of at least 0, not {value!r}")
    if upper is not None and value > upper:
        raise ValueError(f"{where}: `{key}` is a fraction of the points: at most {upper:g}, not {value!r}")
    return float(value)


def parse_weights(table: dict, where: str) -> Weights:
    """``{"weeks": {"w01": 10, …}, "notebooks": {"review": 5}}`` (the ``[grading]`` table of the
    schedule, or a weights file) checked: weeks in any spelling, weights numbers of at least 0."""
    unknown = sorted(set(table) - {"weeks", "notebooks"})
    if unknown:
        raise ValueError(f"{where}: unknown table(s) {', '.join(unknown)}; expected `weeks` and `notebooks`")
    weeks: dict[str, float] = {}
    for key, value in table.get("weeks", {}).items():
        try:
            week_id = get_week(key).id
        except KeyError as exc:
            raise ValueError(f"{where}.weeks: {exc.args[0]}") from None
        weeks[week_id] = _number({key: value}, key, 0.0, f"{where}.weeks")
    notebooks = {
        str(key): _number({key: value}, key, 0.0, f"{where}.notebooks")
        for key, value in table.get("notebooks", {}).items()
    }
    return Weights({w.id: weeks[w.id] for w in WEEKS if w.id in weeks}, notebooks)


def load_weights(path: Path) -> Weights:
    """A weights file: the ``[weeks]`` and ``[notebooks]`` tables, as under ``[grading]``."""
    return parse_weights(tomllib.loads(Path(path).read_text()), str(path))


def load_extensions(path: Path, schedule: Schedule) -> dict[str, dict[str, float]]:
    """``{student: {week id or assignment: extra hours}}`` from a TOML file of one table per
    student (``[ada]`` then ``w03 = 48``); weeks in any spelling become their ids."""
    data = tomllib.loads(Path(path).read_text())
    extensions: dict[str, dict[str, float]] = {}
    for student, entries in data.items():
        if not isinstance(entries, dict):
            raise ValueError(
                f"{path}: `{student}` must be a table of hours per week ([{student}] then w03 = 48)"
            )
        hours: dict[str, float] = {}
        for key, value in entries.items():
            try:
                item = schedule.item_key(key)
            except ValueError as exc:
                raise ValueError(f"{path} [{student}]: {exc}") from None
            hours[item] = _number({key: value}, key, 0.0, f"{path} [{student}]")
        extensions[student] = hours
    return extensions


def parse_time(text: str) -> datetime:
    """``now`` or an ISO 8601 time; a time without an offset is taken as UTC."""
    if text == "now":
        return datetime.now(UTC)
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)
