"""The suite relies on `--dist loadgroup` keeping each `xdist_group` on one worker: the module
fixtures of a group (a graded class, a release) are then built once. If a pytest/pytest-xdist
combination loses the groups (pytest-dev/pytest-xdist#1386), nothing fails but every worker builds
them again; this test fails instead."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

GROUPED = """
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.xdist_group("one")


@pytest.mark.parametrize("i", range(6))
def test_where(i):
    Path("workers", f"{i}").write_text(os.environ["PYTEST_XDIST_WORKER"])
"""


def test_an_xdist_group_stays_on_one_worker(tmp_path):
    (tmp_path / "test_grouped.py").write_text(textwrap.dedent(GROUPED))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "workers").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup"],
        cwd=tmp_path,
        # xdist alone: the course's plugin (and torch) would only make the workers slow to start.
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTEST_PLUGINS": "xdist.plugin"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    workers = {p.read_text() for p in (tmp_path / "workers").iterdir()}
    assert len(list((tmp_path / "workers").iterdir())) == 6
    assert len(workers) == 1, (
        f"one xdist_group ran on {sorted(workers)}: check the pytest pin in pyproject.toml"
    )
