"""`course train …` and `course sample …`: the capstone Mini-GPT of your choice of package.

    course train [--impl exercises|solutions] [training flags …]
    course sample [--impl exercises|solutions] --checkpoint RUN_DIR [sampling flags …]

``--impl`` picks whose ``w09_capstone`` runs: the reference (``solutions``, the default where
it exists) or your own (``exercises``). Training without ``--data`` uses tiny Shakespeare
from the course's verified dataset cache (`course data shakespeare` fetches it). Under
``torchrun --nproc_per_node N -m autograder train …`` every process runs this same command.
"""

from __future__ import annotations

import importlib
import sys

from .data import DatasetError, dataset_path
from .weeks import ROOT

IMPLS = ("solutions", "exercises")


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
        impl = "solutions" if (ROOT / "solutions" / "w09_capstone" / "__init__.py").exists() else "exercises"
    if impl not in IMPLS:
        raise SystemExit(f"course: --impl must be one of {', '.join(IMPLS)}, got {impl!r}")
    return impl, rest


def _package(impl: str, part: str):
    return importlib.import_module(f"{impl}.w09_capstone.{part}")


def train_main(argv: list[str]) -> int:
    impl, rest = _split_impl(list(argv))
    try:
        return _package(impl, "train").main(rest, data_resolver=lambda: dataset_path("shakespeare"))
    except DatasetError as exc:
        print(f"course train: {exc}", file=sys.stderr)
        return 1


def sample_main(argv: list[str]) -> int:
    impl, rest = _split_impl(list(argv))
    return _package(impl, "sample").main(rest)


def main(argv: list[str]) -> int:  # `python -m autograder.capstone train|sample …`
    if not argv or argv[0] not in ("train", "sample"):
        print("usage: python -m autograder.capstone train|sample [flags]", file=sys.stderr)
        return 2
    return (train_main if argv[0] == "train" else sample_main)(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
