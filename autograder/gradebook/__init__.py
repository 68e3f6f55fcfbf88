"""`course gradebook`: the class at a glance, from the grader's reports (and nbgrader's database).

Input: report files or folders of them. A report is either what the classroom grader keeps
(``<student>/<commit>.json``: student, repository, commit, time, … and the `course grade` report
under ``report``) or a bare `course grade --json` report, whose student is then its file name.

Output, in ``--out``:

* ``gradebook.csv``: one row per student from their latest report: commit, time, total, and per
  week the score, the score as of the deadline (``wNN_ontime``) and a late flag (the score
  changed after the deadline); then each notebook assignment from nbgrader.
* ``test_failures.csv``: per test, how many students' latest reports failed it.
* ``score_histogram.png``: total scores, and the mean per week.
* ``summary.html``: all of it on one page, with what needs a look (grading errors, runs without
  the sandbox, redacted messages, late work, notebooks awaiting manual grading).
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import statistics
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from . import messages
from .schedule import SCHEDULE, Schedule, load_schedule
from .weeks import WEEKS


@dataclass
class Graded:
    student: str
    repository: str
    commit: str
    time: datetime
    report: dict | None
    error: str | None = None
    sandbox: dict = field(default_factory=dict)
    redactions: int = 0
    source: str = ""

    def week(self, week_id: str) -> dict | None:
        return (self.report or {}).get("weeks", {}).get(week_id)


def _time(text: str | None, fallback: datetime) -> datetime:
    if not text:
        return fallback
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def load_reports(paths: list[Path]) -> tuple[list[Graded], list[str]]:
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
        if isinstance(data, dict) and "student" in data and "report" in data:
            public = path.with_name(path.stem + ".public.json")
            redactions = json.loads(public.read_text()).get("redactions", 0) if public.exists() else 0
            graded.append(
                Graded(
                    student=data["student"],
                    repository=data.get("repository", ""),
                    commit=data.get("commit", ""),
                    time=_time(data.get("time") or data.get("graded_at"), mtime),
                    report=data["report"],
                    error=data.get("error"),
                    sandbox=data.get("sandbox") or {},
                    redactions=redactions,
                    source=str(path),
                )
            )
        elif isinstance(data, dict) and data.get("schema_version") == 1 and "weeks" in data:
            graded.append(
                Graded(path.stem, "", "", mtime, data, sandbox=data.get("sandbox") or {}, source=str(path))
            )
        else:
            skipped.append(f"{path}: not a grade report")
    return graded, skipped


# --------------------------------------------------------------------------- the gradebook
def _score(g: Graded | None, week_id: str):
    week = g.week(week_id) if g else None
    return week["score"] if week else None


def week_rows(graded: list[Graded], schedule: Schedule | None) -> tuple[list[dict], list[str]]:
    """One row per student (their latest report), and the week ids that appear anywhere."""
    by_student: dict[str, list[Graded]] = defaultdict(list)
    for g in graded:
        by_student[g.student].append(g)
    seen = {w for g in graded for w in (g.report or {}).get("weeks", {})}
    week_ids = [w.id for w in WEEKS if w.id in seen]
    rows = []
    for student in sorted(by_student, key=str.lower):
        history = sorted(by_student[student], key=lambda g: g.time)
        valid = [g for g in history if g.report] or history
        latest = valid[-1]
        row = {
            "student": student,
            "repository": latest.repository,
            "commit": latest.commit,
            "time": latest.time.isoformat(timespec="seconds"),
            "total": latest.report["score"] if latest.report else "",
            "max_score": latest.report["max_score"] if latest.report else "",
        }
        late_weeks = []
        for week_id in week_ids:
            now = _score(latest, week_id)
            deadline = schedule.deadline(week_id) if schedule else None
            on_time = now
            late = False
            if deadline is not None:
                before = [g for g in valid if g.time <= deadline and g.report]
                on_time = _score(before[-1], week_id) if before else None
                late = latest.time > deadline and now is not None and now != (on_time or 0)
            row[week_id] = "" if now is None else now
            row[f"{week_id}_ontime"] = "" if on_time is None else on_time
            row[f"{week_id}_late"] = "late" if late else ""
            if late:
                late_weeks.append(week_id)
        row["late"] = " ".join(late_weeks)
        row["reports"] = len(history)
        # "yes" only when every report of the student says it was graded in the jail as the
        # sandbox user: a report that says nothing about its sandbox is not taken on trust.
        trusted = [g for g in history if g.report]
        row["sandboxed"] = "yes" if trusted and all(g.sandbox.get("authoritative") for g in trusted) else "no"
        row["redactions"] = sum(g.redactions for g in history)
        row["grading_errors"] = sum(1 for g in history if g.error)
        rows.append(row)
    return rows, week_ids


def nbgrader_rows(db: Path, schedule: Schedule | None) -> tuple[dict[str, dict], list[str]]:
    """{student: {"nb:<assignment>": score, "nb:<assignment>_late": …, …}} from nbgrader's database."""
    from nbgrader.api import Gradebook, MissingEntry

    if not db.is_file():  # nbgrader would quietly create an empty one
        raise ValueError(f"no nbgrader database at {db}")
    out: dict[str, dict] = defaultdict(dict)
    columns: list[str] = []
    with Gradebook(f"sqlite:///{db.resolve()}") as gb:
        students = [s.id for s in gb.students]
        for assignment in sorted(gb.assignments, key=lambda a: a.name):
            name = assignment.name
            columns += [f"nb:{name}", f"nb:{name}_max", f"nb:{name}_late", f"nb:{name}_needs_grading"]
            deadline = schedule.deadline(name) if schedule else None
            for student in students:
                try:
                    sub = gb.find_submission(name, student)
                except MissingEntry:
                    continue
                when = sub.timestamp.replace(tzinfo=UTC) if sub.timestamp else None
                late = (when is not None and deadline is not None and when > deadline) or (
                    deadline is None and (sub.total_seconds_late or 0) > 0
                )
                out[student].update(
                    {
                        f"nb:{name}": sub.score,
                        f"nb:{name}_max": sub.max_score,
                        f"nb:{name}_late": "late" if late else "",
                        f"nb:{name}_needs_grading": "yes" if sub.needs_manual_grade else "",
                    }
                )
    return out, columns


def failure_rates(graded: list[Graded]) -> list[dict]:
    latest: dict[str, Graded] = {}
    for g in sorted(graded, key=lambda g: g.time):
        if g.report:
            latest[g.student] = g
    stats: dict[tuple, dict] = {}
    for g in latest.values():
        for week_id, week in g.report["weeks"].items():
            for t in week["tests"]:
                key = (week_id, t["name"])
                entry = stats.setdefault(
                    key,
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
                    # Student text: cleaned, one line, no spreadsheet formula (HTML-escaped in _table).
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


# --------------------------------------------------------------------------- outputs
def _write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})


def _percent(row: dict) -> float | None:
    if row.get("max_score") in ("", None, 0):
        return None
    return 100.0 * float(row["total"]) / float(row["max_score"])


def plot(rows: list[dict], week_ids: list[str], maxima: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    totals = [p for p in (_percent(r) for r in rows) if p is not None]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    left.hist(totals, bins=[i * 5 for i in range(21)], color="#4c72b0", edgecolor="white")
    left.set(
        xlabel="total score (% of the points so far)",
        ylabel="students",
        title=f"Scores ({len(totals)} students)",
    )
    means = []
    for w in week_ids:
        values = [float(r[w]) for r in rows if r.get(w) not in ("", None)]
        means.append(100.0 * statistics.mean(values) / maxima[w] if values and maxima.get(w) else 0.0)
    right.bar(week_ids, means, color="#55a868")
    right.set(ylim=(0, 100), ylabel="mean score (%)", title="Mean score per week")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def week_maxima(graded: list[Graded]) -> dict[str, float]:
    maxima: dict[str, float] = {}
    for g in graded:
        for week_id, week in (g.report or {}).get("weeks", {}).items():
            maxima[week_id] = max(maxima.get(week_id, 0.0), float(week["max_score"]))
    return maxima


def _table(rows: list[dict], columns: list[str], highlight: str = "") -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c, "")
            cls = ' class="flag"' if value == "late" or (c == highlight and value) else ""
            cells.append(f"<td{cls}>{esc(str(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def summary_html(rows, columns, week_ids, maxima, failures, notes: list[str], generated: datetime) -> str:
    stats = []
    for w in week_ids:
        values = [float(r[w]) for r in rows if r.get(w) not in ("", None)]
        if not values:
            continue
        stats.append(
            {
                "week": w,
                "max": f"{maxima.get(w, 0):g}",
                "students": len(values),
                "mean": f"{statistics.mean(values):.1f}",
                "median": f"{statistics.median(values):g}",
                "full marks": sum(v == maxima.get(w) for v in values),
                "late": sum(r.get(f"{w}_late") == "late" for r in rows),
            }
        )
    hardest = sorted(failures, key=lambda r: -r["failure_rate"])[:15]
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes) or "<li>nothing</li>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Gradebook: Transformer Deep Dive</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }}
th {{ background: #f3f3f3; }}
td.flag {{ background: #fde2e1; }}
</style></head><body>
<h1>Gradebook: Transformer Deep Dive</h1>
<p>{len(rows)} students · generated {html.escape(generated.isoformat(timespec="seconds"))}</p>
<h2>Needs a look</h2><ul>{notes_html}</ul>
<h2>Per week</h2>
{_table(stats, ["week", "max", "students", "mean", "median", "full marks", "late"])}
<img src="score_histogram.png" alt="histogram of total scores and mean score per week">
<h2>Hardest tests</h2>
{_table(hardest, ["week", "test", "hidden", "points", "students", "failed", "failure_rate", "most_common_message"])}
<h2>Students</h2>
{_table(rows, columns, highlight="redactions")}
</body></html>
"""


def build(
    reports: list[Path], out: Path, *, nbgrader_db: Path | None = None, schedule: Schedule | None = None
) -> dict:
    """Writes the gradebook files to ``out``; returns a summary of what it found."""
    graded, skipped = load_reports(reports)
    if not graded and nbgrader_db is None:
        raise ValueError("no grade reports found")
    out.mkdir(parents=True, exist_ok=True)
    rows, week_ids = week_rows(graded, schedule)
    columns = ["student", "repository", "commit", "time", "total", "max_score"]
    for w in week_ids:
        columns += [w, f"{w}_ontime", f"{w}_late"]
    columns += ["late", "reports", "sandboxed", "redactions", "grading_errors"]
    if nbgrader_db is not None:
        notebooks, nb_columns = nbgrader_rows(nbgrader_db, schedule)
        by_student = {r["student"]: r for r in rows}
        for student, values in notebooks.items():
            if student not in by_student:
                by_student[student] = {"student": student}
                rows.append(by_student[student])
            by_student[student].update(values)
        rows.sort(key=lambda r: r["student"].lower())
        columns += nb_columns
    _write_csv(out / "gradebook.csv", rows, columns)
    failures = failure_rates(graded)
    _write_csv(
        out / "test_failures.csv",
        failures,
        ["week", "test", "hidden", "points", "students", "failed", "failure_rate", "most_common_message"],
    )
    maxima = week_maxima(graded)
    plot(rows, week_ids, maxima, out / "score_histogram.png")
    notes = [f"skipped {s}" for s in skipped]
    for r in rows:
        if r.get("grading_errors"):
            notes.append(f"{r['student']}: grading failed {r['grading_errors']} time(s); see their reports")
        if r.get("sandboxed") == "no":
            notes.append(f"{r['student']}: graded without the sandbox at least once (not authoritative)")
        if r.get("redactions"):
            notes.append(
                f"{r['student']}: {r['redactions']} message part(s) redacted (grader source in a message)"
            )
        if r.get("late"):
            notes.append(f"{r['student']}: late work in {r['late']}")
        pending = [
            c.removeprefix("nb:").removesuffix("_needs_grading")
            for c, v in r.items()
            if c.endswith("_needs_grading") and v
        ]
        if pending:
            notes.append(f"{r['student']}: notebooks awaiting manual grading: {', '.join(pending)}")
    generated = datetime.now(UTC)
    (out / "summary.html").write_text(
        summary_html(rows, columns, week_ids, maxima, failures, notes, generated)
    )
    return {"students": len(rows), "reports": len(graded), "skipped": skipped, "notes": notes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="course gradebook",
        description="Class gradebook (CSV, per-test failure rates, histogram, HTML) from grade reports.",
    )
    parser.add_argument("reports", nargs="+", help="report files or folders (searched recursively)")
    parser.add_argument("--nbgrader-db", help="nbgrader's gradebook.db, for the notebook scores")
    parser.add_argument(
        "--schedule", help="deadlines for late flags (default: course/schedule.toml where it exists)"
    )
    parser.add_argument("--out", required=True, help="output folder")
    args = parser.parse_args(argv)
    if args.schedule and not Path(args.schedule).is_file():
        print(
            f"course gradebook: --schedule {args.schedule}: no such file (expected a schedule.toml with "
            "each week's deadline; leave --schedule out to use course/schedule.toml)",
            file=sys.stderr,
        )
        return 2
    schedule_path = Path(args.schedule) if args.schedule else SCHEDULE
    schedule = load_schedule(schedule_path) if schedule_path.exists() else None
    try:
        found = build(
            [Path(p) for p in args.reports],
            Path(args.out),
            nbgrader_db=Path(args.nbgrader_db) if args.nbgrader_db else None,
            schedule=schedule,
        )
    except (ValueError, OSError) as exc:
        print(f"course gradebook: {exc}", file=sys.stderr)
        return 2
    print(f"course gradebook: {found['students']} students from {found['reports']} reports -> {args.out}")
    for line in found["notes"]:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
