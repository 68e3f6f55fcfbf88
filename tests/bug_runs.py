"""Grades a week's known-bug corpus and judges each bug: caught, and named.

Shared by the corpus test (`tests/test_bug_corpus.py`, which asserts the goals) and the
benchmark (`benchmarks/bug_naming.py`, which prints the table). All of a week's mutants are
graded in one process (`tests.grade_batch`): they are the reference with one edit, not
hostile code, so in-process isolation is enough and torch is imported once.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from autograder.checks import convention
from autograder.weeks import ROOT, get_week, module_path
from tests import bugs as corpus
from tests.bugs import Bug
from tests.helpers import make_submission, results_by_function

WEEK_FILES = sorted(info.name for info in pkgutil.iter_modules(corpus.__path__))
NAMED_GOAL = 0.95  # the share of a week's caught bugs whose message names them


@dataclass
class Outcome:
    bug: Bug
    caught: bool
    named: bool
    problem: str = ""  # why it is not caught or not named, for the listing
    message: str = ""


def week_bugs(name: str) -> list[Bug]:
    return importlib.import_module(f"tests.bugs.{name}").BUGS


def _target(submission: Path, week, bug: Bug) -> Path:
    path = module_path(submission, week)
    return path.parent / bug.file if bug.file else path


def judge_message(bug: Bug, message: str) -> str:
    """Why ``message`` does not name ``bug`` ("" when it does)."""
    text = message.lower()
    missing = [k for k in bug.keywords if k.lower() not in text]
    if not bug.keywords:
        return "the bug declares no keywords"
    if missing:
        return f"the message lacks {missing}"
    if bug.convention and convention(bug.convention).lower() not in text:
        return f"the message does not cite {convention(bug.convention)}"
    return ""


def run_week(name: str, tmp: Path, seed: int = 2024) -> list[Outcome]:
    week = get_week(name)
    bugs = week_bugs(name)
    jobs = []
    for i, bug in enumerate(bugs):
        submission = make_submission(tmp / f"bug{i}")
        target = _target(submission, week, bug)
        source = target.read_text()
        if source.count(bug.old) != 1:
            raise ValueError(f"{name}: {bug.name}: the edit must match the reference exactly once")
        target.write_text(source.replace(bug.old, bug.new))
        # With a named test, grading that test alone proves the point and keeps the corpus fast.
        args = ["--isolation", "none", "--seed", str(seed), *(("--only", bug.catches) if bug.catches else ())]
        jobs.append(
            {
                "submission": str(submission),
                "weeks": [week.id],
                "json": str(tmp / f"bug{i}.json"),
                "args": args,
            }
        )
    (tmp / "jobs.json").write_text(json.dumps(jobs))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.grade_batch", str(tmp / "jobs.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    outcomes = []
    for bug, job in zip(bugs, jobs):
        report = json.loads(Path(job["json"]).read_text())
        if "batch_error" in report:
            outcomes.append(Outcome(bug, False, False, f"the grader failed ({report['batch_error']})"))
            continue
        got = report["weeks"][week.id]
        results = results_by_function(report, week.id)
        if got["score"] >= got["max_score"]:
            outcomes.append(Outcome(bug, False, False, f"not caught by any {week.id} test"))
            continue
        if bug.catches:
            if bug.catches not in results:
                outcomes.append(Outcome(bug, False, False, f"there is no test {bug.catches}"))
                continue
            if results[bug.catches]["status"] == "passed":
                outcomes.append(Outcome(bug, False, False, f"expected {bug.catches} to fail"))
                continue
            messages = [results[bug.catches]["message"]]
        else:
            messages = [t["message"] for t in results.values() if t["status"] != "passed"]
        problems = [judge_message(bug, m) for m in messages]
        named = "" in problems
        outcomes.append(Outcome(bug, True, named, "" if named else problems[0], messages[0]))
    return outcomes
