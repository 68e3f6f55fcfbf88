"""Handing the notebooks students committed to nbgrader.

`collect` turns fetched submissions (`roster.fetch`) into nbgrader's
``course/submitted/<student>/<assignment>/`` folders: the student's notebook(s) of each
assignment, a copy of their ``exercises/`` package beside them (the week notebooks import the
student's own module), and ``timestamp.txt`` (when the work was handed in) for nbgrader's late
flags. Then, from ``course/``: ``nbgrader autograde <assignment>``, the written answers by hand
(``nbgrader formgrader``), and `feedback`: ``nbgrader generate_feedback``, one HTML page per
student and notebook with every cell's score, under ``course/feedback/<student>/<assignment>/``.

Autograding executes student code: run it where grading runs (the sandboxed CI job, or a
container), not on a personal machine.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..tools.release import assignment_dirs


def collect(submissions: Path, course: Path) -> list[tuple[str, str]]:
    """Returns the (student, assignment) pairs written under ``course/submitted``."""
    written = []
    assignments = {d.name: sorted(p.name for p in d.glob("*.ipynb")) for d in assignment_dirs(course)}
    for student_dir in sorted(p for p in submissions.iterdir() if (p / "meta.json").exists()):
        meta = json.loads((student_dir / "meta.json").read_text())
        for assignment, notebooks in assignments.items():
            theirs = student_dir / "notebooks" / "course" / assignment
            found = [theirs / name for name in notebooks if (theirs / name).is_file()]
            if not found:
                continue
            dest = course / "submitted" / meta["student"] / assignment
            if dest.exists():
                shutil.rmtree(dest)
            dest.mkdir(parents=True)
            for nb in found:
                shutil.copyfile(nb, dest / nb.name)
            if (student_dir / "submission").is_dir():
                shutil.copytree(student_dir / "submission", dest / "exercises")
            handed_in = meta.get("pushed_at") or meta.get("fetched_at")
            (dest / "timestamp.txt").write_text(handed_in.replace("T", " ") + "\n")
            written.append((meta["student"], assignment))
    return written


# nbgrader's steps that `run_nbgrader` runs, by their command-line names.
STEPS = {
    "generate_assignment": "GenerateAssignment",
    "autograde": "Autograde",
    "generate_feedback": "GenerateFeedback",
}


def _course(course: Path):
    """nbgrader's configuration and course folder, from ``course/nbgrader_config.py``."""
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    if not (course / "nbgrader_config.py").is_file():
        raise ValueError(f"{course}/nbgrader_config.py is missing: is {course} the course folder?")
    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    return config, CourseDirectory(config=config)


def run_nbgrader(course: Path, step: str, assignment: str, student: str = "*") -> None:
    """``nbgrader STEP ASSIGNMENT --force`` as run from ``course/`` with its nbgrader_config.py,
    in this process: one interpreter start (and nbgrader import) for any number of steps.
    Raises RuntimeError when the step fails."""
    import nbgrader.converters

    config, coursedir = _course(course)
    coursedir.assignment_id = assignment
    if step != "generate_assignment":
        coursedir.student_id = student
    app = getattr(nbgrader.converters, STEPS[step])(coursedir=coursedir, config=config)
    app.force = True
    try:
        app.start()
    except nbgrader.converters.NbGraderException as exc:  # nbgrader has logged why
        raise RuntimeError(f"nbgrader {step} {assignment} failed: {exc or 'see its log above'}") from exc


@dataclass(frozen=True)
class Feedback:
    """One student's feedback page for one notebook, and the score it shows."""

    student: str
    assignment: str
    html: Path
    score: float
    max_score: float
    awaiting_manual_grade: bool  # written answers not graded yet: the score may still rise


def feedback(course: Path, assignments: list[str] | None = None) -> list[Feedback]:
    """``nbgrader generate_feedback`` for every autograded submission of ``assignments`` (default:
    every assignment autograded so far): ``course/feedback/<student>/<assignment>/<notebook>.html``.
    Run it once the written answers are graded: a page shows the gradebook's scores at that moment."""
    from nbgrader.api import Gradebook

    _, coursedir = _course(course)
    root = Path(coursedir.root)
    autograded = {}  # assignment -> its autograded notebooks, autograded/<student>/<assignment>/*.ipynb
    for path in sorted((root / coursedir.autograded_directory).glob("*/*/*.ipynb")):
        autograded.setdefault(path.parent.name, []).append(path)
    wanted = assignments or sorted(autograded)
    missing = [a for a in wanted if a not in autograded]
    if missing:
        raise ValueError(f"nothing autograded for {', '.join(missing)}: run nbgrader autograde first")
    # A page shows each test cell as autograding ran it, with its hidden tests put back.
    hidden = [
        a
        for a in wanted
        if any(
            "BEGIN HIDDEN TESTS" in nb.read_text()
            for nb in (root / coursedir.source_directory / a).glob("*.ipynb")
        )
    ]
    if hidden:
        raise ValueError(f"{', '.join(hidden)}: its feedback would show students the hidden tests")
    for assignment in wanted:
        run_nbgrader(course, "generate_feedback", assignment)
    pages = []
    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        for assignment in wanted:
            for path in autograded[assignment]:
                student, notebook = path.parent.parent.name, path.stem
                html = root / coursedir.feedback_directory / student / assignment / f"{notebook}.html"
                graded = gb.find_submission_notebook(notebook, assignment, student)
                pages.append(
                    Feedback(
                        student, assignment, html, graded.score, graded.max_score, graded.needs_manual_grade
                    )
                )
    return pages
