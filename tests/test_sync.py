"""`course sync`: stubs generated from solution regions, and its error cases."""

from __future__ import annotations

import ast
import hashlib
import subprocess
import sys

import pytest

from autograder.tools.sync import MarkerError, find_regions, make_stub, plan
from autograder.weeks import ROOT
from tests.student_tree import build_tree, run_course

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
    # A copy of the tree with one stub edited by hand must fail the check, and sync must not
    # overwrite the edit unless forced.
    import shutil

    for name in ("solutions", "exercises"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    from autograder.tools.sync import NotPristineError, sync

    assert sync(tmp_path, check=True) == []
    stub = tmp_path / "exercises" / "w01_attention.py"
    stub.write_text(stub.read_text() + "\n# edited\n")
    assert sync(tmp_path, check=True) == [stub]
    with pytest.raises(NotPristineError) as info:
        sync(tmp_path)
    assert info.value.paths == [stub] and stub.read_text().endswith("# edited\n")
    assert sync(tmp_path, force=True) == [stub] and sync(tmp_path, check=True) == []


# --------------------------------------------------------------------------- pristine stubs only
def _edit_solution(tree, week_file="w01_attention.py"):
    """Changes a docstring of the reference, so that its stub changes too."""
    ref = tree / "solutions" / week_file
    ref.write_text(ref.read_text().replace('"""', '"""Revised. ', 1))


def test_sync_rewrites_pristine_stubs_and_records_them(tmp_path):
    # The instructor's flow: the reference changes, the untouched stub follows it.
    from autograder.tools.sync import MANIFEST, read_manifest, sync

    tree = build_tree(tmp_path / "course", suites=True)
    _edit_solution(tree)
    proc = run_course(tree, "sync")
    stub = tree / "exercises" / "w01_attention.py"
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "wrote: exercises/w01_attention.py" in proc.stdout
    assert stub.read_text().startswith('"""Revised. ')
    recorded = read_manifest(tree)
    assert recorded[stub] == hashlib.sha256(stub.read_bytes()).hexdigest()
    assert (tree / MANIFEST).read_text().count("  exercises/") == len(recorded)
    assert sync(tree, check=True) == []


def test_sync_refuses_to_overwrite_a_students_work(tmp_path):
    # A student repository after a deadline: solutions/ checked out beside their own work.
    tree = build_tree(tmp_path / "student")
    mine = tree / "exercises" / "w01_attention.py"
    work = mine.read_text().replace('raise NotImplementedError("w01: implement softmax', "return x  # (", 1)
    mine.write_text(work)
    other = tree / "exercises" / "w02_multihead.py"
    other.write_bytes(other.read_bytes() + b"# caf\xe9 (Latin-1, not UTF-8)\n")
    untouched = tree / "exercises" / "w03_positional.py"
    before = untouched.read_bytes()
    _edit_solution(tree, "w03_positional.py")  # a stub sync could rewrite: it still must not, alone
    proc = run_course(tree, "sync")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "exercises/w01_attention.py" in proc.stderr and "exercises/w02_multihead.py" in proc.stderr
    assert "w03_positional" not in proc.stderr, "a pristine stub is not someone's work"
    assert "nothing was written" in proc.stderr and "student repository" in proc.stderr
    assert "--force" in proc.stderr
    assert mine.read_text() == work and other.read_bytes().endswith(b"\xe9 (Latin-1, not UTF-8)\n")
    assert untouched.read_bytes() == before, "nothing is written when anything is refused"


def test_sync_force_overwrites(tmp_path):
    tree = build_tree(tmp_path / "course", suites=True)
    stub = tree / "exercises" / "w01_attention.py"
    generated = stub.read_text()
    stub.write_text(generated + "# a hand edit\n")
    refused = run_course(tree, "sync")
    assert refused.returncode == 1 and "exercises/w01_attention.py" in refused.stderr
    assert "put those edits in solutions/" in refused.stderr
    proc = run_course(tree, "sync", "--force")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert stub.read_text() == generated


def test_check_in_a_student_repository_has_nothing_to_check(tmp_path):
    # Without solutions/, and with it beside the student's work: the check (the pre-commit
    # hook's) has nothing to compare and passes, saying so.
    bare = build_tree(tmp_path / "bare", solutions=False)
    proc = run_course(bare, "sync", "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "nothing to check" in proc.stdout and "student repository" in proc.stdout
    assert "in sync" not in proc.stdout

    tree = build_tree(tmp_path / "student")
    mine = tree / "exercises" / "w01_attention.py"
    mine.write_text(mine.read_text() + "# my work\n")
    proc = run_course(tree, "sync", "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "nothing to check" in proc.stdout and "drifted" not in proc.stdout


def test_check_in_the_course_repository_needs_solutions(tmp_path):
    tree = build_tree(tmp_path / "course", solutions=False, suites=True)
    for args in (["sync", "--check"], ["sync"]):
        proc = run_course(tree, *args)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "no solutions/" in proc.stderr and "Traceback" not in proc.stderr


def test_stale_manifest_is_drift(tmp_path):
    from autograder.tools.sync import MANIFEST, sync

    tree = build_tree(tmp_path / "course", suites=True)
    (tree / MANIFEST).unlink()
    assert sync(tree, check=True) == [tree / MANIFEST]
    assert sync(tree) == [tree / MANIFEST] and sync(tree, check=True) == []


def test_the_template_ships_the_record_of_its_stubs(tmp_path):
    # A student's repository starts with exercises/.stubs.sha256: their own sync (solutions/
    # checked out) can tell an untouched stub from their work.
    from autograder.tools import release
    from autograder.tools.sync import MANIFEST, read_manifest

    template = release.build(tmp_path / "template", released=None, git=False)
    recorded = read_manifest(template)
    assert (template / MANIFEST).is_file()
    assert {p.relative_to(template) for p in recorded} == {p.relative_to(ROOT) for p in plan()}
    for path, digest in recorded.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, path
