"""`course grade` and `course test`: run the week suites through pytest and build the report.

Trust: pytest runs *here* with the course repository's own configuration; only the
hidden suites (autograder/suites/) and the course's own copy of the public tests
(exercises/tests/) are collected. Nothing from the submission directory is collected or
imported in this process: its code runs in the children of `autograder.isolation`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from . import __version__
from .options import RunOptions, carry
from .plugin import STATE, State
from .weeks import ROOT, WEEKS, Week, get_week

SUITES = Path(__file__).resolve().parent / "suites"
PUBLIC = ROOT / "exercises" / "tests"


def test_paths(weeks: list[Week], public_only: bool = False) -> list[str]:
    paths = []
    for week in weeks:
        paths.extend(str(p) for p in sorted(PUBLIC.glob(f"test_{week.module}*.py")))
        hidden = SUITES / week.module
        if hidden.is_dir() and not public_only:
            paths.append(str(hidden))
    return paths


class _Collector:
    """Keeps the plugin state of the pytest run so the report can be built after it."""

    state: State | None = None

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.state = session.config.stash[STATE]


class _WeekProgress:
    """Tells ``progress`` (an `autograder.console.Progress`) each test and each week as it
    finishes: a week is done when its last collected test has been torn down."""

    def __init__(self, progress) -> None:
        self.progress = progress
        self.config: pytest.Config | None = None
        self.week_of: dict[str, str] = {}
        self.left: dict[str, int] = {}
        self.started: dict[str, float] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        from .plugin import item_week

        self.config = session.config
        for item in session.items:
            week = item_week(item)
            if week is not None:
                self.week_of[item.nodeid] = week.id
                self.left[week.id] = self.left.get(week.id, 0) + 1
        self.progress.start(dict(self.left))

    def pytest_runtest_logstart(self, nodeid: str, location) -> None:
        week_id = self.week_of.get(nodeid)
        if week_id is not None:
            self.started.setdefault(week_id, time.monotonic())

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        week_id = self.week_of.get(report.nodeid)
        if report.when != "teardown" or week_id is None:
            return
        self.progress.test_done(week_id)
        self.left[week_id] -= 1
        if self.left[week_id] == 0 and self.config is not None:
            rows = [r for r in self.config.stash[STATE].results if r.week == week_id]
            seconds = time.monotonic() - self.started.get(week_id, time.monotonic())
            self.progress.week_done(week_id, get_week(week_id).title, rows, seconds)


def run_pytest(
    options: RunOptions,
    weeks: list[Week],
    *,
    public_only: bool = False,
    only: str | None = None,
    quiet: bool = True,
    extra: list[str] | None = None,
    progress=None,
) -> tuple[pytest.ExitCode | int, State | None]:
    """Runs the weeks' tests on ``options.submission``; returns pytest's exit code and the
    plugin's state (None when nothing ran). ``only``: a pytest ``-k`` expression; ``progress``:
    an `autograder.console.Progress` to tell. The options reach the plugin as an object."""
    paths = test_paths(weeks, public_only)
    if not paths:
        return pytest.ExitCode.NO_TESTS_COLLECTED, None
    args = [*paths, f"--rootdir={ROOT}", "-c", str(ROOT / "pyproject.toml"), "-p", "no:cacheprovider"]
    # Only the course's plugin: whatever else is installed (hypothesis, anyio, xdist…) has no
    # say in a grade, and importing them cost every grading run seconds.
    args += ["--disable-plugin-autoload", "-p", "autograder.plugin"]
    args += ["-m", " or ".join(w.id for w in weeks)]
    if only:
        args += ["-k", only]
    if quiet:
        args += ["-q", "--assert=plain", "-p", "no:warnings", "--no-header", "-rN", "--tb=no"]
    args += extra or []
    collector = _Collector()
    plugins: list = [collector, carry(options)]
    if progress is not None:
        plugins.append(_WeekProgress(progress))
    try:
        code = pytest.main(args, plugins=plugins)
    finally:
        if progress is not None:
            progress.close()
    return code, collector.state


def build_report(state: State, weeks: list[Week], submission: Path) -> dict:
    report_weeks = {}
    for week in weeks:
        rows = [r for r in state.results if r.week == week.id]
        report_weeks[week.id] = {
            "title": week.title,
            "score": sum(r.score for r in rows),
            "max_score": sum(r.max_score for r in rows),
            "tests": [
                {k: v for k, v in asdict(r).items() if k not in ("week", "grader_error")} for r in rows
            ],
        }
    return {
        "schema_version": 1,
        "score": sum(w["score"] for w in report_weeks.values()),
        "max_score": sum(w["max_score"] for w in report_weeks.values()),
        "submission": str(submission),
        "seed": state.seed,
        "isolation": state.isolation,
        "sandbox": state.describe_sandbox(),
        # False when the grader itself failed somewhere: the listed problems are not the
        # submission's, and the affected tests must be graded again.
        "complete": not state.grader_errors,
        "grader_errors": list(state.grader_errors),
        "grader_version": __version__,
        "python": sys.version.split()[0],
        "weeks": report_weeks,
    }


def resolve_weeks(keys: list[str] | None, submission: Path) -> list[Week]:
    if keys:
        # In course order whatever the order asked: an earlier week's tests always run (and
        # finish) before a later week loads that week's reference beside a submission.
        return sorted({get_week(k) for k in keys}, key=lambda w: w.number)
    # Default: every week whose module exists in the submission (or all, if none does).
    present = [
        w for w in WEEKS if (submission / f"{w.module}.py").exists() or (submission / w.module).is_dir()
    ]
    return present or list(WEEKS)
