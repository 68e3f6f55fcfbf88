"""The grade itself: reference = full marks, stubs = 0, reports well-formed and reproducible."""

from __future__ import annotations

import ast
import base64
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from autograder import report as render
from autograder.sandbox import jail
from autograder.weeks import ROOT, WEEKS, get_week
from tests.helpers import grade, make_submission

# One worker runs this file: its module fixtures are built once (dev.sh: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_grading")

SUITES = ROOT / "autograder" / "suites"
GRADED_WEEKS = [w.id for w in WEEKS if (SUITES / w.module).is_dir()]
# Where a jail can be built, tests/test_jail.py grades the reference on every week, through the
# same per-test child processes (inside the jail); this file then grades two weeks, enough for the
# report's schema and renderings, instead of every week a second time. Elsewhere it grades all.
REFERENCE_WEEKS = GRADED_WEEKS if jail.available() is not None else ["w01", "w02"]


@pytest.fixture(scope="module")
def reference_report(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("grade-ref")
    code, report = grade(
        make_submission(tmp / "sub"),
        REFERENCE_WEEKS,
        tmp,
        "--junit",
        str(tmp / "junit.xml"),
        "--markdown",
        str(tmp / "report.md"),
        "--classroom",
        str(tmp / "classroom.txt"),
    )
    assert code == 0
    report["_tmp"] = str(tmp)
    return report


def test_reference_gets_full_marks(reference_report):
    for week_id, week in reference_report["weeks"].items():
        failing = [(t["name"], t["message"][:300]) for t in week["tests"] if t["status"] != "passed"]
        assert not failing, f"{week_id}: the reference fails {failing}"
        assert week["score"] == week["max_score"] > 0


def test_stubs_get_zero(tmp_path):
    # In-process: a stub only raises NotImplementedError (test_hostile grades one under process
    # isolation, where the whole report must still come back).
    code, report = grade(
        make_submission(tmp_path / "sub", ROOT / "exercises"), GRADED_WEEKS, tmp_path, "--isolation", "none"
    )
    assert code == 0
    for week_id, week in report["weeks"].items():
        passed = [t["name"] for t in week["tests"] if t["status"] == "passed"]
        assert week["score"] == 0, f"{week_id}: untouched stubs pass {passed}"
        assert len(week["tests"]) > 0


def test_report_schema(reference_report):
    for key in (
        "schema_version",
        "score",
        "max_score",
        "submission",
        "isolation",
        "grader_version",
        "seed",
        "weeks",
    ):
        assert key in reference_report
    assert reference_report["schema_version"] == 1 and reference_report["isolation"] == "process"
    for week in reference_report["weeks"].values():
        assert {"score", "max_score", "tests"} <= week.keys()
        for t in week["tests"]:
            assert {"id", "name", "status", "score", "max_score", "message"} <= t.keys()
            assert t["status"] in ("passed", "failed", "error", "timeout", "skipped")


def test_renderings(reference_report):
    from pathlib import Path

    tmp = Path(reference_report["_tmp"])
    root = ET.parse(tmp / "junit.xml").getroot()
    cases = root.findall(".//testcase")
    assert len(cases) == sum(len(w["tests"]) for w in reference_report["weeks"].values())
    assert "## Grade:" in (tmp / "report.md").read_text()
    payload = json.loads(base64.b64decode((tmp / "classroom.txt").read_text()))
    assert payload["version"] == 1 and payload["status"] == "pass"
    assert payload["max_score"] == reference_report["max_score"]
    assert all({"name", "status", "score", "message"} <= t.keys() for t in payload["tests"])


def test_failure_rendering_hides_nothing_it_should_not_show():
    report = {
        "score": 1,
        "max_score": 3,
        "seed": 7,
        "isolation": "process",
        "grader_version": "x",
        "weeks": {
            "w01": {
                "title": "t",
                "score": 1,
                "max_score": 3,
                "tests": [
                    {"id": "a", "name": "ok", "status": "passed", "score": 1, "max_score": 1, "message": ""},
                    {
                        "id": "b",
                        "name": "bad | pipe",
                        "status": "failed",
                        "score": 0,
                        "max_score": 2,
                        "message": "out: not close | more\nsecond line",
                    },
                ],
            }
        },
    }
    text = render.to_markdown(report)
    assert "not close \\| more" in text and "second line" not in text
    payload = json.loads(base64.b64decode(render.to_classroom(report)))
    assert payload["status"] == "fail" and [t["status"] for t in payload["tests"]] == ["pass", "fail"]


def test_same_seed_same_report_and_messages_hold_no_source(tmp_path):
    sub = make_submission(tmp_path / "sub")
    target = sub / "w01_attention.py"
    target.write_text(target.read_text().replace("/ math.sqrt(d_k)", "/ d_k"))
    reports = []
    for i in range(2):
        (tmp_path / str(i)).mkdir()
        # In-process: what is checked (seeding, the messages' text) happens in the grader either way.
        code, report = grade(sub, ["w01"], tmp_path / str(i), "--isolation", "none", seed=99)
        reports.append(report)
    strip = lambda r: [(t["id"], t["status"], t["message"]) for t in r["weeks"]["w01"]["tests"]]  # noqa: E731
    assert strip(reports[0]) == strip(reports[1])
    hidden_source = (SUITES / "w01_attention" / "test_attention.py").read_text()
    for t in reports[0]["weeks"]["w01"]["tests"]:
        for line in t["message"].splitlines():
            assert "check_close(" not in line and "def test_" not in line
    failed = [t for t in reports[0]["weeks"]["w01"]["tests"] if t["status"] == "failed"]
    assert failed and any("1/d_k" in t["message"] for t in failed), "the diagnosis names the bug"
    assert "oracle_sdpa" in hidden_source  # the source exists; it just never reaches a message


def test_isolation_none_agrees_with_process(tmp_path, reference_report):
    code, report = grade(make_submission(tmp_path / "sub"), ["w01"], tmp_path, "--isolation", "none")
    assert code == 0 and report["isolation"] == "none"
    assert report["weeks"]["w01"]["score"] == reference_report["weeks"]["w01"]["score"]


def test_every_graded_test_has_points_and_a_name():
    for path in list(SUITES.rglob("test_*.py")) + list((ROOT / "exercises" / "tests").glob("test_w*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                marks = [ast.unparse(d) for d in node.decorator_list]
                assert any("mark.points(" in m for m in marks), f"{path.name}::{node.name} has no points"
                assert ast.get_docstring(node), f"{path.name}::{node.name} has no docstring (its report name)"


THREADS_AFTER_COLLECTION = """
import threading


def pytest_collection_finish(session):
    names = sorted(t.name for t in threading.enumerate() if t is not threading.main_thread())
    print("EXTRA-THREADS", names)
"""


@pytest.fixture(scope="module")
def collected_w01(tmp_path_factory) -> subprocess.CompletedProcess:
    """`pytest --collect-only -m w01` over every suite, as the grader collects them, with a plugin
    that reports the threads alive once collection is over."""
    plugin = tmp_path_factory.mktemp("threadcheck")
    (plugin / "threadcheck.py").write_text(THREADS_AFTER_COLLECTION)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "w01", "--isolation", "none"]
        + ["-p", "threadcheck", "autograder/suites", "exercises/tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(plugin)},
    )


def test_pytest_marker_selects_exactly_the_week(collected_w01):
    ids = [line for line in collected_w01.stdout.splitlines() if "::" in line]
    assert ids and all("w01_attention" in i for i in ids), ids[:5]


def test_no_suite_runs_anything_beside_the_tests(collected_w01):
    """Collecting every suite leaves the grader with one thread: work started at collection would
    run beside other weeks' tests in the same process and could break them (it once did)."""
    proc = collected_w01
    lines = [line for line in proc.stdout.splitlines() if line.startswith("EXTRA-THREADS")]
    assert lines == ["EXTRA-THREADS []"], (lines, proc.stdout[-1500:], proc.stderr[-1500:])


@pytest.mark.parametrize("key", ["1", "w01", "attention", "w01_attention", 1])
def test_week_names(key):
    assert get_week(key).id == "w01"


def test_unknown_week_is_a_clear_error():
    proc = subprocess.run(
        [sys.executable, "-m", "autograder", "test", "w42"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 2 and "unknown week" in proc.stderr


def test_course_diff_shows_the_reference():
    proc = subprocess.run(
        [sys.executable, "-m", "autograder", "diff", "1"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0
    assert "+++ reference/w01_attention.py" in proc.stdout and "-    raise NotImplementedError" in proc.stdout


def test_solutions_never_import_the_grader():
    for path in (ROOT / "solutions").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.split(".")[0] == "autograder" for n in names), f"{path} imports autograder"


INSTALLED_PLUGIN = """
import os

open(os.environ["PLUGIN_MARK"], "w").write("loaded")


def pytest_collection_modifyitems(items):
    items.clear()  # had it any say, nothing would be graded
"""


def test_installed_pytest_plugins_have_no_say_in_a_grade(tmp_path):
    """A pytest plugin installed beside the grader (an entry point, as pip would register it) is
    not even imported by `course grade`; plain pytest in the same environment does load it."""
    site = tmp_path / "site"
    dist = site / "gradehelper-1.0.dist-info"
    dist.mkdir(parents=True)
    (site / "gradehelper.py").write_text(INSTALLED_PLUGIN)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: gradehelper\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[pytest11]\ngradehelper = gradehelper\n")
    mark = tmp_path / "loaded"
    env = {"PYTHONPATH": str(site), "PLUGIN_MARK": str(mark)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:course", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert mark.exists(), ("the plugin should load in plain pytest", proc.stdout[-800:], proc.stderr[-800:])
    mark.unlink()
    code, report = grade(make_submission(tmp_path / "sub"), ["w02"], tmp_path, "--isolation", "none", env=env)
    assert code == 0 and not mark.exists()
    assert report["weeks"]["w02"]["score"] == report["weeks"]["w02"]["max_score"] > 0
