"""Every course notebook runs top to bottom on the reference, and is committed clean.

Notebooks are found by globbing ``course/**/*.ipynb``, so a new week's notebook is tested
as soon as it exists. Each notebook is executed in a fresh kernel started with *this*
interpreter (the project's environment), with ``COURSE_IMPL=solutions`` so that it imports
the reference, and ``MPLBACKEND=Agg`` so that figures render without a display.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import AsyncKernelManager  # noqa: E402
from nbclient import NotebookClient  # noqa: E402
from nbclient.exceptions import CellExecutionError  # noqa: E402

from autograder.weeks import ROOT, WEEKS  # noqa: E402

CELL_TIMEOUT_S = 120
KERNEL_NAME = "course-python"
NBGRADER_OUTPUTS = ("release", "submitted", "autograded", "feedback", "source_release")
NOTEBOOKS = sorted(
    path
    for path in (ROOT / "course").rglob("*.ipynb")
    # nbgrader's working folders (course/release, submitted, …) hold generated copies, not sources
    if not {".ipynb_checkpoints", *NBGRADER_OUTPUTS} & set(path.relative_to(ROOT / "course").parts)
)
WEEK_DIRS = {week.module for week in WEEKS}
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colour codes in kernel tracebacks


def _id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


@pytest.fixture(scope="session")
def kernel_specs(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """A kernel spec that runs this interpreter, whatever other ``python3`` specs exist.

    A user-wide ``python3`` spec (``~/.local/share/jupyter``) may point at another Python
    without torch or without the project; naming the interpreter here makes the test run
    the same on a fresh clone, in CI and on a laptop.
    """
    kernels = tmp_path_factory.mktemp("kernels")
    spec_dir = kernels / KERNEL_NAME
    spec_dir.mkdir()
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Transformer Deep Dive (project Python)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(kernels)])


def _kernel_env() -> dict[str, str]:
    env = dict(os.environ)
    env["COURSE_IMPL"] = "solutions"
    env["MPLBACKEND"] = "Agg"
    # The project root first, so `solutions` resolves to this checkout even without an install.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def test_notebooks_are_found():
    """The glob sees the course's notebooks (week 1 at least)."""
    assert ROOT / "course" / "w01_attention" / "w01_attention.ipynb" in NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_notebook_runs_on_the_reference(path: Path, kernel_specs: KernelSpecManager):
    nb = nbformat.read(path, as_version=4)
    km = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=kernel_specs)
    client = NotebookClient(
        nb,
        km=km,
        timeout=CELL_TIMEOUT_S,
        allow_errors=False,
        resources={"metadata": {"path": str(path.parent)}},  # the kernel's working directory
    )
    try:
        client.execute(env=_kernel_env())
    except CellExecutionError as exc:
        pytest.fail(f"{_id(path)}: a cell raised\n{ANSI.sub('', str(exc))}", pytrace=False)
    errors = [
        output
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors, f"{_id(path)}: cells produced errors: {[e.get('ename') for e in errors]}"


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


@pytest.mark.parametrize(
    "path", [p for p in NOTEBOOKS if p.parent.name in WEEK_DIRS and p.stem == p.parent.name], ids=_id
)
def test_week_notebook_is_gradable(path: Path):
    """A week's notebook has autograded cells with points and a manually graded written answer."""
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
