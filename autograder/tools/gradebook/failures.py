"""Per test, how many students' latest reports failed it (``test_failures.csv``, the hardest
tests on the class page)."""

from __future__ import annotations

from collections import Counter

from ... import messages
from ...weeks import WEEKS
from .book import ClassBook


def failure_rates(book: ClassBook) -> list[dict]:
    """Per test, how many students' latest reports ran it and failed it, and the commonest
    message (cleaned: one line, no formula)."""
    stats: dict[tuple, dict] = {}
    for s in book.students:
        latest = s.latest
        if not latest or not latest.report:
            continue
        for week_id, week in latest.report["weeks"].items():
            for t in week["tests"]:
                entry = stats.setdefault(
                    (week_id, t["name"]),
                    {
                        "hidden": t.get("hidden", ""),
                        "points": t["max_score"],
                        "n": 0,
                        "failed": 0,
                        "messages": Counter(),
                    },
                )
                entry["n"] += 1
                if t["status"] != "passed":
                    entry["failed"] += 1
                    entry["messages"][messages.csv_cell(t.get("message") or t["status"]) or t["status"]] += 1
    rows = []
    for (week_id, name), e in stats.items():
        top = e["messages"].most_common(1)
        rows.append(
            {
                "week": week_id,
                "test": name,
                "hidden": e["hidden"],
                "points": e["points"],
                "students": e["n"],
                "failed": e["failed"],
                "failure_rate": round(e["failed"] / e["n"], 3) if e["n"] else 0.0,
                "most_common_message": top[0][0] if top else "",
            }
        )
    order = {w.id: i for i, w in enumerate(WEEKS)}
    rows.sort(key=lambda r: (order.get(r["week"], 99), -r["failure_rate"], r["test"]))
    return rows
