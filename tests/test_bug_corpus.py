"""Every known bug of a week must cost points in that week's hidden suite.

One test per week grades all of that week's mutants in a single process (`tests.grade_batch`),
each with the test it names (``catches``) where it names one, and lists every bug that got
through.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys

import pytest

from autograder.weeks import ROOT, get_week, module_path
from tests import bugs as corpus
from tests.helpers import make_submission, results_by_function

WEEK_FILES = sorted(info.name for info in pkgutil.iter_modules(corpus.__path__))


def _target(submission, week, bug):
    path = module_path(submission, week)
    return path.parent / bug.file if bug.file else path


@pytest.mark.parametrize("name", WEEK_FILES)
def test_every_known_bug_is_caught_in_its_week(name, tmp_path):
    week = get_week(name)
    bugs = importlib.import_module(f"tests.bugs.{name}").BUGS
    jobs = []
    for i, bug in enumerate(bugs):
        submission = make_submission(tmp_path / f"bug{i}")
        target = _target(submission, week, bug)
        source = target.read_text()
        assert source.count(bug.old) == 1, f"{bug.name}: the edit must match the reference exactly once"
        target.write_text(source.replace(bug.old, bug.new))
        # With a named test, grading that test alone proves the point and keeps the corpus fast.
        args = ["--isolation", "none", "--seed", "2024", *(("--only", bug.catches) if bug.catches else ())]
        jobs.append(
            {
                "submission": str(submission),
                "weeks": [week.id],
                "json": str(tmp_path / f"bug{i}.json"),
                "args": args,
            }
        )
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.grade_batch", str(tmp_path / "jobs.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    missed = []
    for bug, job in zip(bugs, jobs):
        report = json.loads(open(job["json"]).read())
        if "batch_error" in report:
            missed.append(f"{bug.name}: the grader failed ({report['batch_error']})")
            continue
        got = report["weeks"][week.id]
        if got["score"] >= got["max_score"]:
            missed.append(f"{bug.name}: not caught by any {week.id} test")
        elif bug.catches and results_by_function(report, week.id)[bug.catches]["status"] == "passed":
            missed.append(f"{bug.name}: expected {bug.catches} to fail")
    assert not missed, f"{len(missed)} of {len(bugs)} known bugs of {week.id} got through:\n" + "\n".join(
        missed
    )


def test_every_bug_file_names_a_week():
    assert WEEK_FILES, "the corpus is empty"
    for name in WEEK_FILES:
        assert (ROOT / "solutions").exists() and get_week(name)
