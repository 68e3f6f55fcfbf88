"""A class split into shards, one grading job each: GitHub Actions is the distributed engine.

`grade.yml` asks `plan` how many shards this run needs (one per ``per_shard`` students, at most
``max_shards``: a hosted runner grades a few students a minute, and an organisation runs a
bounded number of jobs at once), runs one matrix job per shard, and each job grades
`select(roster, index, count)`: every ``count``-th student of the roster starting at ``index``.
A shard that fails loses only its own students, and the next run grades them again: the
scheduled pass fetches every roster repository whose head has no report yet.
"""

from __future__ import annotations

import math

from .roster import Student, find_student


def plan(
    roster: list[Student], *, repository: str | None = None, per_shard: int = 25, max_shards: int = 20
) -> int:
    """How many shards to grade ``roster`` in (one when a single repository is asked for;
    zero when that repository is not on the roster)."""
    if repository:
        return 1 if find_student(roster, repository) else 0
    if not roster:
        return 0
    return max(1, min(max_shards, math.ceil(len(roster) / max(1, per_shard))))


def select(roster: list[Student], index: int, count: int) -> list[Student]:
    """The students of shard ``index`` of ``count``: round robin over the roster, so shards
    differ by at most one student and a roster's order does not pile the work on one shard."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index} of {count} does not exist (shards are numbered 0 to count-1)")
    return roster[index::count]


def parse(spec: str) -> tuple[int, int]:
    """``"2/8"`` -> (2, 8)."""
    index, _, count = spec.partition("/")
    try:
        return int(index), int(count)
    except ValueError:
        raise ValueError(f"--shard wants INDEX/COUNT (e.g. 0/4), got {spec!r}") from None
