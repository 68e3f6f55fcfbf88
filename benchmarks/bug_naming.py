"""Prints, per week, the known-bug corpus size, how many bugs the hidden suite catches, and
how many of those its message names (by the keywords each corpus entry declares).

    python benchmarks/bug_naming.py [w01 w02 …] [--verbose]

Goal: every bug caught, at least 95% named, in every week. `--verbose` lists the bugs that
are not, with the message the student would read.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.bug_runs import WEEK_FILES, run_week  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("weeks", nargs="*", default=WEEK_FILES, help="corpus files (w01 …); default: all")
    parser.add_argument("--verbose", action="store_true", help="list the bugs not caught or not named")
    args = parser.parse_args()
    print(f"{'week':<6}{'bugs':>6}{'caught':>8}{'named':>7}{'named %':>9}{'seconds':>9}")
    totals = [0, 0, 0]
    short = False
    for name in args.weeks:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            outcomes = run_week(name, Path(tmp))
        caught = sum(o.caught for o in outcomes)
        named = sum(o.named for o in outcomes)
        share = named / len(outcomes) if outcomes else 1.0
        short |= caught < len(outcomes) or share < 0.95
        totals = [totals[0] + len(outcomes), totals[1] + caught, totals[2] + named]
        print(
            f"{name:<6}{len(outcomes):>6}{caught:>8}{named:>7}{share:>9.0%}{time.perf_counter() - start:>9.1f}"
        )
        if args.verbose:
            for o in outcomes:
                if not (o.caught and o.named):
                    print(f"    - {o.bug.name}: {o.problem}")
                    if o.message:
                        print(f"      message: {o.message[:300]!r}")
    n, caught, named = totals
    print(f"{'all':<6}{n:>6}{caught:>8}{named:>7}{named / max(n, 1):>9.0%}")
    return 1 if short else 0


if __name__ == "__main__":
    sys.exit(main())
