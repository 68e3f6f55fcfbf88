"""`course gradebook`: latest scores, late flags, failure rates, the histogram and the HTML page,
from report files (and an nbgrader database) written here by hand."""

from __future__ import annotations

import csv
import json
import os
import sys
from datetime import datetime
from pathlib import Path

import pytest

from autograder import gradebook
from autograder.cli import main as course
from autograder.schedule import load_schedule

SCHEDULE = load_schedule()  # week 1 is due 2027-01-18 23:59 UTC, week 2 on 2027-01-25


def course_report(scores: dict[str, list[tuple[str, str, float, float]]]) -> dict:
    """A `course grade --json` report: {week: [(test name, status, score, max), ...]}."""
    weeks = {}
    for week, tests in scores.items():
        rows = [
            {
                "id": f"x::{name}",
                "name": name,
                "status": status,
                "score": float(score),
                "max_score": float(top),
                "message": "" if status == "passed" else f"{name}: scores are √d_k too large",
                "duration": 0.1,
                "hidden": True,
            }
            for name, status, score, top in tests
        ]
        weeks[week] = {
            "title": week,
            "score": sum(r["score"] for r in rows),
            "max_score": sum(r["max_score"] for r in rows),
            "tests": rows,
        }
    return {
        "schema_version": 1,
        "score": sum(w["score"] for w in weeks.values()),
        "max_score": sum(w["max_score"] for w in weeks.values()),
        "submission": "s",
        "seed": 1,
        "isolation": "process",
        "grader_version": "0",
        "weeks": weeks,
    }


def kept(folder: Path, student: str, commit: str, time: str, report: dict | None, **extra) -> None:
    wrapper = {
        "student": student,
        "repository": f"org/tdd-{student}",
        "commit": commit,
        "time": time,
        "graded_at": time,
        "sandbox": {"user": "course-grader", "network": False},
        "report": report,
        **extra,
    }
    (folder / student).mkdir(parents=True, exist_ok=True)
    (folder / student / f"{commit}.json").write_text(json.dumps(wrapper))


PASS, FAIL = "passed", "failed"


@pytest.fixture
def reports(tmp_path):
    folder = tmp_path / "reports"
    # ada: half of week 1 on time, all of it after the deadline (late), week 2 on time.
    kept(
        folder,
        "ada",
        "a1" * 20,
        "2027-01-17T10:00:00+00:00",
        course_report({"w01": [("softmax", PASS, 2, 2), ("masks", FAIL, 0, 2)]}),
    )
    kept(
        folder,
        "ada",
        "a2" * 20,
        "2027-01-24T10:00:00+00:00",
        course_report(
            {"w01": [("softmax", PASS, 2, 2), ("masks", PASS, 2, 2)], "w02": [("mha", PASS, 3, 3)]}
        ),
    )
    # ben: one report, on time for both weeks; a public copy that had redactions.
    kept(
        folder,
        "ben",
        "b1" * 20,
        "2027-01-18T20:00:00+00:00",
        course_report(
            {"w01": [("softmax", FAIL, 0, 2), ("masks", PASS, 2, 2)], "w02": [("mha", FAIL, 0, 3)]}
        ),
    )
    (folder / "ben" / f"{'b1' * 20}.public.json").write_text(json.dumps({"redactions": 3}))
    # dee: grading failed once.
    kept(folder, "dee", "d1" * 20, "2027-01-18T21:00:00+00:00", None, error="course grade exited with 2")
    # A bare `course grade --json` report: the student is its file name. And something else.
    (folder / "cy<b>.json").write_text(
        json.dumps(course_report({"w01": [("softmax", PASS, 2, 2), ("masks", FAIL, 0, 2)]}))
    )
    (folder / "notes.json").write_text(json.dumps({"hello": 1}))
    return folder


def rows_of(path: Path) -> dict[str, dict]:
    with open(path) as fh:
        return {r["student"]: r for r in csv.DictReader(fh)}


def test_gradebook_rows_and_late_flags(reports, tmp_path):
    found = gradebook.build([reports], tmp_path / "book", schedule=SCHEDULE)
    rows = rows_of(tmp_path / "book" / "gradebook.csv")
    assert set(rows) == {"ada", "ben", "cy<b>", "dee"}
    ada = rows["ada"]
    assert ada["commit"] == "a2" * 20 and ada["time"] == "2027-01-24T10:00:00+00:00"
    assert (ada["total"], ada["max_score"]) == ("7.0", "7.0")
    assert (ada["w01"], ada["w01_ontime"], ada["w01_late"]) == ("4.0", "2.0", "late")
    assert (ada["w02"], ada["w02_late"]) == ("3.0", ""), "week 2 was handed in before its deadline"
    assert ada["late"] == "w01" and ada["reports"] == "2"
    ben = rows["ben"]
    assert (ben["w01"], ben["w01_ontime"], ben["w01_late"], ben["late"]) == ("2.0", "2.0", "", "")
    assert ben["redactions"] == "3"
    assert rows["cy<b>"]["w01"] == "2.0" and rows["cy<b>"]["commit"] == ""
    assert rows["dee"]["grading_errors"] == "1" and rows["dee"]["total"] == ""
    assert any("notes.json" in s for s in found["skipped"])


def test_failure_rates(reports, tmp_path):
    gradebook.build([reports], tmp_path / "book", schedule=SCHEDULE)
    with open(tmp_path / "book" / "test_failures.csv") as fh:
        rates = {(r["week"], r["test"]): r for r in csv.DictReader(fh)}
    # Latest reports: ada passes both, ben fails softmax, cy fails masks; dee has none.
    assert rates[("w01", "softmax")]["students"] == "3" and rates[("w01", "softmax")]["failed"] == "1"
    assert float(rates[("w01", "softmax")]["failure_rate"]) == pytest.approx(1 / 3, abs=1e-3)
    assert rates[("w02", "mha")]["failed"] == "1" and rates[("w02", "mha")]["students"] == "2"
    assert "√d_k" in rates[("w01", "masks")]["most_common_message"]


def test_histogram_and_summary(reports, tmp_path):
    gradebook.build([reports], tmp_path / "book", schedule=SCHEDULE)
    png = (tmp_path / "book" / "score_histogram.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    page = (tmp_path / "book" / "summary.html").read_text()
    assert "cy&lt;b&gt;" in page and "cy<b>" not in page, "names are escaped"
    assert "ada: late work in w01" in page
    assert "dee: grading failed 1 time(s)" in page
    assert "ben: 3 message part(s) redacted" in page


@pytest.mark.filterwarnings("ignore:.*not in session.*")  # nbgrader's own SQLAlchemy use
def test_nbgrader_scores_join_the_gradebook(reports, tmp_path, monkeypatch):
    nbgrader_api = pytest.importorskip("nbgrader.api")
    # Creating a database runs nbgrader's `alembic`, installed beside this interpreter.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    db = tmp_path / "gradebook.db"
    with nbgrader_api.Gradebook(f"sqlite:///{db}") as gb:
        gb.add_assignment("review", duedate=datetime(2027, 2, 15, 23, 59))
        gb.add_notebook("review", "review")
        gb.add_grade_cell("essay", "review", "review", max_score=6, cell_type="markdown")
        gb.add_solution_cell("essay", "review", "review")
        for student, when, points in (
            ("ada", datetime(2027, 2, 14), 5),
            ("eve", datetime(2027, 2, 17), None),
        ):
            gb.add_student(student)
            gb.add_submission("review", student, timestamp=when)
            if points is not None:
                grade = gb.find_grade("essay", "review", "review", student)
                grade.manual_score = points
                gb.db.commit()
    gradebook.build([reports], tmp_path / "book", nbgrader_db=db, schedule=SCHEDULE)
    rows = rows_of(tmp_path / "book" / "gradebook.csv")
    assert (rows["ada"]["nb:review"], rows["ada"]["nb:review_max"], rows["ada"]["nb:review_late"]) == (
        "5.0",
        "6.0",
        "",
    )
    assert rows["eve"]["nb:review_late"] == "late", "a notebook-only student gets a row too"
    assert rows["eve"]["nb:review_needs_grading"] == "yes"
    assert (
        "eve: notebooks awaiting manual grading: review" in (tmp_path / "book" / "summary.html").read_text()
    )


def test_course_gradebook_command(reports, tmp_path, capsys):
    assert course(["gradebook", str(reports), "--out", str(tmp_path / "book")]) == 0
    assert "4 students from 5 reports" in capsys.readouterr().out
    assert (tmp_path / "book" / "gradebook.csv").exists()
    assert course(["gradebook", str(tmp_path / "empty"), "--out", str(tmp_path / "x")]) == 2
