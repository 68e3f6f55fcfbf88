"""Shared helpers for the project's own tests: build submissions, grade them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_submission(dest: Path, source: Path = ROOT / "solutions") -> Path:
    """A copy of a package tree (the reference by default), without caches or tests."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    return dest


def grade(
    submission: Path, weeks: list[str], tmp: Path, *extra: str, seed: int = 2024, env: dict | None = None
) -> tuple[int, dict | None]:
    """Runs `course grade` in a subprocess, as an instructor or CI would (``env``: added to ours)."""
    out = tmp / "report.json"
    cmd = [
        sys.executable,
        "-m",
        "autograder",
        "grade",
        "--submission",
        str(submission),
        "--seed",
        str(seed),
        "--json",
        str(out),
        "--weeks",
        *weeks,
        *extra,
    ]
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, env={**os.environ, **(env or {})}
    )
    report = json.loads(out.read_text()) if out.exists() else None
    if report is None:
        print(proc.stdout[-3000:], proc.stderr[-3000:])
    return proc.returncode, report


def results_by_function(report: dict, week: str) -> dict[str, dict]:
    return {t["id"].split("::")[-1].split("[")[0]: t for t in report["weeks"][week]["tests"]}
