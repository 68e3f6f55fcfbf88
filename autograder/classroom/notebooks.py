"""Handing the notebooks students committed to nbgrader.

`collect` turns fetched submissions (`roster.fetch`) into nbgrader's
``course/submitted/<student>/<assignment>/`` folders: the student's notebook(s) of each
assignment, a copy of their ``exercises/`` package beside them (the week notebooks import the
student's own module), and ``timestamp.txt`` (when the work was handed in) for nbgrader's late
flags. Then, from ``course/``: ``nbgrader autograde <assignment>``.

Autograding executes student code: run it where grading runs (the sandboxed CI job, or a
container), not on a personal machine.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..release import assignment_dirs


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
