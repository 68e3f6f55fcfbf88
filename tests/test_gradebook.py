"""`course gradebook`: the late rule, extensions, weights and the final grade, what needs a look,
the CSV files and LMS exports, the student pages; and the HTML in a real headless browser
(sorting, filtering, no sideways scrolling, links, hostile messages shown as text). Report
files (and an nbgrader database) are written here by hand."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from autograder.cli import main as course
from autograder.tools import gradebook
from autograder.tools.gradebook import exports, pages
from autograder.tools.schedule import Weights, load_extensions, load_schedule, load_weights
from tests.browser import INSTALL_HINT, Browser, find_chromium

# One worker runs this file: its module fixtures are built once (dev.sh: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_gradebook")

SCHEDULE = load_schedule()  # week 1 is due 2027-01-18 23:59 UTC, week 2 on 2027-01-25; 72 h window
NOW = datetime(2027, 4, 1, tzinfo=UTC)  # every window of the term has closed
# The final grade is the share of every weight of the schedule's [grading] table that was earned.
WEIGHT_TOTAL = sum(SCHEDULE.weights.weeks.values()) + sum(SCHEDULE.weights.notebooks.values())


def percent(earned: float) -> float:
    """A final grade (%, rounded as the gradebook rounds) from the weight points earned."""
    return round(100 * earned / WEIGHT_TOTAL, 2)


HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def course_report(scores: dict[str, list[tuple[str, str, float, float]]], message: str = "") -> dict:
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
                "message": "" if status == "passed" else message or f"{name}: scores are √d_k too large",
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


JAILED = {"user": "course-grader", "network": False, "authoritative": True}


def kept(folder: Path, student: str, commit: str, time: str, report: dict | None, **extra) -> None:
    wrapper = {
        "student": student,
        "repository": f"org/tdd-{student}",
        "commit": commit,
        "time": time,
        "graded_at": time,
        "sandbox": JAILED,
        "report": report,
        **extra,
    }
    (folder / student).mkdir(parents=True, exist_ok=True)
    (folder / student / f"{commit}.json").write_text(json.dumps(wrapper))


PASS, FAIL = "passed", "failed"


@pytest.fixture
def reports(tmp_path):
    folder = tmp_path / "reports"
    # ada: half of week 1 on time, all of it 130 h late (after the 72 h window), week 2 on time.
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
    # ben: one report, on time for both weeks, graded without the jail; a public copy with redactions.
    kept(
        folder,
        "ben",
        "b1" * 20,
        "2027-01-18T20:00:00+00:00",
        course_report(
            {"w01": [("softmax", FAIL, 0, 2), ("masks", PASS, 2, 2)], "w02": [("mha", FAIL, 0, 3)]}
        ),
        sandbox={"user": None, "network": True, "authoritative": False},
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
    with open(path, encoding="utf-8") as fh:
        return {r["student"]: r for r in csv.DictReader(fh)}


def details_of(path: Path) -> dict[tuple[str, str], dict]:
    with open(path, encoding="utf-8") as fh:
        return {(r["student"], r["item"]): r for r in csv.DictReader(fh)}


def causes_of(found: dict) -> dict[str, list[tuple[str | None, str]]]:
    return {c.title: c.entries for c in found["book"].causes}


# --------------------------------------------------------------------------- the late rule
def test_late_penalty_per_started_day_capped_and_nothing_after_the_window():
    assert (SCHEDULE.late_penalty_per_day, SCHEDULE.late_penalty_max) == (0.1, 0.3)
    penalties = [SCHEDULE.late_penalty(h) for h in (-5, 0, 0.5, 24, 24.01, 48, 71.9, 72, 72.01)]
    assert penalties == [0.0, 0.0, 0.1, 0.1, 0.2, 0.2, 0.3, 0.3, None]
    capped = dataclasses.replace(SCHEDULE, late_penalty_max=0.15)
    assert [capped.late_penalty(h) for h in (1, 30, 60)] == [0.1, 0.15, 0.15]
    flags_only = dataclasses.replace(SCHEDULE, late_penalty_per_day=0.0)
    assert flags_only.late_penalty(50) == 0.0 and flags_only.late_penalty(80) is None
    assert "10% per started day" in SCHEDULE.describe_late_rule()


def test_gradebook_rows_and_late_rule(reports, tmp_path):
    found = gradebook.build([reports], tmp_path / "book", schedule=SCHEDULE, now=NOW)
    rows = rows_of(tmp_path / "book" / "gradebook.csv")
    assert list(rows["ada"]) == [
        "student",
        "name",
        "final",
        "total",
        "max_score",
        "w01",
        "w02",
        "late",
        "sandboxed",
        "grading_errors",
        "redactions",
    ], "gradebook.csv stays short: the details are in gradebook_details.csv"
    assert set(rows) == {"ada", "ben", "cy<b>", "dee"}
    ada = rows["ada"]
    # Week 1's full marks came 130 h late, after the window: the on-time 2 points count.
    assert (ada["w01"], ada["w02"], ada["total"], ada["max_score"]) == ("2", "3", "5", "7")
    assert ada["late"] == "w01" and ada["sandboxed"] == "yes"
    details = details_of(tmp_path / "book" / "gradebook_details.csv")
    w01 = details[("ada", "w01")]
    assert (w01["status"], w01["raw"], w01["on_time"], w01["score"]) == ("too late", "4", "2", "2")
    assert w01["hours_late"] == "130.0" and w01["commit"] == "a1" * 20, "the on-time commit counts"
    assert details[("ada", "w02")]["status"] == "on time", "week 2 was handed in before its deadline"
    ben = rows["ben"]
    assert (ben["w01"], ben["late"], ben["redactions"], ben["sandboxed"]) == ("2", "", "3", "no")
    assert rows["cy<b>"]["w01"] == "2" and rows["cy<b>"]["sandboxed"] == "no", "a bare report is not trusted"
    assert rows["dee"]["grading_errors"] == "1" and rows["dee"]["w01"] == ""
    assert details[("dee", "w01")]["status"] == "missing"
    assert any("notes.json" in s for s in found["skipped"])


def test_late_work_within_the_window_loses_a_share_per_day(tmp_path):
    folder = tmp_path / "reports"
    week1 = lambda score: {"w01": [("softmax", PASS, score, 4)]}  # noqa: E731
    # lin: 1/4 on time, 4/4 26 h late (two started days: -20%), then a push 100 h late that
    # changes nothing in week 1 (work on week 2): still the 26 h-late work for week 1.
    kept(folder, "lin", "l1" * 20, "2027-01-18T22:59:00+00:00", course_report(week1(1)))
    kept(folder, "lin", "l2" * 20, "2027-01-20T01:59:00+00:00", course_report(week1(4)))
    after = course_report({**week1(4), "w02": [("mha", PASS, 3, 3)]})
    kept(folder, "lin", "l3" * 20, "2027-01-23T03:59:00+00:00", after)
    # max: 3.5/4 on time; 3.8/4 an hour late is worth 3.42: the on-time score stays.
    kept(folder, "max", "m1" * 20, "2027-01-18T12:00:00+00:00", course_report(week1(3.5)))
    kept(folder, "max", "m2" * 20, "2027-01-19T00:59:00+00:00", course_report(week1(3.8)))
    found = gradebook.build([folder], tmp_path / "book", schedule=SCHEDULE, now=NOW)
    details = details_of(tmp_path / "book" / "gradebook_details.csv")
    lin = details[("lin", "w01")]
    assert (lin["status"], lin["hours_late"], lin["penalty"], lin["score"]) == ("late", "26.0", "0.2", "3.2")
    assert lin["commit"] == "l2" * 20 and lin["on_time"] == "1"
    mx = details[("max", "w01")]
    assert (mx["status"], mx["raw"], mx["penalty"], mx["score"]) == ("late", "3.8", "0", "3.5")
    late = dict(causes_of(found)["Late work"])
    assert late["lin"] == "w01 26 h (−20%)"


def test_extensions_move_a_students_deadline(reports, tmp_path):
    path = tmp_path / "extensions.toml"
    path.write_text('[ada]\nw01 = 140\n\n[ben]\n"2" = 24\n\n[nobody]\nw03 = 10\n')
    extensions = load_extensions(path, SCHEDULE)
    assert extensions == {"ada": {"w01": 140.0}, "ben": {"w02": 24.0}, "nobody": {"w03": 10.0}}
    found = gradebook.build([reports], tmp_path / "book", schedule=SCHEDULE, extensions=extensions, now=NOW)
    details = details_of(tmp_path / "book" / "gradebook_details.csv")
    w01 = details[("ada", "w01")]
    assert (w01["status"], w01["score"], w01["extension_hours"]) == ("on time", "4", "140")
    assert w01["deadline"] == "2027-01-24T19:59:00+00:00"
    assert details[("ben", "w02")]["deadline"] == "2027-01-26T23:59:00+00:00"
    causes = causes_of(found)
    assert causes["Extensions for no one"] == [(None, "nobody: w03")]
    assert causes["Extensions past the solutions"] == [("ada", "w01 +140 h")]

    for text, expected in (
        ("[ada]\nw99 = 5\n", "unknown week or assignment 'w99'"),
        ("[ada]\nw01 = -5\n", "at least 0"),
        ("ada = 5\n", "must be a table"),
    ):
        path.write_text(text)
        with pytest.raises(ValueError, match=expected):
            load_extensions(path, SCHEDULE)


def test_final_grade_from_weights(reports, tmp_path):
    # The schedule: weeks 1 and 2 weigh 7 each (of WEIGHT_TOTAL, notebooks included).
    found = gradebook.build([reports], tmp_path / "book", schedule=SCHEDULE, now=NOW)
    finals = {s.student: s.final for s in found["book"].students}
    assert finals["ada"] == pytest.approx(percent(7 * 2 / 4 + 7 * 3 / 3)), (
        "missing weeks and notebooks count 0"
    )
    assert finals["dee"] == 0.0
    # A weights file instead: weeks 1 and 2 alone, one to three.
    path = tmp_path / "weights.toml"
    path.write_text("[weeks]\n1 = 1\nmultihead = 3\n")
    weights = load_weights(path)
    assert weights == Weights({"w01": 1.0, "w02": 3.0}, {})
    found = gradebook.build([reports], tmp_path / "book2", schedule=SCHEDULE, weights=weights, now=NOW)
    assert {s.student: s.final for s in found["book"].students}["ada"] == pytest.approx(100 * (0.5 + 3) / 4)
    assert rows_of(tmp_path / "book2" / "gradebook.csv")["ada"]["final"] == "87.5"
    # No weights anywhere: every week counts the same.
    bare = dataclasses.replace(SCHEDULE, weights=Weights())
    found = gradebook.build([reports], tmp_path / "book3", schedule=bare, now=NOW)
    assert {s.student: s.final for s in found["book"].students}["ada"] == pytest.approx(
        100 * 1.5 / len(SCHEDULE.weeks), abs=0.01
    )
    for text, expected in (
        ("[weeks]\nw99 = 1\n", "unknown week"),
        ("[weeks]\nw01 = -1\n", "at least 0"),
        ("[quizzes]\nq1 = 1\n", "unknown table"),
    ):
        path.write_text(text)
        with pytest.raises(ValueError, match=expected):
            load_weights(path)


def test_failure_rates(reports, tmp_path):
    gradebook.build([reports], tmp_path / "book", schedule=SCHEDULE, now=NOW)
    with open(tmp_path / "book" / "test_failures.csv") as fh:
        rates = {(r["week"], r["test"]): r for r in csv.DictReader(fh)}
    # Latest reports: ada passes both, ben fails softmax, cy fails masks; dee has none.
    assert rates[("w01", "softmax")]["students"] == "3" and rates[("w01", "softmax")]["failed"] == "1"
    assert float(rates[("w01", "softmax")]["failure_rate"]) == pytest.approx(1 / 3, abs=1e-3)
    assert rates[("w02", "mha")]["failed"] == "1" and rates[("w02", "mha")]["students"] == "2"
    assert "√d_k" in rates[("w01", "masks")]["most_common_message"]


# --------------------------------------------------------------------------- pages
def test_index_needs_a_look_by_cause(reports, tmp_path):
    found = gradebook.build([reports], tmp_path / "book", schedule=SCHEDULE, now=NOW)
    causes = causes_of(found)
    assert causes["Grading failed"] == [("dee", f"1 time(s), last at {'d1' * 5}")]
    assert causes["Not authoritative"] == [("ben", "1 of 1 reports"), ("cy<b>", "1 of 1 reports")]
    assert causes["Messages redacted"] == [("ben", "3 part(s)")]
    assert causes["Too late"] == [("ada", "w01 130 h")]
    assert causes["Missing work"] == [("cy<b>", "w02"), ("dee", "w01, w02")]
    assert causes["Report files skipped"][0][1].endswith("notes.json: not a grade report")
    assert "Late work" not in causes and "No LMS identifiers" not in causes, "causes with nobody are left out"
    book = tmp_path / "book"
    page = (book / "index.html").read_text()
    assert "cy&lt;b&gt;" in page and "cy<b>" not in page, "names are escaped"
    assert page.count("<strong>Grading failed</strong>") == 1
    assert '<a href="students/dee.html">dee</a>' in page
    dee_row = page[page.index('data-search="dee"') :].split("</tr>", 1)[0]
    assert ">error<" in dee_row and "no jail" not in dee_row, "no report, so nothing graded outside the jail"
    assert f'<a href="students/{pages.page_name("cy<b>")}">cy&lt;b&gt;</a>' in page
    assert (book / "students" / pages.page_name("cy<b>")).is_file() and "<" not in pages.page_name("cy<b>")
    assert "url=index.html" in (book / "summary.html").read_text(), "the old page leads to the new one"
    png = (book / "score_histogram.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_student_page(reports, tmp_path):
    kept(
        reports,
        "eve",
        "e1" * 20,
        "2027-01-18T10:00:00+00:00",
        course_report({"w01": [("softmax", FAIL, 0, 2)]}, message=HOSTILE + "\n\x1b[31mline two"),
        repository='org/x"><script>alert(1)</script>',
    )
    gradebook.build(
        [reports], tmp_path / "book", schedule=SCHEDULE, server_url="https://git.example.edu", now=NOW
    )
    students = tmp_path / "book" / "students"
    ada = (students / "ada.html").read_text()
    assert f'href="https://git.example.edu/org/tdd-ada/commit/{"a2" * 20}"' in ada
    assert f'href="https://git.example.edu/org/tdd-ada/commit/{"a1" * 20}"' in ada, "the whole history"
    assert "too late" in ada and "130.0" in ada and "scores are √d_k too large" not in ada
    assert "softmax: scores are √d_k too large" in (students / "ben.html").read_text()
    assert "not authoritative" in (students / "ben.html").read_text()
    dee = (students / "dee.html").read_text()
    assert "Grading errors" in dee and "course grade exited with 2" in dee
    eve = (students / "eve.html").read_text()
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in eve and "<script" not in eve
    assert "<img" not in eve and "\x1b" not in eve and "line two" in eve
    assert "git.example.edu/org/x" not in eve, "a repository that is not owner/name gets no link"
    with pytest.raises(ValueError, match="http"):
        gradebook.build([reports], tmp_path / "x", server_url="javascript:alert(1)")


def test_lms_exports(reports, tmp_path):
    roster = tmp_path / "lms.csv"
    roster.write_text(
        "\ufeffstudent,name,lms_id,sis_id,login,email,section,repository\n"
        'ada,"Lovelace, Ada",101,S001,alovelace,ada@example.edu,Section A,org/tdd-ada\n'
        "ben,Ben,,S002,,,,\n"
        "zoe,Zoe Z,103,S003,zz,zoe@example.edu,Section B,\n"
    )
    found = gradebook.build([reports], tmp_path / "book", schedule=SCHEDULE, roster=roster, now=NOW)
    with open(tmp_path / "book" / "canvas.csv", encoding="utf-8") as fh:
        canvas = list(csv.reader(fh))
    assert canvas[0] == [
        "Student",
        "ID",
        "SIS User ID",
        "SIS Login ID",
        "Section",
        "w01 Scaled dot-product attention",
        "w02 Multi-head attention",
        "Final grade (%)",
    ]
    assert canvas[1] == ["Points Possible", "", "", "", "", "4", "3", "100"]
    by_name = {row[0]: row for row in canvas[2:]}
    assert by_name["Lovelace, Ada"] == [
        "Lovelace, Ada",
        "101",
        "S001",
        "alovelace",
        "Section A",
        "2",
        "3",
        f"{percent(7 * 2 / 4 + 7 * 3 / 3):g}",
    ]
    assert by_name["Zoe Z"][5:] == ["", "", "0"], "a student with nothing handed in: blank scores, final 0"
    assert by_name["dee"][1:5] == ["", "", "", ""], "not in the roster: only the id we know"
    with open(tmp_path / "book" / "moodle.csv", encoding="utf-8") as fh:
        moodle = list(csv.reader(fh))
    assert moodle[0][:4] == ["Email address", "Username", "ID number", "Full name"]
    assert moodle[0][4:] == [
        "w01 Scaled dot-product attention (%)",
        "w02 Multi-head attention (%)",
        "Final grade (%)",
    ]
    final = f"{percent(7 * 2 / 4 + 7 * 3 / 3):g}"
    assert ["ada@example.edu", "alovelace", "S001", "Lovelace, Ada", "50", "100", final] in moodle
    causes = causes_of(found)
    assert causes["No LMS identifiers"] == [("cy<b>", "not in the roster"), ("dee", "not in the roster")]
    assert ("zoe", "everything") in causes["Missing work"]
    assert rows_of(tmp_path / "book" / "gradebook.csv")["ada"]["name"] == "Lovelace, Ada"
    roster.write_text("login,email\nada,a@x\n")
    with pytest.raises(ValueError, match="`student` column"):
        exports.load_roster(roster)
    roster.write_text("student\nada\nada\n")
    with pytest.raises(ValueError, match="listed twice"):
        exports.load_roster(roster)


@pytest.mark.filterwarnings("ignore:.*not in session.*")  # nbgrader's own SQLAlchemy use
def test_nbgrader_scores_join_the_gradebook(reports, tmp_path, monkeypatch):
    nbgrader_api = pytest.importorskip("nbgrader.api")
    # Creating a database runs nbgrader's `alembic`, installed beside this interpreter.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    db = tmp_path / "gradebook.db"
    with nbgrader_api.Gradebook(f"sqlite:///{db}") as gb:
        due = SCHEDULE.assignments["review"].deadline.replace(tzinfo=None)  # nbgrader keeps naive UTC
        gb.add_assignment("review", duedate=due)
        gb.add_notebook("review", "review")
        gb.add_grade_cell("essay", "review", "review", max_score=6, cell_type="markdown")
        gb.add_solution_cell("essay", "review", "review")
        for student, when, points in (
            ("ada", due - timedelta(days=1), 5),
            ("eve", due + timedelta(days=1, minutes=1), None),
        ):
            gb.add_student(student)
            gb.add_submission("review", student, timestamp=when)
            if points is not None:
                grade = gb.find_grade("essay", "review", "review", student)
                grade.manual_score = points
                grade.needs_manual_grade = False  # as the formgrader does on saving a grade
                gb.db.commit()
    found = gradebook.build([reports], tmp_path / "book", nbgrader_db=db, schedule=SCHEDULE, now=NOW)
    rows = rows_of(tmp_path / "book" / "gradebook.csv")
    assert rows["ada"]["nb:review"] == "5" and rows["ada"]["late"] == "w01"
    details = details_of(tmp_path / "book" / "gradebook_details.csv")
    assert (details[("ada", "nb:review")]["max_score"], details[("ada", "nb:review")]["status"]) == (
        "6",
        "on time",
    )
    eve = details[("eve", "nb:review")]
    assert (eve["status"], eve["penalty"], eve["needs_grading"]) == ("late", "0.2", "yes"), "24 h 1 min late"
    assert rows["eve"]["late"] == "nb:review", "a notebook-only student gets a row too"
    assert causes_of(found)["Notebooks awaiting manual grading"] == [("eve", "review")]
    finals = {s.student: s.final for s in found["book"].students}
    assert finals["ada"] == pytest.approx(percent(7 * 2 / 4 + 7 + 12 * 5 / 6))
    # An extension of a notebook-only assignment moves its deadline like a week's.
    extended = {"eve": {"review": 48.0}}
    gradebook.build(
        [reports], tmp_path / "b2", nbgrader_db=db, schedule=SCHEDULE, extensions=extended, now=NOW
    )
    eve = details_of(tmp_path / "b2" / "gradebook_details.csv")[("eve", "nb:review")]
    assert (eve["status"], eve["penalty"], eve["extension_hours"]) == ("on time", "0", "48")


def test_course_gradebook_command(reports, tmp_path, capsys):
    extensions = tmp_path / "ext.toml"
    extensions.write_text("[ada]\nw01 = 140\n")
    roster = tmp_path / "lms.csv"
    roster.write_text("student,email\nada,ada@example.edu\n")
    weights = tmp_path / "weights.toml"
    weights.write_text("[weeks]\nw01 = 1\n")
    out = tmp_path / "book"
    args = ["gradebook", str(reports), "--out", str(out), "--extensions", str(extensions)]
    args += [
        "--lms-roster",
        str(roster),
        "--weights",
        str(weights),
        "--server-url",
        "https://git.example.edu",
    ]
    assert course(args) == 0
    printed = capsys.readouterr().out
    assert "4 students from 5 reports" in printed and "Grading failed (1): dee (" in printed
    assert rows_of(out / "gradebook.csv")["ada"]["final"] == "100", "week 1 on time thanks to the extension"
    assert "git.example.edu/org/tdd-ada" in (out / "students" / "ada.html").read_text()
    assert course(["gradebook", str(tmp_path / "empty"), "--out", str(tmp_path / "x")]) == 2
    extensions.write_text("[ada]\nw99 = 1\n")
    assert course(["gradebook", str(reports), "--out", str(out), "--extensions", str(extensions)]) == 2
    assert "unknown week or assignment 'w99'" in capsys.readouterr().err


# --------------------------------------------------------------------------- in a browser
CHROMIUM = find_chromium()
needs_browser = pytest.mark.skipif(CHROMIUM is None, reason=INSTALL_HINT)


@pytest.fixture(scope="module")
def browser():
    with Browser(CHROMIUM, width=1280, height=900) as b:
        yield b


@pytest.fixture(scope="module")
def class_book(tmp_path_factory):
    """A class of 60 over every week: late work, long names, a hostile message, a failed grading."""
    folder = tmp_path_factory.mktemp("class") / "reports"
    for n in range(60):
        student = f"student-{n:02d}" if n % 7 else f"student-{n:02d}-with-a-rather-long-github-login-name-x"
        scores = {}
        for week in range(1, len(SCHEDULE.weeks) + 1):
            got = (n * 7 + week * 3) % 5
            scores[f"w{week:02d}"] = [("first", PASS, 2, 2), ("second", PASS if got > 1 else FAIL, got, 4)]
        message = HOSTILE if n == 3 else "the weights sum over the query axis, not the key axis " * 8
        # On time for every week, 10 h late for week 1, or after week 1's window (82 h).
        time = ("2027-01-10T10:00:00+00:00", "2027-01-19T10:00:00+00:00", "2027-01-22T10:00:00+00:00")[n % 3]
        kept(folder, student, f"{n:02d}" * 20, time, course_report(scores, message=message))
    kept(folder, "student-60", "60" * 20, "2027-01-18T21:00:00+00:00", None, error=HOSTILE)
    out = folder.parent / "book"
    gradebook.build([folder], out, schedule=SCHEDULE, now=NOW)
    return out


def _column(browser, index: int) -> list[str]:
    return browser.evaluate(
        f"Array.from(document.querySelectorAll('#class-table tbody tr:not([hidden])'))"
        f".map(r => r.cells[{index}].dataset.sort)"
    )


@needs_browser
def test_class_table_renders_without_sideways_scrolling(browser, class_book, tmp_path):
    np = pytest.importorskip("numpy")
    image = pytest.importorskip("PIL.Image")
    browser.open(class_book / "index.html")
    assert browser.evaluate("document.querySelectorAll('#class-table tbody tr').length") == 61
    assert (
        browser.evaluate("document.querySelectorAll('#class-table thead th').length")
        == 3 + len(SCHEDULE.weeks) + 2
    )
    assert browser.evaluate("document.documentElement.scrollWidth") <= 1280
    shot = np.asarray(image.open(browser.screenshot(tmp_path / "index.png")).convert("RGB"))
    assert shot.shape == (900, 1280, 3)
    assert len(np.unique(shot.reshape(-1, 3), axis=0)) > 20, "the page is not one colour"
    browser.open(class_book / "students" / "student-05.html")
    assert browser.evaluate("document.documentElement.scrollWidth") <= 1280, "long messages wrap"


@needs_browser
def test_class_table_sorts_and_filters(browser, class_book):
    browser.open(class_book / "index.html")
    browser.click("#class-table thead th:nth-child(2) button")  # final %
    finals = [float(v) for v in _column(browser, 1)]
    assert finals == sorted(finals) and finals[0] < finals[-1]
    browser.click("#class-table thead th:nth-child(2) button")
    assert [float(v) for v in _column(browser, 1)] == sorted(finals, reverse=True)
    assert (
        browser.evaluate("document.querySelector('#class-table thead th:nth-child(2)').ariaSort")
        == "descending"
    )
    browser.click("#class-table thead th:nth-child(1) button")  # student, A to Z
    names = _column(browser, 0)
    assert names == sorted(names)
    browser.type("#filter", "long-github")
    shown = _column(browser, 0)
    assert len(shown) == 9 and all("long-github" in s for s in shown)
    assert browser.evaluate("document.getElementById('shown').textContent") == "9 of 61 students"


@needs_browser
def test_links_to_student_pages_resolve(browser, class_book):
    browser.open(class_book / "index.html")
    links = browser.evaluate(
        "Array.from(document.querySelectorAll('#class-table a, .causes a')).map(a => a.href)"
    )
    assert len(links) >= 61
    for link in links:
        assert Path(unquote(urlparse(link).path)).is_file(), link
    browser.click("#class-table tbody tr:first-child a")
    browser.wait_for_load()
    assert browser.evaluate("document.querySelector('h1').textContent").startswith("student-00")
    assert browser.evaluate("document.querySelector('a[href=\"../index.html\"]') !== null")


@needs_browser
def test_hostile_messages_are_text_in_the_browser(browser, class_book):
    for page in ("student-03.html", "student-60.html"):
        browser.open(class_book / "students" / page)
        assert browser.evaluate("typeof window.__pwned") == "undefined", "no script of the student's ran"
        assert browser.evaluate("document.querySelectorAll('script, img').length") == 0
        assert "<script>window.__pwned = 1</script>" in browser.evaluate("document.body.textContent")
