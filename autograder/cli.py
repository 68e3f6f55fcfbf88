"""The `course` command. Each subcommand is a thin layer over a module of its own."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import io
import os
import shutil
import sys
from pathlib import Path

from .options import add_arguments
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
        from .child_side import reap

        reap(keep=None)


def _shown(path: Path) -> str:
    """A path as a person would type it: relative to the working directory where it is inside."""
    try:
        rel = path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return str(path)
    return f"{rel}/" if path.is_dir() and str(rel) != "." else str(rel)


def _missing_submission(command: str, submission: Path) -> str | None:
    if submission.is_dir():
        return None
    what = "is not a folder" if submission.exists() else "does not exist"
    return (
        f"{command}: the submission folder {submission} {what} "
        "(expected a folder holding the wNN_*.py modules, such as exercises/)"
    )


def _options(args: argparse.Namespace, for_grading: bool):
    from .options import RunOptions, default_submission

    return RunOptions.resolve(vars(args), default_submission(for_grading))


def cmd_test(args: argparse.Namespace) -> int:
    from .grade import resolve_weeks, run_pytest

    options = _options(args, for_grading=False)
    problem = _missing_submission("course test", options.submission)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    weeks = _week_list(args.weeks) or resolve_weeks(None, options.submission)
    extra = ["--tb=short", "-p", "no:warnings", "-q"]
    with reaping_orphans():
        code, _ = run_pytest(options, weeks, public_only=args.public, quiet=False, extra=extra)
    return int(code)


def _unwritable(path: Path) -> str | None:
    """Why a report could not be written at ``path`` (None when it can)."""
    folder = path.parent
    if path.is_dir():
        return "is a folder (expected the path of a file to write)"
    if not folder.is_dir():
        return f"cannot be written: the folder {folder} does not exist (create it, or choose another path)"
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return "cannot be written: permission denied (choose a path you can write)"
    return None


def _submission_origin(args: argparse.Namespace, submission: Path) -> str:
    """Why this folder is the one graded, for the line `course grade` starts with."""
    from .weeks import is_course_repository

    if args.submission:
        return "--submission"
    if os.environ.get("COURSE_SUBMISSION"):
        return "$COURSE_SUBMISSION"
    if submission.name == "solutions":
        return (
            "the reference: the default in the course's own repository; --submission exercises for the stubs"
        )
    if is_course_repository():
        return "the default here without solutions/"
    return "your work: the default in a student repository, even with solutions/ checked out"


def cmd_grade(args: argparse.Namespace) -> int:
    import pytest

    from . import report as render
    from .console import Progress, grade_summary, use_colour
    from .grade import build_report, resolve_weeks, run_pytest
    from .messages import terminal

    if args.seed_file:
        try:
            args.seed = int(Path(args.seed_file).read_text().strip())
        except (OSError, ValueError) as exc:
            print(f"course grade: cannot read a seed from {args.seed_file}: {exc}", file=sys.stderr)
            return 2
    options = _options(args, for_grading=True)
    submission = options.submission
    problem = _missing_submission("course grade", submission)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    # Every report path is checked now, not after minutes of grading.
    for option in ("json", "markdown", "junit", "classroom"):
        value = getattr(args, option)
        why = _unwritable(Path(value)) if value else None
        if why:
            print(f"course grade: --{option} {value} {why}; nothing was graded", file=sys.stderr)
            return 2
    weeks = resolve_weeks([w.id for w in _week_list(args.weeks)] if args.weeks else None, submission)
    shown = _shown(submission)
    print(
        f"course grade: grading {shown} ({_submission_origin(args, submission)}), "
        f"weeks {', '.join(w.id for w in weeks)}",
        file=sys.stderr,
        flush=True,
    )
    # pytest's own output (dots, its summary) is kept aside: the progress lines and the summary
    # below say it for a person; it is shown only when grading could not run.
    pytest_output = io.StringIO()
    with reaping_orphans(), contextlib.redirect_stdout(pytest_output):
        code, state = run_pytest(options, weeks, only=args.only, progress=Progress(sys.stderr))
    ok = (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED)
    if state is None or code not in ok:  # interrupted, a collection error, pytest's own trouble
        sys.stderr.write(terminal(pytest_output.getvalue(), keep="tail"))
    if state is None or code in (pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR):
        print(f"course grade: grading could not run (pytest: {code!r})", file=sys.stderr)
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
    sys.stdout.write(grade_summary(report, colour=use_colour(sys.stdout), submission=shown))
    if state.grader_errors:
        print("course grade: the grader itself failed; the report says where:", file=sys.stderr)
        for problem in state.grader_errors:
            print(f"  {terminal(problem)}", file=sys.stderr)
        return 2
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from .tools.sync import MarkerError, NotPristineError, sync
    from .weeks import is_course_repository

    name = "course sync --check" if args.check else "course sync"
    course_repository = is_course_repository()
    if args.check and not course_repository:
        # A student repository (the pre-commit hook may run there too): exercises/ is the
        # student's own work, so there is nothing it should match, and the check passes.
        print(
            f"{name}: nothing to check: this is a student repository (no autograder/suites/), "
            "where exercises/ is your own work, not generated from solutions/"
        )
        return 0
    if not (ROOT / "solutions").is_dir():
        expected = (
            "expected the reference solutions, with their solution regions marked"
            if course_repository
            else "in a student repository exercises/ is your own work and needs no sync"
        )
        print(
            f"{name}: there is no solutions/ in {ROOT}, so nothing to generate exercises/ from ({expected})",
            file=sys.stderr,
        )
        return 2
    try:
        drifted = sync(check=args.check, force=args.force)
    except MarkerError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    except NotPristineError as exc:
        print(
            f"{name}: refusing to overwrite {len(exc.paths)} file(s) that are not stubs it generated "
            "(edited since; nothing was written):",
            file=sys.stderr,
        )
        for path in exc.paths:
            print(f"  {path.relative_to(ROOT)}", file=sys.stderr)
        if course_repository:
            hint = "put those edits in solutions/ (exercises/ is generated from it), or `course sync --force`"
        else:
            hint = (
                "this is a student repository: exercises/ is your work and needs no sync "
                "(`course diff WEEK` compares it with the reference); `--force` would replace it"
            )
        print(f"To proceed: {hint}.", file=sys.stderr)
        return 1
    for path in drifted:
        rel = path.relative_to(ROOT)
        print(f"{'drifted' if args.check else 'wrote'}: {rel}")
    if args.check and drifted:
        print(f"{name}: exercises/ differs from what solutions/ generates; run `course sync`.")
        return 1
    if args.check:
        print(f"{name}: exercises/ is in sync with solutions/")
    return 0


class _DiffError(Exception):
    pass


def _read_source(path: Path, shown: str) -> list[str]:
    """A module's lines, or `_DiffError` saying why they cannot be compared as text."""
    if not path.exists():
        return []
    try:
        return path.read_text(encoding="utf-8").splitlines(keepends=True)
    except UnicodeDecodeError as exc:
        raise _DiffError(
            f"{shown} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            "Python source must be UTF-8: save it as UTF-8 and try again"
        ) from None
    except OSError as exc:
        raise _DiffError(f"cannot read {shown}: {exc.strerror}") from None


def side_by_side(a: list[str], b: list[str], left: str, right: str, width: int, context: int = 3):
    """Lines showing ``a`` beside ``b`` in columns of ``(width - 3) // 2`` characters: changed
    hunks with ``context`` lines around them (difflib's grouped opcodes). The gutter says
    ``|`` changed, ``<`` only on the left, ``>`` only on the right; long lines wrap."""
    col = max((width - 3) // 2, 10)

    def cells(text: str | None) -> list[str]:
        if text is None:
            return [""]
        text = text.rstrip("\r\n").expandtabs(4)
        return [text[i : i + col] for i in range(0, len(text), col)] or [""]

    def row(x: str | None, y: str | None, gutter: str):
        xs, ys = cells(x), cells(y)
        for i in range(max(len(xs), len(ys))):
            l_part = xs[i] if i < len(xs) else ""
            r_part = ys[i] if i < len(ys) else ""
            yield f"{l_part:<{col}} {gutter if i == 0 else ' '} {r_part}".rstrip() + "\n"

    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    groups = list(matcher.get_grouped_opcodes(context))
    if not groups:
        return
    yield f"{left[:col]:<{col}}   {right[:col]}".rstrip() + "\n"
    for group in groups:
        (_, i1, _, j1, _), (*_, i2, _, j2) = group[0], group[-1]
        yield f"@@ {left} {i1 + 1}-{i2} | {right} {j1 + 1}-{j2} @@\n"
        for tag, a1, a2, b1, b2 in group:
            if tag == "equal":
                for x, y in zip(a[a1:a2], b[b1:b2]):
                    yield from row(x, y, " ")
                continue
            xs, ys = a[a1:a2], b[b1:b2]
            for k in range(max(len(xs), len(ys))):
                x = xs[k] if k < len(xs) else None
                y = ys[k] if k < len(ys) else None
                yield from row(x, y, "|" if x is not None and y is not None else ("<" if y is None else ">"))


def cmd_diff(args: argparse.Namespace) -> int:
    week = get_week(args.week)
    submission = Path(args.submission) if args.submission else ROOT / "exercises"
    problem = _missing_submission("course diff", submission)
    if problem:
        print(problem, file=sys.stderr)
        return 2
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
    if args.width is not None and args.width < 40:
        print(
            f"course diff: --width {args.width} is too narrow (expected at least 40 columns)", file=sys.stderr
        )
        return 2
    width = args.width or shutil.get_terminal_size((160, 24)).columns
    pairs = [(mine, ref)]
    if ref.name == "__init__.py":  # a package week: every file of it
        pairs = [(mine.parent / p.relative_to(ref.parent), p) for p in sorted(ref.parent.rglob("*.py"))]
    for left, right in pairs:
        left_name = f"yours/{left.relative_to(submission)}"
        right_name = f"reference/{right.relative_to(ROOT / 'solutions')}"
        try:
            a = _read_source(left, str(left))
            b = _read_source(right, str(right))
        except _DiffError as exc:
            print(f"course diff: {exc}", file=sys.stderr)
            return 2
        if args.side_by_side:
            lines = side_by_side(a, b, left_name, right_name, width, args.context)
        else:
            lines = difflib.unified_diff(a, b, left_name, right_name, n=args.context)
        sys.stdout.writelines(lines)
    return 0


# Commands with parsers of their own: their arguments go to them untouched.
DELEGATED = {
    "release": ("autograder.tools.release", "main", "build the student template (or --solutions tree)"),
    "gradebook": ("autograder.tools.gradebook", "main", "class gradebook from grade reports"),
    "data": ("autograder.tools.data", "main", "fetch a dataset into the cache, verifying sha256"),
    "train": ("autograder.tools.capstone", "train_main", "train the capstone Mini-GPT"),
    "sample": ("autograder.tools.capstone", "sample_main", "sample from a capstone checkpoint"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="course", description="Transformer Deep Dive: tests, grading and tools."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    weeks_help = "weeks as 1, w01 or attention (default: every week present)"

    p = sub.add_parser("test", help="local feedback: run a week's tests against exercises/ (or --submission)")
    p.add_argument("weeks", nargs="*", help=weeks_help)
    p.add_argument("--public", action="store_true", help="public tests only")
    add_arguments(p, ("submission", "seed", "isolation"))
    p.set_defaults(func=cmd_test)

    p = sub.add_parser(
        "grade",
        help="the authoritative grade: points per test and per week",
        description="Grade a submission: every test's points, per week, as the grader computes them. "
        "Without --submission: exercises/ (your work) in a student repository, even with solutions/ "
        "checked out; solutions/ (the reference) only in the course's own repository, the one holding "
        "the hidden suites in autograder/suites/; $COURSE_SUBMISSION overrides both. The first line "
        "printed names the folder graded. The summary is a table (coloured on a terminal unless "
        "NO_COLOR is set); --markdown, --json, --junit and --classroom write the reports.",
    )
    p.add_argument("--weeks", nargs="+", help=weeks_help)
    add_arguments(p)  # submission, seed, isolation, limits, sandbox user (autograder/options.py)
    p.add_argument(
        "--seed-file", help="read the grading seed from this file (keeps a secret seed out of command lines)"
    )
    p.add_argument("--only", metavar="EXPR", help="grade only the tests whose names match (pytest -k EXPR)")
    p.add_argument("--json", help="write the JSON report here")
    p.add_argument("--markdown", help="write the Markdown report here (e.g. $GITHUB_STEP_SUMMARY)")
    p.add_argument("--junit", help="write JUnit XML here")
    p.add_argument("--classroom", help="write GitHub Classroom's base64 grader output here")
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser(
        "sync",
        help="regenerate exercises/ from solutions/ (course repository)",
        description="Regenerate the stubs in exercises/ from the reference in solutions/. Only "
        "pristine stubs are overwritten: files that are missing, or exactly what an earlier sync "
        "wrote (exercises/.stubs.sha256 records them); any other file is someone's work, and sync "
        "then writes nothing and names it, unless --force.",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if exercises/ differs from what solutions/ generates; in a student repository "
        "(no autograder/suites/) there is nothing to check and it exits 0",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite files that are not pristine stubs (hand edits are lost)",
    )
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser(
        "diff",
        help="your module beside the reference solution",
        description="Compare your module of a week with the reference in solutions/ (present once "
        "published: `git checkout origin/solutions -- solutions/`): a unified diff, or side by side.",
    )
    p.add_argument("week", help="the week, as 1, w01 or attention")
    p.add_argument("--submission", help="folder with your wNN_*.py modules (default: exercises/)")
    p.add_argument(
        "--side-by-side", "-y", action="store_true", help="yours on the left, the reference on the right"
    )
    p.add_argument(
        "--width",
        "-W",
        type=int,
        metavar="COLUMNS",
        help="total width of the side-by-side view (default: the terminal's width, 160 when not a terminal)",
    )
    p.add_argument(
        "--context",
        "-U",
        type=int,
        default=3,
        metavar="LINES",
        help="unchanged lines shown around each change",
    )
    p.set_defaults(func=cmd_diff)

    for name, (_module, _attr, text) in DELEGATED.items():
        sub.add_parser(name, help=text, add_help=False)  # listed in --help; run by main()
    return parser


# What a shell reports for a program that SIGPIPE ended (128 + 13), as for `git log | head -1`.
EXIT_BROKEN_PIPE = 141


def _run(argv: list[str]) -> int:
    if argv and argv[0] in DELEGATED:
        module, attr, _ = DELEGATED[argv[0]]
        return getattr(importlib.import_module(module), attr)(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyError as exc:  # unknown week names
        print(f"course: {exc.args[0]}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        code = _run(argv)
        sys.stdout.flush()  # inside the try: a reader that left shows here, not at exit
    except BrokenPipeError:
        from .console import silence_stdout, stdout_reader_gone

        # `course diff 1 | head -1`: the reader has what it wanted and went away. Stop quietly,
        # the way Python's docs advise (signal module, "Note on SIGPIPE"); a broken pipe that is
        # not stdout's is a real error.
        if not stdout_reader_gone():
            raise
        silence_stdout()
        return EXIT_BROKEN_PIPE
    return code


if __name__ == "__main__":
    sys.exit(main())
