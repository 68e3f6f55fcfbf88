"""`course sync`: stubs generated from solution regions, and its error cases."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from autograder.sync import MarkerError, find_regions, make_stub, plan
from autograder.weeks import ROOT

SOLUTION = '''"""Doc with a marker in a string:
### BEGIN SOLUTION
"""
import torch


def f(x):
    """Double x."""
    y = 1  # provided code stays
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION


class M:
    def g(self):
        text = "### BEGIN SOLUTION"
        ### BEGIN SOLUTION
        return text
        ### END SOLUTION
'''


def test_stub_replaces_regions_and_keeps_the_rest():
    stub = make_stub(SOLUTION, "w99.py", "w99", "course/w99/notes.md")
    assert "return 2 * x" not in stub and "return text" not in stub
    assert 'raise NotImplementedError("w99: implement f; see course/w99/notes.md")' in stub
    assert 'raise NotImplementedError("w99: implement M.g; see course/w99/notes.md")' in stub
    assert '"""Double x."""' in stub and "y = 1  # provided code stays" in stub
    assert 'text = "### BEGIN SOLUTION"' in stub, "a marker inside a string is not a marker"
    assert stub.startswith('"""Doc with a marker in a string:\n### BEGIN SOLUTION\n"""')
    ast.parse(stub)


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("def f():\n    ### BEGIN SOLUTION\n    return 1\n", "never closed"),
        ("def f():\n    return 1\n    ### END SOLUTION\n", "without a matching"),
        ("def f():\n    ### BEGIN SOLUTION\n    ### BEGIN SOLUTION\n    ### END SOLUTION\n", "nested"),
        ("### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n", "module level"),
    ],
)
def test_marker_errors_name_file_and_line(source, problem):
    with pytest.raises(MarkerError, match=problem) as info:
        find_regions(source, "solutions/w99_demo.py")
    assert "solutions/w99_demo.py:" in str(info.value)


def test_trailing_comment_is_not_a_marker():
    assert find_regions("def f():\n    x = 1  ### BEGIN SOLUTION\n", "a.py") == []


def test_exercises_are_in_sync_and_hold_no_solution():
    proc = subprocess.run(
        [sys.executable, "-m", "autograder", "sync", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for path in plan():
        text = path.read_text()
        assert "### BEGIN SOLUTION" not in text and "### END SOLUTION" not in text


def test_every_stub_imports_cleanly():
    modules = [
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in plan()
        if path.suffix == ".py" and path.name != "__init__.py"
    ]
    # One fresh interpreter imports them all in turn, rather than one interpreter per stub.
    script = (
        "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n    print('ok', m)"
    )
    proc = subprocess.run([sys.executable, "-c", script, *modules], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-400:] + proc.stderr[-800:]
    assert proc.stdout.count("ok ") == len(modules)


def test_check_detects_drift(tmp_path):
    # A copy of the tree with one stub edited by hand must fail the check.
    import shutil

    for name in ("solutions", "exercises"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    from autograder.sync import sync

    assert sync(tmp_path, check=True) == []
    stub = tmp_path / "exercises" / "w01_attention.py"
    stub.write_text(stub.read_text() + "\n# edited\n")
    assert sync(tmp_path, check=True) == [stub]
    assert sync(tmp_path) == [stub] and sync(tmp_path, check=True) == []
