"""The term's calendar (`course/schedule.toml`): when each week opens, when it is due, and when
its solutions may be published.

One place answers "is this late?" (the gradebook), "which weeks are open?" (the authoritative
grader) and "whose solutions are public yet?" (the solutions branch).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .weeks import ROOT, WEEKS, get_week

SCHEDULE = ROOT / "course" / "schedule.toml"


@dataclass(frozen=True)
class Dates:
    id: str  # "w01" for a coded week, the nbgrader assignment id otherwise ("review")
    release: datetime
    deadline: datetime


@dataclass(frozen=True)
class Schedule:
    weeks: dict[str, Dates]  # "w01" -> dates
    assignments: dict[str, Dates]  # notebook-only assignments: "review" -> dates
    late_window: timedelta

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


def _dates(entry: dict, where: str) -> Dates:
    for field in ("id", "release", "deadline"):
        if field not in entry:
            raise ValueError(f"{where}: every entry needs `{field}`")
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
    hours = float(data.get("course", {}).get("late_window_hours", 0))
    ordered = {w.id: weeks[w.id] for w in WEEKS}
    return Schedule(ordered, assignments, timedelta(hours=hours))


def parse_time(text: str) -> datetime:
    """``now`` or an ISO 8601 time; a time without an offset is taken as UTC."""
    if text == "now":
        return datetime.now(UTC)
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)
