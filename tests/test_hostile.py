"""Bad input and hostile submissions: each ends in a complete report, and wrong code gets no points.

Every case grades week 1 under process isolation, as the authoritative grader does.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.helpers import ROOT, grade, make_submission, results_by_function

# One worker runs this file: its module fixtures are built once (dev.sh: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_hostile")

REFERENCE = (ROOT / "solutions" / "w01_attention.py").read_text()
STUB = (ROOT / "exercises" / "w01_attention.py").read_text()
WRONG = REFERENCE.replace(  # a plain bug: attention without the 1/sqrt(d_k) scale
    "scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)", "scores = q @ k.transpose(-2, -1)"
)
FAST = ("--test-limit", "3")
FUTURE = "from __future__ import annotations\n"


def _prepend(code: str, module: str) -> str:
    """Hostile code placed first in the module, right after its __future__ import."""
    return module.replace(FUTURE, FUTURE + code, 1)


@pytest.fixture(scope="module")
def full_marks(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("reference")
    code, report = grade(make_submission(tmp / "sub"), ["w01"], tmp)
    assert code == 0 and report["weeks"]["w01"]["score"] == report["weeks"]["w01"]["max_score"]
    return report


def _grade_module(
    tmp_path, module_text: str, *extra_files: tuple[str, str], extra_args=FAST, only: str | None = None
) -> dict:
    """Grade a week-1 module; ``only`` limits grading to the tests a case is about (a case about
    the whole report grades every test)."""
    sub = make_submission(tmp_path / "sub")
    (sub / "w01_attention.py").write_text(module_text)
    for name, text in extra_files:
        (sub / name).write_text(text)
    code, report = grade(sub, ["w01"], tmp_path, *extra_args, *(("--only", only) if only else ()))
    assert code == 0, "grading must finish with a report whatever the submission does"
    assert report is not None
    return report


def _assert_complete(report: dict, full_marks: dict, only: str | None = None) -> None:
    expected = {t["id"] for t in full_marks["weeks"]["w01"]["tests"]}
    if only:
        words = only.split(" or ")
        expected = {i for i in expected if any(w in i for w in words)}
    got = {t["id"] for t in report["weeks"]["w01"]["tests"]}
    assert got == expected, "every test of the week must appear in the report"
    if not only:
        assert report["weeks"]["w01"]["max_score"] == full_marks["weeks"]["w01"]["max_score"]


def _score(report: dict) -> float:
    return report["weeks"]["w01"]["score"]


SCALE_TESTS = ("test_sdpa_matches_pytorch_3d", "test_sdpa_matches_pytorch_4d_masked")
SCALE_ONLY = " or ".join(SCALE_TESTS)


def _wrong_code_loses(report: dict) -> None:
    results = results_by_function(report, "w01")
    for name in SCALE_TESTS:
        assert results[name]["status"] != "passed", f"wrong attention passed {name}"


def test_syntax_error(tmp_path, full_marks):
    report = _grade_module(tmp_path, REFERENCE + "\ndef broken(:\n    pass\n")
    _assert_complete(report, full_marks)
    assert _score(report) == 0
    message = report["weeks"]["w01"]["tests"][0]["message"]
    assert "SyntaxError" in message


def test_import_raises(tmp_path, full_marks):
    report = _grade_module(tmp_path, _prepend('raise RuntimeError("boom at import")\n', REFERENCE))
    _assert_complete(report, full_marks)
    assert _score(report) == 0
    assert all("boom at import" in t["message"] for t in report["weeks"]["w01"]["tests"])


def test_missing_function(tmp_path, full_marks):
    text = REFERENCE.replace("def padding_mask(", "def _padding_mask_renamed(")
    report = _grade_module(tmp_path, text, only="padding_mask or sdpa_matches_pytorch_3d")
    _assert_complete(report, full_marks, "padding_mask or sdpa_matches_pytorch_3d")
    results = results_by_function(report, "w01")
    assert results["test_padding_mask"]["status"] == "error"
    assert "`padding_mask` is missing" in results["test_padding_mask"]["message"]
    assert results["test_sdpa_matches_pytorch_3d"]["status"] == "passed", "other functions are still graded"


def test_wrong_signature(tmp_path, full_marks):
    text = REFERENCE.replace(
        "def causal_mask(T_q: int, T_k: int | None = None, device=None) -> torch.Tensor:",
        "def causal_mask(T_q: int) -> torch.Tensor:\n    T_k, device = None, None",
    )
    report = _grade_module(tmp_path, text, only="causal_mask")
    _assert_complete(report, full_marks, "causal_mask")
    results = results_by_function(report, "w01")
    assert results["test_causal_mask_bottom_right"]["status"] == "error"
    assert "TypeError" in results["test_causal_mask_bottom_right"]["message"]
    assert results["test_causal_mask_square"]["status"] == "passed"


def test_infinite_loop_in_a_function(tmp_path, full_marks):
    text = REFERENCE.replace(
        '    """Boolean (B, T) mask, True at real tokens', '    while True:\n        pass\n    """x', 1
    )
    report = _grade_module(tmp_path, text, only="padding_mask or sdpa_matches_pytorch_3d")
    _assert_complete(report, full_marks, "padding_mask or sdpa_matches_pytorch_3d")
    results = results_by_function(report, "w01")
    assert results["test_padding_mask"]["status"] == "timeout"
    assert results["test_sdpa_matches_pytorch_3d"]["status"] == "passed"


def test_infinite_loop_at_import_is_not_retried_by_every_test(tmp_path, full_marks):
    report = _grade_module(tmp_path, _prepend("while True:\n    pass\n", REFERENCE))
    _assert_complete(report, full_marks)
    assert _score(report) == 0
    durations = sum(t["duration"] for t in report["weeks"]["w01"]["tests"])
    assert durations < 30, "one import time-out must not cost every test its full limit"


def test_huge_allocation(tmp_path, full_marks):
    text = REFERENCE.replace(
        "    positions = torch.arange(T, device=lengths.device)  # (T,)",
        "    hog = torch.ones(5 * 2**30)  # 20 GB of float32\n    positions = torch.arange(T, device=lengths.device)",
    )
    report = _grade_module(tmp_path, text, only="padding_mask or sdpa_matches_pytorch_3d")
    _assert_complete(report, full_marks, "padding_mask or sdpa_matches_pytorch_3d")
    results = results_by_function(report, "w01")
    assert results["test_padding_mask"]["status"] in ("error", "timeout")
    assert results["test_sdpa_matches_pytorch_3d"]["status"] == "passed"


def test_os_exit_at_import(tmp_path, full_marks):
    report = _grade_module(tmp_path, _prepend("import os\nos._exit(0)\n", REFERENCE))
    _assert_complete(report, full_marks)
    assert _score(report) == 0


def test_os_exit_inside_a_function(tmp_path, full_marks):
    text = REFERENCE.replace(
        "    positions = torch.arange(T, device=lengths.device)  # (T,)",
        "    import os\n    os._exit(0)",
    )
    report = _grade_module(tmp_path, text, only="padding_mask or sdpa_matches_pytorch_3d")
    _assert_complete(report, full_marks, "padding_mask or sdpa_matches_pytorch_3d")
    results = results_by_function(report, "w01")
    assert results["test_padding_mask"]["status"] == "error"
    assert "exited" in results["test_padding_mask"]["message"]
    assert results["test_sdpa_matches_pytorch_3d"]["status"] == "passed"


def test_fake_pytest_summary(tmp_path, full_marks):
    fake = 'import sys\nprint("=== 25 passed in 0.01s ===")\nsys.stderr.write("25 passed, 0 failed\\n")\n'
    report = _grade_module(tmp_path, _prepend(fake, WRONG), only=SCALE_ONLY)
    _assert_complete(report, full_marks, SCALE_ONLY)
    _wrong_code_loses(report)


def test_conftest_pytest_ini_and_sitecustomize(tmp_path, full_marks):
    conftest = (
        "import pytest\n"
        "@pytest.hookimpl(hookwrapper=True)\n"
        "def pytest_runtest_makereport(item, call):\n"
        "    outcome = yield\n"
        "    outcome.get_result().outcome = 'passed'\n"
    )
    ini = "[pytest]\naddopts = -p no:course\n"
    site = "import torch\ntorch.allclose = lambda *a, **k: True\n"
    report = _grade_module(
        tmp_path,
        WRONG,
        ("conftest.py", conftest),
        ("pytest.ini", ini),
        ("sitecustomize.py", site),
        only=SCALE_ONLY,
    )
    _assert_complete(report, full_marks, SCALE_ONLY)
    _wrong_code_loses(report)


def test_torch_py_beside_the_modules(tmp_path, full_marks):
    shadow = "raise ImportError('this is not torch')\n"
    only = "softmax or sdpa"
    report = _grade_module(tmp_path, REFERENCE, ("torch.py", shadow), only=only)
    _assert_complete(report, full_marks, only)
    assert _score(report) == report["weeks"]["w01"]["max_score"], "a stray torch.py must not break real code"
    report = _grade_module(
        tmp_path / "wrong", WRONG, ("torch.py", "allclose = lambda *a, **k: True\n"), only=SCALE_ONLY
    )
    _wrong_code_loses(report)


def test_monkeypatching_comparisons(tmp_path, full_marks):
    patch = (
        "import torch, torch.testing\n"
        "torch.allclose = lambda *a, **k: True\n"
        "torch.equal = lambda *a, **k: True\n"
        "torch.isclose = lambda a, b, **k: torch.ones_like(a, dtype=torch.bool)\n"
        "torch.testing.assert_close = lambda *a, **k: None\n"
    )
    report = _grade_module(tmp_path, _prepend(patch, WRONG), only=SCALE_ONLY)
    _assert_complete(report, full_marks, SCALE_ONLY)
    _wrong_code_loses(report)
    assert _score(report) < report["weeks"]["w01"]["max_score"]


def test_writing_to_the_report_path(tmp_path, full_marks):
    target = tmp_path / "report.json"
    forged = json.dumps({"score": 999, "max_score": 999, "weeks": {}})
    writer = f"import pathlib\npathlib.Path({str(target)!r}).write_text({forged!r})\n"
    report = _grade_module(tmp_path, _prepend(writer, WRONG), only=SCALE_ONLY)
    _assert_complete(report, full_marks, SCALE_ONLY)
    assert report["score"] < report["max_score"]
    _wrong_code_loses(report)


def test_untouched_stub_scores_zero_with_a_complete_report(tmp_path, full_marks):
    report = _grade_module(tmp_path, STUB)
    _assert_complete(report, full_marks)
    assert _score(report) == 0
    assert all("not implemented yet" in t["message"] for t in report["weeks"]["w01"]["tests"])


def test_missing_module_file(tmp_path, full_marks):
    sub = make_submission(tmp_path / "sub")
    (sub / "w01_attention.py").unlink()
    shutil.rmtree(sub / "__pycache__", ignore_errors=True)
    code, report = grade(sub, ["w01"], tmp_path, *FAST)
    assert code == 0
    _assert_complete(report, full_marks)
    assert _score(report) == 0
    assert "No module named" in report["weeks"]["w01"]["tests"][0]["message"]


def _can_run_as(user: str) -> bool:
    import os
    import subprocess
    import sys

    if os.geteuid() != 0:
        return False
    try:
        return (
            subprocess.run([sys.executable, "-c", "import torch"], user=user, capture_output=True).returncode
            == 0
        )
    except (OSError, KeyError):
        return False


@pytest.mark.skipif(
    not _can_run_as("nobody"), reason="needs root and an interpreter that user 'nobody' can run"
)
def test_sandbox_user_cannot_touch_the_grader(tmp_path, full_marks):
    """Under --sandbox-user the submission cannot write outside its own directory."""
    victim = tmp_path / "victim.txt"
    victim.write_text("intact")
    writer = f"import pathlib\ntry:\n    pathlib.Path({str(victim)!r}).write_text('owned')\nexcept OSError:\n    pass\n"
    sub = make_submission(tmp_path / "sub")
    (sub / "w01_attention.py").write_text(_prepend(writer, REFERENCE))
    code, report = grade(sub, ["w01"], tmp_path, "--sandbox-user", "nobody")
    assert code == 0 and report["weeks"]["w01"]["score"] == full_marks["weeks"]["w01"]["score"]
    assert victim.read_text() == "intact"
