"""`course gradebook`: the class at a glance, from the grader's reports (and nbgrader's database).

Input: report files or folders of them (`autograder.tools.gradebook.reports`: what the classroom grader
keeps, ``<student>/<commit>.json``, or bare `course grade --json` reports); optionally nbgrader's
database, the schedule, an extensions file, a weights file and an LMS roster.

The late rule and the final grade (`autograder.tools.gradebook.book`; the settings are in
``course/schedule.toml``):

* ``[course] late_penalty_per_day = 0.1`` and ``late_penalty_max = 0.3``: work handed in ``h``
  hours after the deadline (the push time against the week's deadline) loses 10 % of its points
  per started day, at most 30 %; after ``late_window_hours`` it earns nothing. A week counts the
  best of its last on-time score and each score within the window less its penalty.
* Extensions (``--extensions``, default ``course/extensions.toml`` where it exists): a table per
  student of extra hours per week or notebook assignment, ``[ada]`` then ``w03 = 48``; they move
  that student's deadline (and window). An extension of a week covers its notebook too.
* Final grade: ``[grading.weeks]`` and ``[grading.notebooks]`` in the schedule (or ``--weights
  FILE`` with ``[weeks]`` and ``[notebooks]``) give each item's share; shares are normalised, an
  item without a score counts 0, and the grade is a percentage. Without weights, every week and
  notebook assignment counts the same.

Output, in ``--out``:

* ``index.html``: what needs a look, one entry per cause (grading errors, runs without the jail,
  redactions, late work, work after the window, missing work, notebooks to grade, extensions
  that match no one or outlast the solutions, students the LMS cannot match), then the class
  table (one row per student: final grade, points, each week after the late rule with its late
  mark, notebooks, flags; click a header to sort, type to filter), per-week statistics, the
  histogram and the hardest tests. ``summary.html`` (the old page) links to it.
* ``students/<student>.html``: a student's weeks and notebooks (raw score, deadline, extension,
  hours late, penalty, score), their history commit by commit (linked to ``--server-url``), the
  latest report test by test with its (cleaned) messages, and their grading errors.
* ``gradebook.csv``: one row per student: ``student, name, final, total, max_score``, each week
  and ``nb:<assignment>`` (after the late rule), ``late`` (the late items), ``sandboxed`` (``yes``
  only when every report was graded in the jail), ``grading_errors``, ``redactions``.
* ``gradebook_details.csv``: one row per student per week or notebook: status, raw, max_score,
  on_time, deadline, extension_hours, handed_in, hours_late, penalty, score, weight, commit,
  needs_grading.
* ``canvas.csv`` and ``moodle.csv``: for the LMS's grade import (`autograder.tools.gradebook.exports`
  gives the formats); ``--lms-roster FILE`` (CSV: ``student,name,lms_id,sis_id,login,email,
  section``) fills in the identifiers the LMS matches students by.
* ``test_failures.csv``: per test, how many students' latest reports failed it.
* ``score_histogram.png``: final grades, and the mean score per week.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from ..schedule import EXTENSIONS, SCHEDULE, Schedule, Weights, load_extensions, load_schedule, load_weights
from . import class_page, exports, student_page
from .book import ClassBook, build_book
from .chart import plot
from .failures import failure_rates
from .look import needs_a_look
from .notebooks import read_nbgrader
from .pages import page_name
from .reports import Graded, load_reports

__all__ = ["ClassBook", "Graded", "build", "load_reports", "main"]

GITHUB = "https://github.com"


def build(
    reports: list[Path],
    out: Path,
    *,
    nbgrader_db: Path | None = None,
    schedule: Schedule | None = None,
    extensions: dict[str, dict[str, float]] | None = None,
    weights: Weights | None = None,
    roster: Path | None = None,
    server_url: str = GITHUB,
    now: datetime | None = None,
) -> dict:
    """Writes the gradebook files to ``out``; returns a summary of what it found."""
    if not server_url.startswith(("https://", "http://")):
        raise ValueError(f"--server-url must be an http(s) URL, not {server_url!r}")
    graded, skipped = load_reports(reports)
    if not graded and nbgrader_db is None:
        raise ValueError("no grade reports found")
    notebooks, assignments = read_nbgrader(nbgrader_db) if nbgrader_db is not None else ({}, [])
    people = exports.load_roster(roster) if roster is not None else None
    now = now or datetime.now(UTC)
    book = build_book(
        graded,
        schedule,
        notebooks=notebooks,
        assignments=assignments,
        extensions=extensions,
        weights=weights,
        roster=people,
    )
    book.causes = needs_a_look(book, skipped, extensions or {}, people is not None, now)
    out.mkdir(parents=True, exist_ok=True)
    failures = failure_rates(book)
    exports.gradebook_csv(book, out / "gradebook.csv")
    exports.details_csv(book, out / "gradebook_details.csv")
    exports.failures_csv(failures, out / "test_failures.csv")
    exports.canvas_csv(book, out / "canvas.csv")
    exports.moodle_csv(book, out / "moodle.csv")
    plot(book, out / "score_histogram.png")
    (out / "index.html").write_text(class_page.index_html(book, failures, now), encoding="utf-8")
    (out / "summary.html").write_text(class_page.summary_html(), encoding="utf-8")
    (out / "students").mkdir(exist_ok=True)
    for s in book.students:
        page = student_page.student_html(book, s, server_url)
        (out / "students" / page_name(s.student)).write_text(page, encoding="utf-8")
    notes = [
        f"{c.title} ({len(c.entries)}): " + ", ".join(f"{s} ({d})" if s else d for s, d in c.entries)
        for c in book.causes
    ]
    return {
        "students": len(book.students),
        "reports": len(graded),
        "skipped": skipped,
        "notes": notes,
        "book": book,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="course gradebook",
        description="Class gradebook (HTML pages, CSV, LMS imports, failure rates, histogram) from grade reports.",
    )
    parser.add_argument("reports", nargs="+", help="report files or folders (searched recursively)")
    parser.add_argument("--nbgrader-db", help="nbgrader's gradebook.db, for the notebook scores")
    parser.add_argument(
        "--schedule", help="deadlines, late rule and weights (default: course/schedule.toml where it exists)"
    )
    parser.add_argument(
        "--extensions",
        help=f"extra hours per student and week (TOML: [student] w03 = 48); default {EXTENSIONS} if it exists",
    )
    parser.add_argument(
        "--weights", help="final-grade weights (TOML: [weeks] and [notebooks]), instead of the schedule's"
    )
    parser.add_argument("--lms-roster", help="CSV: student,name,lms_id,sis_id,login,email,section")
    parser.add_argument("--server-url", default=GITHUB, help=f"where commits are linked (default {GITHUB})")
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
    try:
        schedule = load_schedule(schedule_path) if schedule_path.exists() else None
        extensions_path = (
            Path(args.extensions) if args.extensions else (EXTENSIONS if EXTENSIONS.exists() else None)
        )
        extensions = None
        if extensions_path is not None:
            if schedule is None:
                raise ValueError("extensions need a schedule (--schedule): they move its deadlines")
            extensions = load_extensions(extensions_path, schedule)
        found = build(
            [Path(p) for p in args.reports],
            Path(args.out),
            nbgrader_db=Path(args.nbgrader_db) if args.nbgrader_db else None,
            schedule=schedule,
            extensions=extensions,
            weights=load_weights(Path(args.weights)) if args.weights else None,
            roster=Path(args.lms_roster) if args.lms_roster else None,
            server_url=args.server_url,
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
