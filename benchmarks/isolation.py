"""Prints the wall time of each week's suite under process isolation and in-process.

    python benchmarks/isolation.py [WEEK ...] [--repeat N]

SPEC: a hidden suite takes <= 10 s on 2 CPU cores (capstone <= 30 s) under isolation, and
isolation costs at most 1.5x the in-process time. These are figures to read, not
assertions: timings belong here, not in tests that flake on a busy machine.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder.weeks import WEEKS, get_week  # noqa: E402


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    args = sys.argv[1:]
    repeat = 3
    if "--repeat" in args:
        i = args.index("--repeat")
        repeat = int(args[i + 1])
        del args[i : i + 2]
    weeks = [get_week(a) for a in args] or [
        w for w in WEEKS if (ROOT / "autograder/suites" / w.module).is_dir()
    ]
    course = [sys.executable, "-m", "autograder", "grade", "--seed", "1"]
    # The interpreter and torch import are paid by both modes; time them once to report the
    # suite's own cost beside the end-to-end figure.
    base = timed([sys.executable, "-c", "import torch, pytest"])
    print(f"python + import torch + pytest: {base:.2f} s (included in every figure below)")
    print(f"{'weeks':<28}{'process (s)':>12}{'none (s)':>10}{'ratio':>8}")
    rows = [[w] for w in weeks] + ([weeks] if len(weeks) > 1 else [])
    for group in rows:
        ids = [w.id for w in group]
        process = min(timed([*course, "--weeks", *ids, "--isolation", "process"]) for _ in range(repeat))
        inproc = min(timed([*course, "--weeks", *ids, "--isolation", "none"]) for _ in range(repeat))
        label = ids[0] + " " + group[0].slug if len(group) == 1 else f"all ({len(group)} weeks)"
        print(f"{label:<28}{process:>12.2f}{inproc:>10.2f}{process / inproc:>8.2f}")


if __name__ == "__main__":
    main()
