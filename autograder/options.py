"""A grading run's options: declared once (`OPTIONS`), resolved once (`RunOptions.resolve`).

`course grade` and `course test` (argparse) and ``pytest`` run directly (the plugin's options)
offer the same options, built from the one table below. `course grade` resolves them into a
`RunOptions` and hands that object to the plugin (`carry`), so nothing is relayed as text and
parsed again; a plain ``pytest -m w03`` run resolves them from pytest's options instead. Either
way the environment fallbacks (``COURSE_SUBMISSION``, ``COURSE_SEED``…) apply in
`RunOptions.resolve` and nowhere else.
"""

from __future__ import annotations

import argparse
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Opt:
    flag: str
    help: str
    type: type | None = None
    default: object = None
    env: str | None = None  # read when the option is not given
    choices: tuple | None = None
    switch: bool = False  # a flag without a value (store_true)
    hidden: bool = False  # set by the engine itself (the jail, the project's tests)
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def kwargs(self) -> dict:
        if self.switch:
            return {
                "action": "store_true",
                "default": False,
                "help": argparse.SUPPRESS if self.hidden else self.help,
            }
        kwargs = {"type": self.type, "default": None, "help": argparse.SUPPRESS if self.hidden else self.help}
        if self.choices:
            kwargs["choices"] = self.choices
        if self.metavar:
            kwargs["metavar"] = self.metavar
        return kwargs


OPTIONS = (
    Opt(
        "--submission",
        "folder with the wNN_*.py modules (default: exercises/; `course grade` in the course's own "
        "repository: solutions/)",
        env="COURSE_SUBMISSION",
    ),
    Opt(
        "--seed",
        "the seed the tests draw their inputs from (default: random, printed and recorded in the report); "
        "the same seed and code always give the same results",
        type=int,
        env="COURSE_SEED",
    ),
    Opt(
        "--isolation",
        "process (default, the grade): submission code runs in sandboxed child processes, so a crash or "
        "an endless loop fails one test; none: inside the grader's own process, e.g. to step through it "
        "with a debugger (not a grade anyone should trust)",
        choices=("process", "none"),
        default="process",
        env="COURSE_ISOLATION",
    ),
    Opt("--test-limit", "seconds each test may spend in submission code (at most the week's)", type=float),
    Opt(
        "--sandbox-user",
        "run submission processes as this unprivileged user (needs root)",
        env="COURSE_SANDBOX_USER",
    ),
    Opt(
        "--memory-limit",
        "memory of each test's submission processes together (default 4096)",
        type=int,
        metavar="MIB",
    ),
    Opt("--namespaces", "namespaces the jail made around this run", hidden=True, default=""),
    Opt("--no-landlock", "run without Landlock (tests of kernels without it)", switch=True, hidden=True),
)
BY_DEST = {o.dest: o for o in OPTIONS}


def add_arguments(parser: argparse.ArgumentParser, names: tuple[str, ...] | None = None) -> None:
    """The options (all, or those named by dest) on an argparse parser."""
    for option in OPTIONS:
        if names is None or option.dest in names:
            parser.add_argument(option.flag, **option.kwargs())


def add_pytest_options(group) -> None:
    """The same options on pytest's command line (``pytest --submission … -m w03``)."""
    for option in OPTIONS:
        group.addoption(option.flag, dest=option.dest, **option.kwargs())


@dataclass(frozen=True)
class RunOptions:
    submission: Path
    seed: int
    isolation: str = "process"
    test_limit: float | None = None
    sandbox_user: str | None = None
    memory_limit: int | None = None  # MiB
    namespaces: tuple[str, ...] = ()
    landlock: bool = True

    @classmethod
    def resolve(cls, given: Mapping, default_submission: Path) -> RunOptions:
        """From values as given (None: not given) to a run's options: environment fallbacks,
        defaults, types, and a random seed when none is given."""
        values = {}
        for dest, option in BY_DEST.items():
            value = given.get(dest)
            if value in (None, "") and option.env and os.environ.get(option.env):
                value = option.type(os.environ[option.env]) if option.type else os.environ[option.env]
            values[dest] = option.default if value is None else value
        seed = values["seed"]
        return cls(
            submission=Path(values["submission"] or default_submission).resolve(),
            seed=random.SystemRandom().randrange(2**31) if seed is None else int(seed),
            isolation=values["isolation"],
            test_limit=values["test_limit"],
            sandbox_user=values["sandbox_user"] or None,
            memory_limit=values["memory_limit"],
            namespaces=tuple(n for n in (values["namespaces"] or "").split(",") if n),
            landlock=not values["no_landlock"],
        )


class Carrier:
    """A pytest plugin object that carries a resolved `RunOptions` to `autograder.plugin`."""

    NAME = "course-run-options"

    def __init__(self, options: RunOptions):
        self.options = options


def carry(options: RunOptions) -> Carrier:
    return Carrier(options)


def default_submission(for_grading: bool, root: Path | None = None) -> Path:
    """The folder graded or tested when no ``--submission`` is given.

    (``$COURSE_SUBMISSION``, where set, comes first: `RunOptions.resolve`.) `course grade` grades the reference,
    solutions/, only in the course's own repository: the one holding the hidden suites
    (autograder/suites/, see `sync.is_course_repository`). Everywhere else, a student
    repository above all, it is exercises/, even with solutions/ checked out from the
    `solutions` branch: the reference must never stand in for a student's own work.
    `course test` always works on exercises/."""
    from .weeks import ROOT, is_course_repository

    root = root or ROOT
    if for_grading and is_course_repository(root) and (root / "solutions").is_dir():
        return root / "solutions"
    return root / "exercises"
