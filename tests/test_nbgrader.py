"""nbgrader for real: `nbgrader generate_assignment` and `nbgrader autograde` with the course's
configuration on the review notebook, with sample submissions collected the way the classroom
scripts collect them. A correct answer that emits a warning keeps its points."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import gradebook
from autograder.classroom.notebooks import collect
from tests.helpers import ROOT

pytest.importorskip("nbgrader")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:.*not in session.*")

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


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [sys.executable, "-m", "nbgrader", *args, "--log-level=WARN"]
    proc = subprocess.run(cmd, cwd=course, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def answer(nb: dict, grade_id: str, source: str) -> None:
    cell = next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id)
    cell["source"] = source


def grade(course: Path, student: str, cell: str) -> float | None:
    """The cell's points, or None while it waits for manual grading."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        found = gb.find_grade(cell, "review", "review", student)
        return None if found.needs_manual_grade else found.score


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    base = tmp_path_factory.mktemp("nbgrader")
    course = base / "course"
    course.mkdir()
    shutil.copy2(ROOT / "course" / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "course" / "review", course / "review")
    nbgrader(course, "generate_assignment", "review", "--force")
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
            "pushed_at": "2027-02-14T12:00:00+00:00",
            "fetched_at": "2027-02-16T00:00:00+00:00",
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
    assert points == 24
    manual = [
        c for c in cells if c["metadata"].get("nbgrader", {}).get("solution") and c["cell_type"] == "markdown"
    ]
    assert len(manual) == 5, "five written answers, graded by hand"


def test_collected_submissions(course):
    alice = course / "submitted" / "alice" / "review"
    assert (alice / "review.ipynb").is_file() and (alice / "exercises").is_dir()
    assert (alice / "timestamp.txt").read_text().startswith("2027-02-14 12:00:00")


def test_a_warning_costs_points_without_the_course_config(course):
    """The control: nbgrader's default counts any stderr output in a grade cell as a failure."""
    nbgrader(course, "autograde", "review", "--student", "alice", "--force", "--IgnorePattern.enabled=False")
    assert grade(course, "alice", "test_dot_product_variance") == 0


def test_autograde(course):
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

    book = gradebook.build([], course / "book", nbgrader_db=course / "gradebook.db")
    assert book["students"] == 3
    page = (course / "book" / "summary.html").read_text()
    assert "alice: notebooks awaiting manual grading: review" in page
    assert "carol: notebooks awaiting manual grading" not in page
