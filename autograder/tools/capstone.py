"""`course train …` and `course sample …`: the capstone Mini-GPT of your choice of package.

    course train [--impl exercises|solutions] [training flags …]
    course sample [--impl exercises|solutions] --checkpoint RUN_DIR [sampling flags …]

``--impl`` picks whose ``w09_capstone`` runs: the reference (``solutions``, the default in the
course's own repository) or your own (``exercises``, the default in a student repository, even
with ``solutions/`` checked out). Training without ``--data`` uses tiny Shakespeare
from the course's verified dataset cache (`course data shakespeare` fetches it). Under
``torchrun --nproc_per_node N -m autograder train …`` every process runs this same command.
"""

from __future__ import annotations

import importlib
import sys

from ..weeks import ROOT, is_course_repository
from .data import DatasetError, dataset_path

IMPLS = ("solutions", "exercises")


class UsageError(Exception):
    pass


def _split_impl(argv: list[str]) -> tuple[str, list[str]]:
    """Take ``--impl NAME`` (or ``--impl=NAME``) out of argv."""
    if argv[:1] == ["--"]:  # `course train -- --max-steps 5`: argparse's REMAINDER keeps the "--"
        argv = argv[1:]
    impl, rest, args = None, [], iter(argv)
    for arg in args:
        if arg == "--impl":
            impl = next(args, None)
        elif arg.startswith("--impl="):
            impl = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    if impl is None:
        # The reference by default only in the course's own repository: a student who checked
        # out solutions/ still trains their own package unless they ask for the reference.
        reference = (ROOT / "solutions" / "w09_capstone" / "__init__.py").exists()
        impl = "solutions" if reference and is_course_repository() else "exercises"
    if impl not in IMPLS:
        raise UsageError(f"--impl must be one of {', '.join(IMPLS)}, got {impl!r}")
    return impl, rest


def _package(impl: str, part: str):
    return importlib.import_module(f"{impl}.w09_capstone.{part}")


def _run(command: str, argv: list[str], call) -> int:
    """``call(impl, rest)`` with the errors a person meets said in one line, not a traceback:
    a file that is not there (a --config, a --resume run), a run directory already used, the
    dataset cache, an unfinished stub. Anything else (a bug in the model, say) keeps its traceback."""
    try:
        impl, rest = _split_impl(list(argv))
        return call(impl, rest)
    except UsageError as exc:
        print(f"course {command}: {exc}", file=sys.stderr)
        return 2
    except DatasetError as exc:
        print(f"course {command}: {exc}", file=sys.stderr)
        return 1
    except FileExistsError as exc:  # a run directory already used: the message says what to do
        print(f"course {command}: {exc}", file=sys.stderr)
        return 1
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"course {command}: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except NotImplementedError as exc:
        print(
            f"course {command}: the capstone in exercises/ is not finished (NotImplementedError: {exc}; "
            "`--impl solutions` runs the reference where you have it)",
            file=sys.stderr,
        )
        return 1


def train_main(argv: list[str]) -> int:
    return _run(
        "train",
        argv,
        lambda impl, rest: _package(impl, "train").main(
            rest, data_resolver=lambda: dataset_path("shakespeare")
        ),
    )


def sample_main(argv: list[str]) -> int:
    return _run("sample", argv, lambda impl, rest: _package(impl, "sample").main(rest))


def main(argv: list[str]) -> int:  # `python -m autograder.tools.capstone train|sample …`
    if not argv or argv[0] not in ("train", "sample"):
        print("usage: python -m autograder.tools.capstone train|sample [flags]", file=sys.stderr)
        return 2
    return (train_main if argv[0] == "train" else sample_main)(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
