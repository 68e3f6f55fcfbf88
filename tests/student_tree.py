"""Small repositories built in a temporary folder, to run `python -m autograder …` in them.

A student repository is what `course release` makes of the course: exercises/ (stubs and public
tests), the engine without the hidden suites, pyproject.toml; after a deadline the student may
also have checked out solutions/ from the `solutions` branch. The course's own repository has
the hidden suites too. Commands run with that folder as their working directory import the
engine copied there, so its ROOT is that folder.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from autograder.weeks import ROOT

CACHES = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


def build_tree(dest: Path, *, solutions: bool = True, suites: bool = False) -> Path:
    """A student repository in ``dest`` (with ``suites``: the course's own repository)."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "exercises", dest / "exercises", ignore=CACHES)
    skip = CACHES if suites else shutil.ignore_patterns("suites", "__pycache__", "*.pyc")
    shutil.copytree(ROOT / "autograder", dest / "autograder", ignore=skip)
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")
    if solutions:
        shutil.copytree(ROOT / "solutions", dest / "solutions", ignore=CACHES)
    return dest


def run_course(tree: Path, *args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """`python -m autograder ARGS` inside ``tree``."""
    return subprocess.run(
        [sys.executable, "-m", "autograder", *args],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )
