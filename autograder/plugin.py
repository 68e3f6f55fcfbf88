"""The pytest plugin: week markers, points, fixtures that reach the submission, and results.

Loaded through the ``pytest11`` entry point, so ``pytest -m w03`` works in any checkout
with the package installed. Fixtures for tests:

* ``submission``: a `Session` on the submission for this test (a fresh child process
  under process isolation); ``submission.module("w04_blocks")``, ``.run(driver, …)``,
  ``.source()``.
* ``student``: ``submission.module()`` for the test's own week.
* ``seed`` / ``gen``: the grading seed and a ``torch.Generator`` derived from it and the
  test's name, so inputs are fresh per seed and identical for the same seed.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from . import messages
from .checks import GradingFailure
from .isolation import (
    GraderError,
    InProcessSession,
    IsolatedSession,
    Limits,
    SandboxUser,
    Spawner,
    SubmissionError,
)
from .options import OPTIONS, Carrier, RunOptions, add_pytest_options, default_submission
from .weeks import WEEKS, reference_modules

SUITES_DIR = Path(__file__).resolve().parent / "suites"


@dataclass
class Result:
    id: str
    name: str
    week: str
    status: str  # passed | failed | error | timeout | skipped
    score: float
    max_score: float
    message: str
    duration: float
    hidden: bool
    grader_error: bool = False


@dataclass
class State:
    options: RunOptions
    spawner: Spawner | None = None
    week_spent: dict[str, float] = field(default_factory=dict)
    import_failures: dict[str, SubmissionError] = field(default_factory=dict)
    results: list[Result] = field(default_factory=list)
    grader_errors: list[str] = field(default_factory=list)
    sandbox: dict = field(default_factory=dict)  # what the report's `sandbox` block says

    # What the rest of the engine reads off a run.
    @property
    def submission_dir(self) -> Path:
        return self.options.submission

    @property
    def seed(self) -> int:
        return self.options.seed

    @property
    def isolation(self) -> str:
        return self.options.isolation

    @property
    def limits(self) -> Limits:
        mib = self.options.memory_limit
        return Limits(memory_bytes=mib << 20) if mib else Limits()

    def describe_sandbox(self) -> dict:
        """The report's ``sandbox`` block: what protected this run, in figures."""
        if self.isolation == "none":
            info = {"isolation": "none", "user": None, "landlock_abi": 0, "cgroup": None}
        elif self.spawner is not None:
            info = {"isolation": "process", **self.spawner.describe()}
        else:
            info = {"isolation": "process", **self.sandbox}
        namespaces = list(self.options.namespaces)
        info["namespaces"] = namespaces
        info["network"] = "net" not in namespaces
        info["authoritative"] = bool(info.get("user") and {"pid", "mount", "net"} <= set(namespaces))
        return info


STATE = pytest.StashKey[State]()


# --------------------------------------------------------------------------- options & markers
def pytest_addoption(parser: pytest.Parser) -> None:
    add_pytest_options(parser.getgroup("course", "Transformer Deep Dive grading"))


def pytest_configure(config: pytest.Config) -> None:
    for week in WEEKS:
        config.addinivalue_line("markers", f"{week.id}: {week.title} (week {week.number})")
    config.addinivalue_line("markers", "points(n): the points a test is worth in the rubric")
    config.addinivalue_line("markers", "limit(seconds): wall-clock limit of the test's submission calls")
    carried = [p for p in config.pluginmanager.get_plugins() if isinstance(p, Carrier)]
    if carried:  # `course grade` / `course test`: resolved already
        options = carried[0].options
    else:  # pytest run directly
        given = {o.dest: config.getoption(o.dest) for o in OPTIONS}
        options = RunOptions.resolve(given, default_submission(for_grading=False))
    config.stash[STATE] = state = State(options)
    if options.isolation == "process" and (carried or config.getoption("submission")):
        _start_spawner(state)  # grading a given submission: start now, overlapping collection


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> None:
    # Start the isolation process as soon as a week's test file is about to be imported:
    # its torch import then overlaps with the one collection does here.
    state: State = parent.config.stash[STATE]
    if (
        state.isolation == "process"
        and state.spawner is None
        and not state.grader_errors
        and file_path.suffix == ".py"
        and _week_of_path(file_path) is not None
    ):
        _start_spawner(state)


def _start_spawner(state: State) -> None:
    """Submission processes for this run; a failure here is the grader's, recorded as such
    (every test that needs a submission process then errors with that message)."""
    try:
        name = state.options.sandbox_user
        user = SandboxUser.lookup(name) if name else None
        state.spawner = Spawner(user, state.limits, landlock=state.options.landlock)
    except (GraderError, OSError) as exc:
        state.grader_errors.append(f"could not start the submission processes: {exc}")


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash[STATE]
    return [f"course: submission={state.submission_dir} seed={state.seed} isolation={state.isolation}"]


def _week_of_path(path: Path):
    for week in WEEKS:
        if path.name.startswith(f"test_{week.module}") or week.module in path.parts:
            return week
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Week markers follow from where a test lives, so `-m w03` cannot miss one.
    for item in items:
        week = _week_of_path(Path(str(item.fspath)))
        if week is not None and item.get_closest_marker(week.id) is None:
            item.add_marker(getattr(pytest.mark, week.id))


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is not None and state.spawner is not None:
        state.sandbox = state.spawner.describe()
        state.spawner.close()
        state.spawner = None


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    # Children die before anyone writes a report.
    pytest_unconfigure(session.config)


# --------------------------------------------------------------------------- fixtures
def item_week(item: pytest.Item):
    for week in WEEKS:
        if item.get_closest_marker(week.id) is not None:
            return week
    return None


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    return request.config.stash[STATE].seed


@pytest.fixture
def gen(request: pytest.FixtureRequest, seed: int) -> torch.Generator:
    salt = zlib.crc32(request.node.name.encode())
    return torch.Generator().manual_seed((seed * 1_000_003 + salt) % 2**63)


@pytest.fixture
def submission(request: pytest.FixtureRequest):
    state: State = request.config.stash[STATE]
    week = item_week(request.node)
    if week is None:
        raise pytest.UsageError(f"{request.node.nodeid}: a test using `submission` needs a week marker")
    marker = request.node.get_closest_marker("limit")
    test_limit = float(marker.args[0]) if marker else week.test_limit_s
    if state.options.test_limit:
        test_limit = min(test_limit, state.options.test_limit)
    remaining = week.limit_s - state.week_spent.get(week.id, 0.0)
    reference = reference_modules(week)
    if state.isolation == "none":
        session = InProcessSession(state.submission_dir, week.id, week.module, reference)
    else:
        if state.spawner is None and not state.grader_errors:
            _start_spawner(state)
        if state.spawner is None:
            raise GraderError(state.grader_errors[-1])
        limit = max(0.0, min(test_limit, remaining))
        session = IsolatedSession(state.spawner, state.submission_dir, week.id, week.module, reference, limit)
    session.import_failures = state.import_failures
    started = time.monotonic()
    yield session
    session.close()
    state.week_spent[week.id] = state.week_spent.get(week.id, 0.0) + time.monotonic() - started


@pytest.fixture
def student(submission):
    """The test's own week module, as a proxy."""
    return submission.module()


# --------------------------------------------------------------------------- outcomes
def _test_name(item: pytest.Item) -> str:
    doc = getattr(getattr(item, "function", None), "__doc__", None)
    if doc and doc.strip():
        return doc.strip().splitlines()[0].rstrip(".")
    return item.name.removeprefix("test_").replace("_", " ")


def classify(excinfo) -> tuple[str, str]:
    """(status, message) for a failed call; never includes the hidden test's source."""
    exc = excinfo.value
    if isinstance(exc, GraderError):
        return "error", f"the grader failed here, not your code ({exc}); this test will be graded again"
    if isinstance(exc, SubmissionError):
        message = str(exc)
        if exc.traceback:
            message += "\n\nYour code's traceback:\n" + exc.traceback.rstrip()
        return exc.status, message
    if isinstance(exc, GradingFailure):
        return "failed", str(exc)
    if isinstance(exc, AssertionError):
        return "failed", str(exc).split("\nassert ")[0] or "a check failed"
    if isinstance(exc, pytest.skip.Exception):
        return "skipped", str(exc)
    # The test could not use what the submission returned (a tuple for a tensor, say).
    return "error", f"the grader could not use your result: {type(exc).__name__}: {exc}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    week = item_week(item)
    hidden = SUITES_DIR in Path(str(item.fspath)).resolve().parents
    if call.excinfo is not None and not report.skipped:
        status, message = classify(call.excinfo)
        if isinstance(call.excinfo.value, GraderError):
            state: State = item.config.stash[STATE]
            state.grader_errors.append(f"{item.nodeid}: {call.excinfo.value}")
            item.stash[_GRADER_ERROR] = True
        if hidden or isinstance(call.excinfo.value, (SubmissionError, GradingFailure)):
            # the student's traceback, never the hidden source
            report.longrepr = messages.terminal(message, keep="ends")
    elif report.skipped:
        status, message = "skipped", str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""
    else:
        status, message = "passed", ""
    item.stash.setdefault(_OUTCOMES, []).append((report.when, status, message, report.duration))
    if report.when == "teardown" and week is not None:
        _record(item, week, hidden)


_OUTCOMES = pytest.StashKey[list]()
_GRADER_ERROR = pytest.StashKey[bool]()


def _record(item: pytest.Item, week, hidden: bool) -> None:
    state: State = item.config.stash[STATE]
    marker = item.get_closest_marker("points")
    points = float(marker.args[0]) if marker else 1.0
    phases = item.stash.get(_OUTCOMES, [])
    status, message = "passed", ""
    for when, phase_status, phase_message, _ in phases:
        if phase_status != "passed":
            status, message = phase_status, phase_message
            if when == "setup" and phase_status == "failed":
                status = "error"
            break
    duration = sum(d for *_, d in phases)
    grader_error = item.stash.get(_GRADER_ERROR, False)
    state.results.append(
        Result(
            id=item.nodeid,
            name=_test_name(item),
            week=week.id,
            status=status,
            score=points if status == "passed" else 0.0,
            max_score=points,
            message=messages.clean(message, keep="ends"),  # the summary and the traceback's end
            duration=round(duration, 4),
            hidden=hidden,
            grader_error=grader_error,
        )
    )


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if not state or not state.results:
        return
    terminalreporter.section("course: points")
    for week in WEEKS:
        rows = [r for r in state.results if r.week == week.id]
        if rows:
            got = sum(r.score for r in rows)
            total = sum(r.max_score for r in rows)
            terminalreporter.write_line(f"{week.id} {week.title}: {got:g} / {total:g}")
    terminalreporter.write_line(f"seed {state.seed} (rerun with --seed {state.seed})")
