"""Every known bug of a week must cost points in that week's hidden suite."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

from autograder.weeks import ROOT, get_week, module_path
from tests import bugs as corpus
from tests.helpers import grade, make_submission, results_by_function

CASES = []
for info in pkgutil.iter_modules(corpus.__path__):
    week = get_week(info.name)
    for bug in importlib.import_module(f"tests.bugs.{info.name}").BUGS:
        CASES.append(pytest.param(week, bug, id=f"{week.id}-{bug.name.replace(' ', '_')}"))


def _target(submission, week, bug):
    path = module_path(submission, week)
    return path.parent / bug.file if bug.file else path


@pytest.mark.parametrize(("week", "bug"), CASES)
def test_bug_is_caught(week, bug, tmp_path):
    submission = make_submission(tmp_path / "submission")
    target = _target(submission, week, bug)
    source = target.read_text()
    assert source.count(bug.old) == 1, f"{bug.name}: the edit must match the reference exactly once"
    target.write_text(source.replace(bug.old, bug.new))
    # With a named test, grading that test alone proves the point and keeps the corpus fast.
    only = ("--only", bug.catches) if bug.catches else ()
    code, report = grade(submission, [week.id], tmp_path, "--isolation", "none", *only)
    assert code == 0 and report is not None
    got = report["weeks"][week.id]
    assert got["score"] < got["max_score"], f"{bug.name}: not caught by any {week.id} test"
    if bug.catches:
        status = results_by_function(report, week.id)[bug.catches]["status"]
        assert status != "passed", f"{bug.name}: expected {bug.catches} to fail"


def test_every_bug_file_names_a_week():
    names = [info.name for info in pkgutil.iter_modules(corpus.__path__)]
    assert names, "the corpus is empty"
    for name in names:
        assert (ROOT / "solutions").exists() and get_week(name)
