"""`course release`: the student template and the solutions tree.

The trees are built once (from a private copy of the course, with the real `nbgrader
generate_assignment`) and then checked from the outside: nothing marked, hidden or computed by
the reference may be in the template, and pytest must run in it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.tools import release
from autograder.weeks import WEEKS, get_week, module_path
from tests.classroom_support import copy_course, git, hidden_suite_lines, leaks, solution_region_lines

# One worker runs this file: its module fixtures are built once (dev.sh: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_release")

pytest.importorskip("nbgrader")


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    base = tmp_path_factory.mktemp("release")
    root = copy_course(base / "course-repo")
    released = release.release_notebooks(root)
    template = release.build(base / "template", root=root, released=released)
    solutions = release.build(
        base / "solutions", root=root, released=released, solutions=True, weeks=[get_week("w01")]
    )
    return root, template, solutions


def test_template_is_a_fresh_git_repository(trees):
    _, template, _ = trees
    assert git(template, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert len(git(template, "log", "--format=%H").splitlines()) == 1
    assert git(template, "status", "--porcelain") == "", "every file of the template is committed"


def test_template_layout(trees):
    root, template, _ = trees
    for path in (
        "README.md",
        ".gitignore",
        "pyproject.toml",
        ".github/workflows/classroom.yml",
        "course/schedule.toml",
        "exercises/__init__.py",
        "autograder/plugin.py",
        "autograder/classroom/student.py",
    ):
        assert (template / path).is_file(), path
    if (root / "datasets" / "manifest.toml").exists():
        assert (template / "datasets" / "manifest.toml").is_file()
    for week in WEEKS:
        if module_path(root / "solutions", week) is not None:
            assert module_path(template / "exercises", week) is not None, f"no stub for {week.id}"
    for test in (root / "exercises" / "tests").glob("test_*.py"):
        assert (template / "exercises" / "tests" / test.name).read_text() == test.read_text()
    # Every source notebook is released beside its notes; the instructor-only files stay behind.
    for source in (root / "course").glob("*/*.ipynb"):
        assert (template / source.relative_to(root)).is_file(), f"{source.relative_to(root)} not released"
    for notes in (root / "course").glob("*/notes.md"):
        assert (template / notes.relative_to(root)).is_file()
    for private in ("course/nbgrader_config.py", "course/INSTRUCTORS.md", "course/roster.example.csv"):
        assert not (template / private).exists(), private
    readme = (template / "README.md").read_text()
    assert "course test 1" in readme and "hidden" in readme.lower() and "course/grade" in readme
    for week in WEEKS:
        assert f"exercises/{week.module}.py" in readme or f"exercises/{week.module}/" in readme


def test_template_holds_no_solution_hidden_test_or_reference_output(trees):
    root, template, _ = trees
    assert not (template / "solutions").exists()
    assert not (template / "autograder" / "suites").exists()
    assert not (template / "autograder" / "templates").exists()
    solution, hidden = solution_region_lines(root), hidden_suite_lines(root)
    assert len(solution) > 50 and len(hidden) > 50, "the scan needs material to look for"
    assert leaks(template, solution, hidden) == []
    # The scan can fail: a stub with the reference pasted in, a hidden test file copied over.
    assert leaks(root / "solutions", solution, hidden)
    assert leaks(root / "autograder" / "suites", solution, hidden)
    # The released notebooks are nbgrader's student version: stubs where solutions were.
    notebooks = list((template / "course").rglob("*.ipynb"))
    assert notebooks
    for nb in notebooks:
        cells = json.loads(nb.read_text())["cells"]
        solution_cells = [c for c in cells if c["metadata"].get("nbgrader", {}).get("solution")]
        for cell in solution_cells:
            source = "".join(cell["source"])
            assert "YOUR CODE HERE" in source or "YOUR ANSWER HERE" in source, f"{nb.name}: {source[:80]}"


def test_stubs_match_course_sync(trees):
    root, template, _ = trees
    from autograder.tools.sync import plan

    for path, content in plan(root).items():
        assert (template / path.relative_to(root)).read_text() == content


def _pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd)}  # the template's own copy of the engine
    env.pop("COURSE_SUBMISSION", None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "w01", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_pytest_runs_the_public_tests_in_the_template(trees, tmp_path):
    root, built, _ = trees
    template = tmp_path / "clone"  # a student's clone: running tests writes caches into it
    git(tmp_path, "clone", "--quiet", str(built), str(template))
    n_public = (root / "exercises" / "tests" / "test_w01_attention.py").read_text().count("\ndef test_")
    proc = _pytest(template)
    # On the stubs every public test runs and fails (NotImplementedError): that is the start.
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"{n_public} failed" in proc.stdout, proc.stdout[-2000:]
    assert "NotImplementedError" in proc.stdout or "not implemented" in proc.stdout
    # With the reference in place they pass: the template's engine grades for real.
    submission = tmp_path / "submission"
    shutil.copytree(template / "exercises", submission, ignore=shutil.ignore_patterns("tests"))
    shutil.copy2(root / "solutions" / "w01_attention.py", submission / "w01_attention.py")
    proc = _pytest(template, f"--submission={submission}")
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert f"{n_public} passed" in proc.stdout


def test_solutions_tree(trees):
    root, template, solutions = trees
    assert git(solutions, "rev-parse", "--abbrev-ref", "HEAD") == "solutions"
    assert (solutions / "solutions" / "w01_attention.py").read_text() == (
        root / "solutions" / "w01_attention.py"
    ).read_text()
    assert sorted(p.name for p in (solutions / "solutions").iterdir()) == [
        "__init__.py",
        "notebooks",
        "w01_attention.py",
    ]
    # The same tree as the template, plus solutions/.
    files = {
        str(p.relative_to(template)) for p in template.rglob("*") if p.is_file() and ".git" not in p.parts
    }
    extra = {
        str(p.relative_to(solutions)) for p in solutions.rglob("*") if p.is_file() and ".git" not in p.parts
    }
    assert extra - files == {
        "solutions/__init__.py",
        "solutions/w01_attention.py",
        "solutions/notebooks/w01_attention.ipynb",
    }
    assert files - extra == set()
    assert release.audit(solutions, allow_solutions=True) == []
    assert release.audit(solutions)[0] == "solutions/ is in the tree"  # not a template


def test_solutions_tree_holds_each_published_weeks_notebook_solved(trees, tmp_path):
    """A week's solutions include its notebook with the solutions in place: the source notebook,
    without outputs. Weeks not published yet have none."""
    root, _, solutions = trees
    source = root / "course" / "w01_attention" / "w01_attention.ipynb"
    published = solutions / "solutions" / "notebooks" / "w01_attention.ipynb"
    assert sorted(p.name for p in published.parent.iterdir()) == ["w01_attention.ipynb"]
    assert published.read_text() == source.read_text(), "the source notebook, as committed (clean)"
    cells = json.loads(published.read_text())["cells"]
    assert any("### BEGIN SOLUTION" in "".join(c["source"]) for c in cells if c["cell_type"] == "code")
    # Outputs are stripped even from a source notebook that was saved with them.
    nb = json.loads(source.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    code[0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "reference output"}]
    code[0]["execution_count"] = 3
    (tmp_path / "run.ipynb").write_text(json.dumps(nb))
    release.solution_notebook(tmp_path / "run.ipynb", tmp_path / "out" / "run.ipynb")
    assert (tmp_path / "out" / "run.ipynb").read_text() == source.read_text()


def test_audit_catches_what_must_not_ship(trees, tmp_path):
    root, template, _ = trees
    tree = tmp_path / "tree"
    shutil.copytree(template, tree, ignore=shutil.ignore_patterns(".git"))
    assert release.audit(tree) == []
    shutil.copy2(root / "solutions" / "w01_attention.py", tree / "exercises" / "w01_attention.py")
    (tree / "autograder" / "suites").mkdir()
    nb = next((tree / "course").rglob("*.ipynb"))
    data = json.loads(nb.read_text())
    code = next(c for c in data["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "reference output"}]
    nb.write_text(json.dumps(data))
    (tree / "course" / "answers.md").write_text("### BEGIN MARK SCHEME\nthe answer\n")
    problems = "\n".join(release.audit(tree))
    assert "autograder/suites/" in problems
    assert "exercises/w01_attention.py" in problems and "a solution region" in problems
    assert "has outputs" in problems
    assert "course/answers.md:1" in problems


def test_release_refuses_a_non_empty_directory_and_misused_options(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    assert release.main([str(tmp_path / "out")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
    with pytest.raises(SystemExit):
        release.main(["--out", str(tmp_path / "x"), "--weeks", "w01"])  # --weeks needs --solutions


def test_solutions_branch_is_published_week_by_week(tmp_path, monkeypatch):
    from autograder.classroom import solutions
    from autograder.tools.schedule import parse_time

    root = copy_course(tmp_path / "course-repo")
    # Released notebooks are covered above; keep this quick: no nbgrader run, and only week 1's
    # notebook, to see its solved copy published with the template repository in its Colab cells.
    for nb in (root / "course").rglob("*.ipynb"):
        if nb.parent.name != "w01_attention":
            nb.unlink()
    monkeypatch.setattr(solutions, "release_notebooks", lambda root: None)
    remote = tmp_path / "template.git"
    git(tmp_path, "init", "--quiet", "--bare", str(remote))
    schedule = root / "course" / "schedule.toml"

    def publish(when: str) -> str:
        return solutions.publish(
            str(remote),
            through=parse_time(when),
            root=root,
            schedule=schedule,
            repository="our-org/transformer-deep-dive",
        )

    assert "No solutions published yet" in publish("2027-01-18T00:00:00Z")  # before week 1 is due
    assert "already up to date (none due)" in publish("2027-01-18T01:00:00Z")
    assert "Solutions through w01" in publish("2027-01-22T00:00:00Z")  # deadline + late window
    assert "already up to date" in publish("2027-01-23T00:00:00Z")
    published = [w for w in WEEKS[:2] if module_path(root / "solutions", w) is not None]
    publish("2027-01-29T00:00:00Z")
    log = git(remote, "log", "--format=%s", "solutions").splitlines()
    assert log[0].startswith("Solutions through w02") and log[1].startswith("Solutions through w01")
    files = git(remote, "ls-tree", "-r", "--name-only", "solutions").splitlines()
    assert "exercises/w01_attention.py" in files and ".github/workflows/classroom.yml" in files
    in_solutions = sorted(f for f in files if f.startswith("solutions/"))
    expected = ["solutions/__init__.py"] + [
        f"solutions/{module_path(root / 'solutions', w).relative_to(root / 'solutions')}" for w in published
    ]
    assert sorted(f for f in in_solutions if not f.startswith("solutions/notebooks/")) == sorted(expected)
    solved = git(remote, "show", "solutions:solutions/notebooks/w01_attention.ipynb")
    assert release.REPOSITORY_PLACEHOLDER not in solved
    assert (
        "https://colab.research.google.com/github/our-org/transformer-deep-dive/blob/main/"
        "course/w01_attention/w01_attention.ipynb" in solved
    )

    # A new term: the schedule's dates move a year on; the branch is reset, last term's gone.
    schedule.write_text(schedule.read_text().replace("2027-", "2028-"))
    assert "No solutions published yet" in publish("2027-06-01T00:00:00Z")
    files = git(remote, "ls-tree", "-r", "--name-only", "solutions").splitlines()
    assert [f for f in files if f.startswith("solutions/")] == ["solutions/__init__.py"]
    assert "exercises/w01_attention.py" in files, "the template itself stays"


def test_solutions_name_the_repository_they_are_pushed_to():
    """Without an explicit repository, the published notebooks name the one the remote points
    to (`publish-solutions --repository OWNER/NAME` pushes to its clone URL)."""
    from autograder.classroom.gitops import repo_url
    from autograder.classroom.solutions import repository_of

    assert repository_of(repo_url("our-org/transformer-deep-dive")) == "our-org/transformer-deep-dive"
    assert repository_of("git@github.com:our-org/tdd.git") == "our-org/tdd"
    assert repository_of("ssh://git@github.com/our-org/tdd") == "our-org/tdd"
    for local in ("/srv/git/template.git", "./template.git", "file:///srv/git/template.git"):
        assert repository_of(local) is None, local


def test_a_notebook_nbgrader_refuses_is_still_stripped(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.cells = [
        nbformat.v4.new_code_cell(
            "def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x  # the secret\n    ### END SOLUTION"
        ),
        nbformat.v4.new_code_cell("print(f(2))", outputs=[nbformat.v4.new_output("stream", text="4\n")]),
    ]
    source = tmp_path / "broken.ipynb"
    nbformat.write(nb, str(source))
    assert "non-solution cell" in release.nbgrader_problem(source)  # no nbgrader metadata on the cell
    release.strip_notebook(source, tmp_path / "out" / "broken.ipynb")
    stripped = (tmp_path / "out" / "broken.ipynb").read_text()
    assert "the secret" not in stripped and "BEGIN SOLUTION" not in stripped
    assert "raise NotImplementedError()" in stripped and '"outputs": []' in stripped
