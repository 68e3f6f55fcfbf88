"""Fixtures shared by the whole test session: expensive things are built once.

With pytest-xdist every worker is a session of its own; these fixtures build their product
under the run's common temporary root, behind a file lock, so the first worker to ask builds it
and the others reuse it (the pattern pytest-xdist documents for session fixtures)."""

from __future__ import annotations

from pathlib import Path

import pytest
from filelock import FileLock


def _shared_root(tmp_path_factory, worker_id: str) -> Path:
    root = tmp_path_factory.getbasetemp()
    return root if worker_id == "master" else root.parent


@pytest.fixture(scope="session")
def student_template(tmp_path_factory, worker_id) -> Path:
    """The released student template (a git repository, no nbgrader notebooks), as committed at
    HEAD: built once per test run. Tests clone it; none may change it."""
    from autograder.tools import release
    from tests.classroom_support import copy_course

    root = _shared_root(tmp_path_factory, worker_id)
    target = root / "student-template"
    with FileLock(str(root / "student-template.lock")):
        if not (target / ".git").is_dir():
            release.build(target, root=copy_course(root / "student-template-source"), released=None)
    return target
