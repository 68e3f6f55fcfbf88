"""nbgrader for real, with the course's configuration.

Every notebook: released (`generate_assignment`), then its source, solutions in place, handed in
as the reference's submission and autograded, then given feedback. Autograding executes it top to
bottom in a fresh kernel (this interpreter, ``COURSE_IMPL=solutions``, ``MPLBACKEND=Agg``): that
run is also the check that the notebook runs on the reference, the only time the tests execute
it (tests/test_notebooks.py checks it statically). The reference earns every autograded point,
and its feedback page shows that score.

The review notebook, further: sample submissions collected the way the classroom scripts collect
them, autograded by nbgrader's command line; a correct answer that emits a warning keeps its
points; `notebook-feedback` writes every student's page.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.classroom.__main__ import main
from autograder.classroom.notebooks import collect, feedback, run_nbgrader
from autograder.tools import gradebook
from autograder.tools.release import assignment_dirs
from tests.helpers import ROOT

pytest.importorskip("nbgrader")
pytestmark = [
    pytest.mark.xdist_group("test_nbgrader"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:.*not in session.*"),
]

ASSIGNMENTS = [d.name for d in assignment_dirs(ROOT / "course")]  # a new week's notebook is found
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colour codes in kernel tracebacks

CORRECT_WITH_WARNING = '''def dot_product_variance(d_k: int, n: int = 50_000, seed: int = 0) -> float:
    """Sample variance of q·k, shape (n, d_k) draws."""
    import warnings

    warnings.warn("float64 is slow on some GPUs", UserWarning)  # stderr output, not an error
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal((n, d_k)), rng.standard_normal((n, d_k))
    return float(np.var(np.einsum("nd,nd->n", q, k)))
'''
WRONG = """def dot_product_variance(d_k: int, n: int = 50_000, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal((n, d_k)), rng.standard_normal((n, d_k))
    return float(((q * k).sum(axis=1) / d_k).var())  # scaled by 1/d_k: variance 1/d_k
"""
ESSAY = "Parallel over positions, O(1) path length between tokens, no fixed-size bottleneck; O(T²) cost."
REVIEW_POINTS = 44  # review.ipynb: 40 for written answers (13 cells), 4 autograded


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [sys.executable, "-m", "nbgrader", *args, "--log-level=WARN"]
    proc = subprocess.run(cmd, cwd=course, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def answer(nb: dict, grade_id: str, source: str) -> None:
    cell = next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id)
    cell["source"] = source


def grade(course: Path, student: str, cell: str, assignment: str = "review", notebook: str = "review"):
    """The cell's points, or None while it waits for manual grading."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        found = gb.find_grade(cell, notebook, assignment, student)
        return None if found.needs_manual_grade else found.score


@pytest.fixture(scope="session")
def empty_gradebook(tmp_path_factory) -> Path:
    """nbgrader's database, made once and copied: each new one costs an `alembic` process."""
    from nbgrader.api import Gradebook

    path = tmp_path_factory.mktemp("gradebook") / "gradebook.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        Gradebook(f"sqlite:///{path}").close()
    return path


def new_course(dest: Path, assignment: str, empty_gradebook: Path) -> Path:
    """A course folder holding one assignment, released by nbgrader."""
    course = dest / "course"
    course.mkdir(parents=True)
    shutil.copy2(ROOT / "course" / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "course" / assignment, course / assignment, ignore=shutil.ignore_patterns(".*"))
    shutil.copy2(empty_gradebook, course / "gradebook.db")
    run_nbgrader(course, "generate_assignment", assignment)
    return course


@pytest.fixture(scope="session")
def kernels(tmp_path_factory) -> Path:
    """A `python3` kernel spec that runs this interpreter (JUPYTER_PATH comes first), whatever
    other `python3` specs exist: a user-wide one may point at a Python without torch."""
    path = tmp_path_factory.mktemp("jupyter")
    spec = path / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "project", "language": "python"})
    )
    return path


def _source(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_reference_runs_and_gets_full_marks(assignment, tmp_path, monkeypatch, empty_gradebook, kernels):
    """The notebook with its solutions, autograded: it runs without an error, every autograded cell
    gets its points, and the feedback page says so."""
    pytest.importorskip("ipykernel")
    course = new_course(tmp_path, assignment, empty_gradebook)
    submitted = course / "submitted" / "reference" / assignment
    submitted.mkdir(parents=True)
    sources = sorted((course / assignment).glob("*.ipynb"))
    for source in sources:  # the notebooks with their solutions: the reference's submission
        shutil.copy2(source, submitted / source.name)
    # The kernel inherits this environment: the reference, figures without a display, and the
    # project importable from the kernel's working folder (nbgrader's autograded/ copy).
    monkeypatch.setenv("COURSE_IMPL", "solutions")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("JUPYTER_PATH", str(kernels))
    run_nbgrader(course, "autograde", assignment, "reference")
    pages = {page.html.stem: page for page in feedback(course, [assignment])}

    for source in sources:
        name = f"{assignment}/{source.name}"
        cells = json.loads((course / "autograded" / "reference" / name).read_text())["cells"]
        errors = [
            f"cell {index} ({cell['metadata'].get('nbgrader', {}).get('grade_id', 'no grade_id')}): "
            + ANSI.sub("", "\n".join(output.get("traceback", [])) or output.get("ename", ""))
            for index, cell in enumerate(cells)
            if cell["cell_type"] == "code"
            for output in cell.get("outputs", [])
            if output.get("output_type") == "error"
        ]
        assert not errors, f"{name} does not run top to bottom on the reference:\n" + "\n".join(errors)
        graded = [
            cell["metadata"]["nbgrader"]
            for cell in cells
            if cell["metadata"].get("nbgrader", {}).get("grade")
        ]
        automatic = [meta for meta in graded if not meta.get("solution")]  # written answers wait for a person
        lost = {
            meta["grade_id"]: f"{score} of {meta['points']}"
            for meta in automatic
            if (score := grade(course, "reference", meta["grade_id"], assignment, source.stem))
            != meta["points"]
        }
        assert not lost, f"{name}: the reference loses points in {lost}"
        page = pages[source.stem]
        total, full = sum(m["points"] for m in automatic), sum(m["points"] for m in graded)
        assert (page.score, page.max_score) == (total, full)
        assert f"Score: {float(total)} / {float(full)}" in page.html.read_text(), (
            f"{name}: feedback without the score"
        )


@pytest.fixture(scope="module")
def course(tmp_path_factory, empty_gradebook):
    base = tmp_path_factory.mktemp("nbgrader")
    course = new_course(base, "review", empty_gradebook)
    released = json.loads((course / "release" / "review" / "review.ipynb").read_text())
    # Three students' repositories as `classroom fetch` leaves them.
    fetched = base / "fetched"
    for student, code, essay in (
        ("alice", CORRECT_WITH_WARNING, ESSAY),
        ("bob", WRONG, ESSAY),
        ("carol", None, None),
    ):
        nb = json.loads(json.dumps(released))
        if code:
            answer(nb, "dot_product_variance", code)
        if essay:
            answer(nb, "transformers_vs_rnns", essay)
        target = fetched / student / "notebooks" / "course" / "review" / "review.ipynb"
        target.parent.mkdir(parents=True)
        target.write_text(json.dumps(nb))
        (fetched / student / "submission").mkdir()
        meta = {
            "student": student,
            "pushed_at": "2027-03-07T12:00:00+00:00",
            "fetched_at": "2027-03-09T00:00:00+00:00",
        }
        (fetched / student / "meta.json").write_text(json.dumps(meta))
    assert sorted(collect(fetched, course)) == [("alice", "review"), ("bob", "review"), ("carol", "review")]
    return course


def test_released_notebook_is_the_student_version(course):
    released = (course / "release" / "review" / "review.ipynb").read_text()
    assert "BEGIN SOLUTION" not in released and "YOUR ANSWER HERE" in released
    assert "Marking:" not in released, "the model answers and marking notes stay with the instructor"
    cells = json.loads(released)["cells"]
    points = sum(c["metadata"]["nbgrader"].get("points", 0) for c in cells if "nbgrader" in c["metadata"])
    assert points == REVIEW_POINTS
    manual = [
        c for c in cells if c["metadata"].get("nbgrader", {}).get("solution") and c["cell_type"] == "markdown"
    ]
    assert len(manual) == 13, "thirteen written answers, graded by hand"


def test_collected_submissions(course):
    alice = course / "submitted" / "alice" / "review"
    assert (alice / "review.ipynb").is_file() and (alice / "exercises").is_dir()
    assert (alice / "timestamp.txt").read_text().startswith("2027-03-07 12:00:00")


def test_a_warning_costs_points_without_the_course_config(course):
    """The control: nbgrader's default counts any stderr output in a grade cell as a failure."""
    nbgrader(course, "autograde", "review", "--student", "alice", "--force", "--IgnorePattern.enabled=False")
    assert grade(course, "alice", "test_dot_product_variance") == 0


def test_autograde(course, capsys):
    nbgrader(course, "autograde", "review", "--force")
    autograded = json.loads((course / "autograded" / "alice" / "review" / "review.ipynb").read_text())
    test_cell = next(c for c in autograded["cells"] if c.get("id") == "test_dot_product_variance")
    assert not any(o.get("name") == "stderr" for o in test_cell["outputs"])
    assert grade(course, "alice", "test_dot_product_variance") == 2, (
        "a correct cell that warns keeps its points"
    )
    assert grade(course, "bob", "test_dot_product_variance") == 0
    assert grade(course, "carol", "test_dot_product_variance") == 0
    # Written answers wait for a person; an untouched one scores 0 at once.
    assert grade(course, "alice", "transformers_vs_rnns") is None
    assert grade(course, "carol", "transformers_vs_rnns") == 0

    # Feedback, as the instructor makes it: one page per student, with the scores so far.
    assert main(["notebook-feedback", "--course", str(course)]) == 0
    out = capsys.readouterr().out
    assert f"alice: review 2 / {REVIEW_POINTS} (written answers not graded yet)" in out
    assert f"bob: review 0 / {REVIEW_POINTS} (written answers not graded yet)" in out
    assert f"carol: review 0 / {REVIEW_POINTS} ->" in out
    alice = (course / "feedback" / "alice" / "review" / "review.html").read_text()
    assert f"Score: 2.0 / {REVIEW_POINTS:.1f}" in alice and "test_dot_product_variance" in alice
    bob = (course / "feedback" / "bob" / "review" / "review.html").read_text()
    assert f"Score: 0.0 / {REVIEW_POINTS:.1f}" in bob

    book = gradebook.build([], course / "book", nbgrader_db=course / "gradebook.db")
    assert book["students"] == 3
    awaiting = next(n for n in book["notes"] if n.startswith("Notebooks awaiting manual grading"))
    assert "alice (review)" in awaiting and "carol" not in awaiting


def test_notebook_feedback_needs_autograded_work(tmp_path, capsys):
    assert main(["notebook-feedback", "--course", str(tmp_path)]) == 2
    assert "nbgrader_config.py is missing" in capsys.readouterr().err
    shutil.copy2(ROOT / "course" / "nbgrader_config.py", tmp_path)
    assert main(["notebook-feedback", "w01_attention", "--course", str(tmp_path)]) == 2
    assert "nothing autograded for w01_attention" in capsys.readouterr().err
