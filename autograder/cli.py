"""The `course` command. Each subcommand is a thin layer over a module of its own."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import os
import sys
from pathlib import Path

from .weeks import ROOT, get_week, module_path


def _week_list(values: list[str] | None):
    return [get_week(v) for v in values] if values else None


@contextlib.contextmanager
def reaping_orphans():
    """Whatever a submission left running is this process's child by the end (a subreaper
    inherits orphans), and is killed before the command returns: nothing outlives a grade."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    try:
        yield
    finally:
        from ._host import reap

        reap(keep=None)


def cmd_test(args: argparse.Namespace) -> int:
    from .grade import default_submission, resolve_weeks, run_pytest

    submission = Path(args.submission) if args.submission else default_submission(for_grading=False)
    weeks = _week_list(args.weeks) or resolve_weeks(None, submission)
    extra = ["--tb=short", "-p", "no:warnings", "-q"]
    with reaping_orphans():
        code, _ = run_pytest(
            submission,
            weeks,
            seed=args.seed,
            isolation=args.isolation,
            public_only=args.public,
            quiet=False,
            extra=extra,
        )
    return code


def cmd_grade(args: argparse.Namespace) -> int:
    from . import report as render
    from .grade import build_report, default_submission, resolve_weeks, run_pytest
    from .messages import terminal

    submission = Path(args.submission) if args.submission else default_submission(for_grading=True)
    if not submission.is_dir():
        print(f"course grade: no submission directory at {submission}", file=sys.stderr)
        return 2
    weeks = resolve_weeks([w.id for w in _week_list(args.weeks)] if args.weeks else None, submission)
    if args.seed_file:
        try:
            args.seed = int(Path(args.seed_file).read_text().strip())
        except (OSError, ValueError) as exc:
            print(f"course grade: cannot read a seed from {args.seed_file}: {exc}", file=sys.stderr)
            return 2
    extra = [f"--test-limit={args.test_limit}"] if args.test_limit else []
    if args.sandbox_user:
        extra.append(f"--sandbox-user={args.sandbox_user}")
    if args.memory_limit:
        extra.append(f"--memory-limit={args.memory_limit}")
    if args.only:
        extra += ["-k", args.only]
    extra += list(args.engine_options or [])
    with reaping_orphans():
        code, state = run_pytest(
            submission.resolve(), weeks, seed=args.seed, isolation=args.isolation, extra=extra
        )
    if state is None or code in (3, 4):
        print(f"course grade: grading could not run (pytest exit code {code})", file=sys.stderr)
        return 2
    report = build_report(state, weeks, submission)
    # Reports are written only now, after every submission process has been killed.
    if args.json:
        render.write_json(report, Path(args.json))
    if args.markdown:
        Path(args.markdown).write_text(render.to_markdown(report))
    if args.junit:
        render.write_junit(report, Path(args.junit))
    if args.classroom:
        encoded = render.to_classroom(report)
        Path(args.classroom).write_text(encoded + "\n")
        if os.environ.get("GITHUB_OUTPUT"):
            with open(os.environ["GITHUB_OUTPUT"], "a") as fh:
                fh.write(f"result={encoded}\n")
    print(render.to_markdown(report))
    if state.grader_errors:
        print("course grade: the grader itself failed; the report says where:", file=sys.stderr)
        for problem in state.grader_errors:
            print(f"  {terminal(problem)}", file=sys.stderr)
        return 2
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from .sync import MarkerError, sync

    try:
        drifted = sync(check=args.check)
    except MarkerError as exc:
        print(f"course sync: {exc}", file=sys.stderr)
        return 2
    for path in drifted:
        rel = path.relative_to(ROOT)
        print(f"{'drifted' if args.check else 'wrote'}: {rel}")
    if args.check and drifted:
        print("course sync --check: exercises/ differs from what solutions/ generates; run `course sync`.")
        return 1
    if args.check:
        print("course sync --check: exercises/ is in sync with solutions/")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    week = get_week(args.week)
    submission = Path(args.submission) if args.submission else ROOT / "exercises"
    mine, ref = module_path(submission, week), module_path(ROOT / "solutions", week)
    if ref is None:
        print(
            "course diff: the reference solutions are not in this checkout (they are published on the "
            "`solutions` branch after each deadline; `git fetch origin solutions`).",
            file=sys.stderr,
        )
        return 2
    if mine is None:
        print(f"course diff: no {week.module} in {submission}", file=sys.stderr)
        return 2
    pairs = [(mine, ref)]
    if ref.name == "__init__.py":  # a package week: every file of it
        pairs = [(mine.parent / p.relative_to(ref.parent), p) for p in sorted(ref.parent.rglob("*.py"))]
    for left, right in pairs:
        a = left.read_text().splitlines(keepends=True) if left.exists() else []
        b = right.read_text().splitlines(keepends=True)
        sys.stdout.writelines(
            difflib.unified_diff(
                a,
                b,
                f"yours/{left.relative_to(submission)}",
                f"reference/{right.relative_to(ROOT / 'solutions')}",
            )
        )
    return 0


# Commands with parsers of their own: their arguments go to them untouched.
DELEGATED = {
    "release": ("autograder.release", "main", "build the student template (or --solutions tree)"),
    "gradebook": ("autograder.gradebook", "main", "class gradebook from grade reports"),
    "data": ("autograder.data", "main", "fetch a dataset into the cache, verifying sha256"),
    "train": ("autograder.capstone", "train_main", "train the capstone Mini-GPT"),
    "sample": ("autograder.capstone", "sample_main", "sample from a capstone checkpoint"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="course", description="Transformer Deep Dive: tests, grading and tools."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    weeks_help = "weeks as 1, w01 or attention (default: every week present)"

    p = sub.add_parser("test", help="local feedback: run a week's tests against exercises/ (or --submission)")
    p.add_argument("weeks", nargs="*", help=weeks_help)
    p.add_argument("--submission", help="directory with your wNN_*.py modules (default: exercises/)")
    p.add_argument("--public", action="store_true", help="public tests only")
    p.add_argument("--seed", type=int)
    p.add_argument("--isolation", choices=("process", "none"), default="process")
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("grade", help="the authoritative grade: points per test and per week")
    p.add_argument(
        "--submission", help="directory with the wNN_*.py modules (default: solutions/ where present)"
    )
    p.add_argument("--weeks", nargs="+", help=weeks_help)
    p.add_argument("--seed", type=int, help="grading seed (default: random; recorded in the report)")
    p.add_argument(
        "--seed-file", help="read the grading seed from this file (keeps a secret seed out of command lines)"
    )
    p.add_argument(
        "--isolation",
        choices=("process", "none"),
        default="process",
        help="process (authoritative) or none (debugging: student code runs in the grader)",
    )
    p.add_argument("--test-limit", type=float, help="seconds each test may spend in submission code")
    p.add_argument("--sandbox-user", help="run submission processes as this unprivileged user (needs root)")
    p.add_argument(
        "--memory-limit", type=int, metavar="MIB", help="memory of each test's submission processes together"
    )
    # Options for the engine's own pytest plugin, passed by the engine itself (the jail, the
    # project's tests); not for everyday use.
    p.add_argument("--engine-option", dest="engine_options", action="append", help=argparse.SUPPRESS)
    p.add_argument("--only", metavar="EXPR", help="grade only the tests whose names match (pytest -k EXPR)")
    p.add_argument("--json", help="write the JSON report here")
    p.add_argument("--markdown", help="write the Markdown report here (e.g. $GITHUB_STEP_SUMMARY)")
    p.add_argument("--junit", help="write JUnit XML here")
    p.add_argument("--classroom", help="write GitHub Classroom's base64 grader output here")
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("sync", help="regenerate exercises/ from solutions/")
    p.add_argument("--check", action="store_true", help="fail if exercises/ has drifted")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("diff", help="your module beside the reference solution")
    p.add_argument("week")
    p.add_argument("--submission")
    p.set_defaults(func=cmd_diff)

    for name, (_module, _attr, text) in DELEGATED.items():
        sub.add_parser(name, help=text, add_help=False)  # listed in --help; run by main()
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in DELEGATED:
        module, attr, _ = DELEGATED[argv[0]]
        return getattr(importlib.import_module(module), attr)(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyError as exc:  # unknown week names
        print(f"course: {exc.args[0]}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
