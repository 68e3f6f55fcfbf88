"""The `course` command as a person meets it: run as a subprocess, as from a shell, and judged by
its exit code and what it says. A mistake gets a one- or two-line message that says what was
wrong and what was expected, never a traceback."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import select
import shlex
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from autograder.weeks import ROOT
from tests.student_tree import build_tree, run_course


def course(*args: str, cwd: Path = ROOT, env: dict | None = None, timeout: float = 300):
    """`python -m autograder ARGS` in ``cwd`` (the engine there is the one that runs)."""
    return subprocess.run(
        [sys.executable, "-m", "autograder", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_error(proc, code: int, *words: str) -> str:
    """A clean failure: exit ``code``, no traceback, a short message on stderr naming ``words``."""
    output = proc.stdout + proc.stderr
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}:\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]
    message = proc.stderr.strip()
    assert message and len(message.splitlines()) <= 2, f"expected a one- or two-line error:\n{message}"
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    return message


def bare_report(path: Path) -> Path:
    """A minimal `course grade --json` report (the gradebook takes the file name as the student)."""
    test = {"id": "x::t", "name": "t", "status": "passed", "score": 1.0, "max_score": 1.0}
    week = {
        "title": "w01",
        "score": 1.0,
        "max_score": 1.0,
        "tests": [{**test, "message": "", "duration": 0.1}],
    }
    report = {"schema_version": 1, "score": 1.0, "max_score": 1.0, "submission": "s", "seed": 1}
    report |= {"isolation": "process", "grader_version": "0", "weeks": {"w01": week}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report))
    return path


# --------------------------------------------------------------------------- course gradebook
def test_gradebook_missing_schedule_is_an_error(tmp_path):
    bare_report(tmp_path / "reports" / "ada.json")
    proc = course(
        "gradebook", str(tmp_path / "reports"), "--schedule", "/nope.toml", "--out", str(tmp_path / "book")
    )
    assert_error(proc, 2, "--schedule /nope.toml", "no such file", "schedule.toml")
    assert not (tmp_path / "book").exists(), "nothing is written when the schedule is missing"


# --------------------------------------------------------------------------- the submission graded
def test_default_submission_is_the_reference_only_in_the_course_repository(tmp_path, monkeypatch):
    from autograder.options import RunOptions, default_submission

    monkeypatch.delenv("COURSE_SUBMISSION", raising=False)
    for name in ("exercises", "solutions"):
        (tmp_path / name).mkdir()
    # A student repository with solutions/ checked out: their own work is graded.
    assert default_submission(for_grading=True, root=tmp_path) == tmp_path / "exercises"
    (tmp_path / "autograder" / "suites").mkdir(parents=True)  # the course's own repository
    assert default_submission(for_grading=True, root=tmp_path) == tmp_path / "solutions"
    assert default_submission(for_grading=False, root=tmp_path) == tmp_path / "exercises"
    monkeypatch.setenv("COURSE_SUBMISSION", str(tmp_path / "elsewhere"))  # the variable comes first
    options = RunOptions.resolve({}, default_submission(for_grading=True, root=tmp_path))
    assert options.submission == tmp_path / "elsewhere"


def test_grade_in_a_student_repository_grades_exercises(tmp_path):
    # solutions/ checked out after a deadline must not stand in for the student's stubs; the
    # output (piped here: no terminal) says which folder was graded, as a plain table.
    tree = build_tree(tmp_path / "student")
    report_path = tmp_path / "report.json"
    proc = run_course(
        tree, "grade", "--weeks", "1", "--only", "softmax", "--isolation", "none", "--json", str(report_path)
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(report_path.read_text())
    assert Path(report["submission"]).name == "exercises"
    assert report["max_score"] > 0 and report["score"] < report["max_score"], "the stubs cannot pass"
    first = proc.stderr.splitlines()[0]
    assert first.startswith("course grade: grading exercises/") and "student repository" in first
    # progress: one line per week as it finishes
    assert "w01 Scaled dot-product attention: 0 /" in proc.stderr and "tests passed" in proc.stderr
    # the summary: a plain-text table, no Markdown, no colour, no pytest dots
    assert "\x1b[" not in proc.stdout + proc.stderr
    assert "|---" not in proc.stdout and "## Grade" not in proc.stdout and "passed in" not in proc.stdout
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"Grade: 0 / {report['max_score']:g}") and "exercises/" in lines[0]
    assert any(line.split()[:2] == ["week", "title"] for line in lines)
    row = next(line for line in lines if line.startswith("w01 "))
    assert row.split()[-6:] == [
        "0",
        "/",
        f"{report['max_score']:g}",
        "0",
        "/",
        str(len(report["weeks"]["w01"]["tests"])),
    ]
    assert "w01: what to fix" in proc.stdout and "not implemented yet" in proc.stdout


def test_grade_help_states_the_default_submission():
    proc = course("grade", "--help", env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "exercises/ (your work) in a student repository" in text
    assert "autograder/suites/" in text and "solutions/ (the reference)" in text


# --------------------------------------------------------------------------- course grade: the summary
def run_in_terminal(args: list[str], env: dict, cols: int = 120, timeout: float = 300) -> tuple[int, str]:
    """Runs `python -m autograder ARGS` with a pseudo-terminal of ``cols`` columns as its
    stdin, stdout and stderr, as from an interactive shell; returns (exit code, what it showed)."""
    master, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, cols, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "autograder", *args],
        cwd=ROOT,
        env=env,
        stdin=child,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every process holding the terminal has closed it
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def test_grade_on_a_terminal_shows_a_coloured_table_and_progress():
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env["TERM"] = "xterm-256color"
    args = ["grade", "--submission", "exercises", "--weeks", "1", "--only", "softmax", "--isolation", "none"]
    code, shown = run_in_terminal(args, env)
    assert code == 0, shown[-3000:]
    assert "Traceback" not in shown
    assert "\x1b[1;31mGrade: 0 / " in shown, "the grade, bold and red at zero"
    assert "\x1b[31m0 / " in shown, "the week's score in red"
    assert "%|" in shown and "test/s" in shown, "a progress bar while the tests run"
    plain = re.sub(r"\x1b\[[0-9;]*m", "", shown)
    assert "w01 Scaled dot-product attention: 0 /" in plain, "a line when the week finishes"
    assert re.search(r"^week +title +score +passed$", plain, re.M)
    assert re.search(r"^w01 +Scaled dot-product attention +0 / \d+ +0 / \d+$", plain, re.M)
    assert "|---" not in plain and "## Grade" not in plain


def test_colours_only_for_a_terminal_without_no_color(monkeypatch):
    from autograder.console import Painter, use_colour

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert use_colour(Terminal()) and not use_colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_colour(Terminal())
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert not use_colour(Terminal())
    assert Painter(False)("x", "red") == "x" and Painter(True)("x", "red") == "\x1b[31mx\x1b[0m"


def test_grade_summary_keeps_student_text_off_the_terminal():
    from autograder.console import grade_summary

    test = {
        "id": "t",
        "name": "evil\x1b]0;title\x07 name",
        "status": "failed",
        "score": 0.0,
        "max_score": 1.0,
    }
    test["message"] = "line one \x1b[2J\nline two"
    week = {"title": "W", "score": 0.0, "max_score": 1.0, "tests": [test]}
    report = {"score": 0.0, "max_score": 1.0, "seed": 1, "isolation": "process", "grader_version": "0"}
    text = grade_summary({**report, "weeks": {"w01": week}}, colour=False)
    assert "\x1b" not in text and "\x07" not in text
    assert "line one" in text and "line two" not in text


# --------------------------------------------------------------------------- a mistake: a clear message
def test_grade_checks_every_report_path_before_grading(tmp_path):
    for option in ("--json", "--markdown", "--junit", "--classroom"):
        started = time.monotonic()
        proc = course("grade", "--weeks", "1", option, "/nodir/r.out")
        message = assert_error(
            proc, 2, f"{option} /nodir/r.out", "/nodir does not exist", "nothing was graded"
        )
        assert "grading" not in message.split("nothing was graded")[0].split(":", 1)[0]
        assert "course grade: grading" not in proc.stderr, "checked before grading starts"
        assert time.monotonic() - started < 60
    (tmp_path / "dir").mkdir()
    assert_error(course("grade", "--json", str(tmp_path / "dir")), 2, "is a folder")


def test_test_with_a_missing_submission_folder():
    assert_error(course("test", "1", "--submission", "/nope"), 2, "/nope does not exist", "exercises/")


def test_diff_of_a_file_that_is_not_utf8(tmp_path):
    (tmp_path / "w01_attention.py").write_bytes(b"# caf\xe9\ndef softmax(x):\n    return x\n")
    message = assert_error(course("diff", "1", "--submission", str(tmp_path)), 2, "is not UTF-8", "0xe9")
    assert "w01_attention.py" in message and "save it as UTF-8" in message


def test_diff_side_by_side(tmp_path):
    proc = course("diff", "1", "--side-by-side", "--width", "100")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["yours/w01_attention.py", "reference/w01_attention.py"]
    assert all(len(line) <= 100 for line in lines)
    assert any(line[48:51] == " | " for line in lines), "a changed line beside its reference"
    assert any(line[48:51] == " > " for line in lines), "a line only the reference has"
    assert_error(course("diff", "1", "-y", "--width", "10"), 2, "--width 10 is too narrow")


def test_side_by_side_pairs_and_wraps():
    from autograder.cli import side_by_side

    a = ["same\n", "mine\n", "gone\n"]
    b = ["same\n", "theirs is a much longer line\n"]
    rows = list(side_by_side(a, b, "L", "R", width=33, context=1))  # columns of 15
    assert rows == [
        "L" + " " * 14 + "   R\n",
        "@@ L 1-3 | R 1-2 @@\n",
        "same" + " " * 11 + "   same\n",
        "mine" + " " * 11 + " | theirs is a muc\n",
        " " * 15 + "   h longer line\n",
        "gone" + " " * 11 + " <\n",
    ]
    assert list(side_by_side(a, a, "L", "R", width=40)) == []


def _reader_gone(*args: str) -> subprocess.CompletedProcess:
    """Runs a command whose stdout is a pipe nobody reads any more (`… | head -1` after head has
    exited): its reading end is closed before the command writes anything."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "autograder", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=300)
    return subprocess.CompletedProcess(args, proc.returncode, "", stderr)


def test_a_closed_pipe_stops_quietly(tmp_path):
    from autograder.cli import EXIT_BROKEN_PIPE

    bare_report(tmp_path / "reports" / "ada.json")
    for args in (["diff", "1"], ["gradebook", str(tmp_path / "reports"), "--out", str(tmp_path / "book")]):
        proc = _reader_gone(*args)
        assert proc.returncode == EXIT_BROKEN_PIPE == 141, (args, proc.returncode, proc.stderr)
        assert proc.stderr == "", f"{args}: expected silence, got {proc.stderr!r}"


def test_head_of_course_diff_in_a_shell():
    proc = subprocess.run(
        f"{shlex.quote(sys.executable)} -m autograder diff 1 | head -1",
        shell=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and proc.stdout == "--- yours/w01_attention.py\n"
    assert proc.stderr == ""


def test_sample_with_a_missing_checkpoint():
    assert_error(course("sample", "--", "--checkpoint", "/nope"), 2, "--checkpoint /nope", "best.pt")


def test_train_with_missing_data():
    assert_error(course("train", "--", "--data", "/nope"), 2, "/nope does not exist", "--data")


def test_capstone_with_an_unknown_impl():
    assert_error(course("train", "--impl", "mine"), 2, "--impl must be one of solutions, exercises")


def test_classroom_fetch_with_a_missing_roster(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "autograder.classroom", "fetch", "--roster", "/nope.csv", "--out", "x"],
        cwd=tmp_path,  # the engine of ROOT, run from elsewhere
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_error(proc, 2, "/nope.csv", "No such file or directory", "student,repository")
    assert not (tmp_path / "x").exists()


def test_roster_with_a_wrong_header(tmp_path):
    from autograder.classroom.roster import load_roster

    (tmp_path / "r.csv").write_text("login,repo\nada,org/a\n")
    with pytest.raises(ValueError, match=r"r\.csv:1: the header is 'login,repo' \(expected a CSV"):
        load_roster(tmp_path / "r.csv")


def _help_of(text: str, option: str) -> str:
    """The help text argparse prints beside ``option`` (COLUMNS is wide: one line), or on the
    line below it when the option's own text is long."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        names, _, help_text = line.strip().partition("  ")
        if re.match(rf"(.*, )?{re.escape(option)}(?=[ ,]|$)", names) and not line.startswith("usage"):
            below = lines[i + 1].strip() if i + 1 < len(lines) else ""
            return help_text.strip() or ("" if below.startswith("-") else below)
    raise AssertionError(f"{option} is not in:\n{text}")


def test_help_says_what_every_option_is():
    for command, options in (
        ("test", ("--seed", "--isolation", "--submission", "--public")),
        ("grade", ("--seed", "--isolation")),
        ("diff", ("week", "--submission", "--side-by-side", "--width", "--context")),
        ("sync", ("--check", "--force")),
    ):
        proc = course(command, "--help", env={**os.environ, "COLUMNS": "400"})
        assert proc.returncode == 0, proc.stderr
        for option in options:
            assert len(_help_of(proc.stdout, option)) > 15, f"course {command} {option} has no help"
