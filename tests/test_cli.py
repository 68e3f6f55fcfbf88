"""The `course` command as a person meets it: run as a subprocess, as from a shell, and judged by
its exit code and what it says. A mistake gets a one- or two-line message that says what was
wrong and what was expected, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from autograder.weeks import ROOT


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
