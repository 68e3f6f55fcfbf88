"""Every course notebook is committed clean and is an nbgrader assignment nbgrader accepts.

Notebooks are found by globbing ``course/**/*.ipynb``, so a new week's notebook is checked as
soon as it exists. These checks are static; running the notebooks is tests/test_nbgrader.py's
work: it autogrades each one on the reference, which executes it top to bottom once, in a fresh
kernel, and asserts full marks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

from autograder.tools.release import assignment_dirs  # noqa: E402
from autograder.weeks import ROOT, WEEKS  # noqa: E402

NBGRADER_OUTPUTS = ("release", "submitted", "autograded", "feedback", "source_release")
NOTEBOOKS = sorted(
    path
    for path in (ROOT / "course").rglob("*.ipynb")
    # nbgrader's working folders (course/release, submitted, …) hold generated copies, not sources
    if not {".ipynb_checkpoints", *NBGRADER_OUTPUTS} & set(path.relative_to(ROOT / "course").parts)
)
WEEK_DIRS = {week.module for week in WEEKS}
# nbgrader's cell metadata, schema version 3: every key, on every cell that has any.
NBGRADER_KEYS = {"grade", "grade_id", "locked", "schema_version", "solution", "task"}


def _id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def test_notebooks_are_found():
    """The glob sees the course's notebooks (week 1 at least)."""
    assert ROOT / "course" / "w01_attention" / "w01_attention.ipynb" in NOTEBOOKS


def test_every_notebook_is_run_by_the_nbgrader_tests():
    """tests/test_nbgrader.py runs the notebooks of nbgrader assignments (folders of course/): a
    notebook anywhere else would never be executed by the tests."""
    assignments = {d.name for d in assignment_dirs(ROOT / "course")}
    stray = [
        _id(p) for p in NOTEBOOKS if p.parent.parent != ROOT / "course" or p.parent.name not in assignments
    ]
    assert not stray, f"notebooks outside an assignment folder course/<name>/: {stray}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_nbgrader_metadata(path: Path):
    """nbgrader's schema (version 3) on every cell that has a role, and nothing nbgrader
    generate_assignment would refuse: a solution region in a cell not marked as a solution is
    the classic (the notebook is then released by stripping, but cannot be autograded)."""
    pytest.importorskip("nbgrader")
    from autograder.tools.release import nbgrader_problem

    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        meta, where = _nbgrader(cell), f"{_id(path)}: cell {index}"
        marked = [
            m for m in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "BEGIN MARK SCHEME") if m in cell.source
        ]
        assert meta or not marked, f"{where} holds {marked[0]} but has no nbgrader metadata"
        if not meta:
            continue
        assert NBGRADER_KEYS <= set(meta), (
            f"{where}: nbgrader metadata lacks {sorted(NBGRADER_KEYS - set(meta))}"
        )
        assert meta["schema_version"] == 3 and meta["grade_id"], f"{where}: {meta}"
        if meta["solution"] or "BEGIN SOLUTION" in cell.source or "BEGIN MARK SCHEME" in cell.source:
            assert meta["solution"] and not meta["locked"], (
                f"{where}: a solution cell is unlocked, solution: true"
            )
        elif meta["grade"]:
            assert meta["locked"] and cell.cell_type == "code", f"{where}: a test cell is locked code"
        if meta["grade"]:
            assert float(meta.get("points", 0)) > 0, f"{where}: graded cell {meta['grade_id']} has no points"
    assert nbgrader_problem(path) is None, f"{_id(path)}: {nbgrader_problem(path)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_notebook_is_clean(path: Path):
    """Committed without outputs or execution counts (run nbstripout / pre-commit)."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        index
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, f"{_id(path)}: cells {dirty} have outputs or execution counts; run nbstripout"


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.parent.name in WEEK_DIRS], ids=_id)
def test_week_notebook_is_gradable(path: Path):
    """A week's notebook (wNN_slug.ipynb, and any further one in the week's folder, such as
    week 8's lora_encoder.ipynb) has autograded cells with points and a manually graded written
    answer."""
    nb = nbformat.read(path, as_version=4)
    graded = [(cell, _nbgrader(cell)) for cell in nb.cells if _nbgrader(cell).get("grade")]
    for _cell, meta in graded:
        assert meta.get("grade_id"), f"{_id(path)}: a graded cell has no grade_id"
        assert float(meta.get("points", 0)) > 0, f"{_id(path)}: graded cell {meta['grade_id']} has no points"
    ids = [meta.get("grade_id") for cell in nb.cells if (meta := _nbgrader(cell)).get("grade_id")]
    assert len(ids) == len(set(ids)), f"{_id(path)}: duplicate nbgrader grade_ids"
    autograded = [meta for cell, meta in graded if cell.cell_type == "code" and not meta.get("solution")]
    manual = [meta for cell, meta in graded if cell.cell_type == "markdown" and meta.get("solution")]
    assert autograded, f"{_id(path)}: no autograded code cell (nbgrader grade: true, with points)"
    assert manual, f"{_id(path)}: no manually graded markdown cell (nbgrader solution: true, grade: true)"
    for cell in nb.cells:
        if cell.cell_type == "code" and _nbgrader(cell).get("solution"):
            assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source, (
                f"{_id(path)}: solution cell {_nbgrader(cell).get('grade_id')} has no solution region"
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_notebook_opens_in_colab(path: Path, tmp_path, monkeypatch):
    """The first cell is an "Open in Colab" badge for this very notebook; the first code cell
    installs the course on Colab and does nothing anywhere else (nbgrader and these tests run it)."""
    from autograder.tools.release import REPOSITORY_PLACEHOLDER

    nb = nbformat.read(path, as_version=4)
    badge = f"https://colab.research.google.com/github/{REPOSITORY_PLACEHOLDER}/blob/main/{_id(path)}"
    assert nb.cells[0].cell_type == "markdown" and f"]({badge})" in nb.cells[0].source, (
        f"{_id(path)}: the first cell is not the Colab badge linking to {badge}"
    )
    setup = next(cell for cell in nb.cells if cell.cell_type == "code")
    assert '"google.colab" in sys.modules' in setup.source and REPOSITORY_PLACEHOLDER in setup.source, (
        f"{_id(path)}: the first code cell is not the Colab set-up cell"
    )
    assert not _nbgrader(setup) or _nbgrader(setup)["locked"], (
        f"{_id(path)}: the set-up cell is not read-only"
    )
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(setup.source, "setup", "exec"), namespace)  # off Colab: nothing happens
    assert Path.cwd() == tmp_path and not list(tmp_path.iterdir()), (
        f"{_id(path)}: the set-up cell acts off Colab"
    )


def test_colab_setup_cell_is_the_same_everywhere():
    """One set-up cell for the whole course: a fix to it reaches every notebook or none."""
    sources = {
        _id(path): next(
            cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"
        ).source
        for path in NOTEBOOKS
    }
    reference = sources["course/w02_multihead/w02_multihead.ipynb"]
    differ = sorted(name for name, source in sources.items() if source != reference)
    assert not differ, f"set-up cells that differ from week 2's: {differ}"


def test_release_fills_in_the_repository(tmp_path):
    """`course release --repository OWNER/NAME` writes the template repository into the badges
    and set-up cells; a malformed name is refused."""
    from autograder.tools.release import REPOSITORY_PLACEHOLDER, ReleaseError, fill_repository

    source = ROOT / "course" / "w02_multihead" / "w02_multihead.ipynb"
    tree = tmp_path / "tree"
    (tree / "course" / "w02_multihead").mkdir(parents=True)
    (tree / "course" / "w02_multihead" / source.name).write_text(source.read_text())
    (tree / "pyproject.toml").write_text(f"# {REPOSITORY_PLACEHOLDER} stays: not a notebook or a note\n")
    changed = fill_repository(tree, "our-org/transformer-deep-dive")
    assert [p.name for p in changed] == [source.name]
    nb = nbformat.read(tree / "course" / "w02_multihead" / source.name, as_version=4)
    assert REPOSITORY_PLACEHOLDER not in "".join(cell.source for cell in nb.cells)
    assert (
        "https://colab.research.google.com/github/our-org/transformer-deep-dive/blob/main/"
        "course/w02_multihead/w02_multihead.ipynb" in nb.cells[0].source
    )
    setup = next(cell for cell in nb.cells if cell.cell_type == "code")
    assert 'REPOSITORY = "our-org/transformer-deep-dive"' in setup.source
    for bad in ("transformer-deep-dive", "https://github.com/our-org/x", "a/b/c"):
        with pytest.raises(ReleaseError, match="OWNER/NAME"):
            fill_repository(tree, bad)
