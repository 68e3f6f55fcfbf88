"""Prints how fast one grading shard goes, and what that means for a class of 500.

    sudo python benchmarks/classroom_shards.py [--students 6] [--weeks w01 …] [--jobs auto] [--sandbox required]

Builds a simulated class (local git repositories made from the released template: a third
with the reference, a third with week 1 only, a third untouched), then runs what one matrix
job of `grade.yml` runs: `classroom fetch` and `classroom grade` (jailed where this machine
allows, `--sandbox none` otherwise). It prints students per minute for this shard and the wall
time for 500 students split into as many shards as GitHub Actions runs at once. These are
figures to read, not assertions.
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder.tools import release  # noqa: E402
from autograder.weeks import WEEKS  # noqa: E402

GIT = ["git", "-c", "user.name=Bench", "-c", "user.email=bench@example.invalid"]


def git(cwd: Path, *args: str) -> None:
    subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True)


def make_class(base: Path, n: int) -> Path:
    template = release.build(base / "template", released=None)
    remotes = base / "remotes"
    lines = ["student,repository"]
    for i in range(n):
        name = f"s{i:03d}"
        bare = remotes / "classroom" / f"tdd-{name}.git"
        bare.parent.mkdir(parents=True, exist_ok=True)
        git(base, "clone", "--quiet", "--bare", str(template), str(bare))
        work = base / "work" / name
        git(base, "clone", "--quiet", str(bare), str(work))
        kind = i % 3
        if kind == 0:  # the reference, every week
            for path in (ROOT / "solutions").rglob("*.py"):
                target = work / "exercises" / path.relative_to(ROOT / "solutions")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
        elif kind == 1:  # week 1 only
            shutil.copy2(ROOT / "solutions" / "w01_attention.py", work / "exercises" / "w01_attention.py")
        git(work, "add", "-A")
        git(work, "commit", "--quiet", "--allow-empty", "-m", "work")
        git(work, "push", "--quiet", "origin", "HEAD:main")
        lines.append(f"{name},classroom/tdd-{name}")
    (base / "roster.csv").write_text("\n".join(lines) + "\n")
    return remotes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=6)
    parser.add_argument("--weeks", nargs="+", default=[w.id for w in WEEKS], help="weeks open (default: all)")
    parser.add_argument("--jobs", default="auto")
    parser.add_argument("--sandbox", default="required", choices=("required", "none"))
    parser.add_argument("--class-size", type=int, default=500)
    parser.add_argument("--shards", type=int, default=20, help="jobs GitHub runs at once (Free plan: 20)")
    parser.add_argument("--setup-min", type=float, default=2.5, help="a shard's checkout and installs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shard-bench-") as tmp:
        base = Path(tmp)
        remotes = make_class(base, args.students)
        classroom = [sys.executable, "-m", "autograder.classroom"]
        subprocess.run(
            [*classroom, "fetch", "--roster", str(base / "roster.csv"), "--out", str(base / "subs"),
             "--clone-base", f"file://{remotes}"],
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
        start = time.perf_counter()
        proc = subprocess.run(
            [*classroom, "grade", "--submissions", str(base / "subs"), "--reports", str(base / "new"),
             "--weeks", *args.weeks, "--sandbox", args.sandbox, "--jobs", args.jobs],
            cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(proc.stdout[-2000:] + proc.stderr[-2000:])
    per_minute = args.students / (wall / 60)
    per_shard = math.ceil(args.class_size / args.shards)
    estimate = args.setup_min + per_shard / per_minute
    print(proc.stdout.strip())
    print(f"weeks graded: {len(args.weeks)}; sandbox: {args.sandbox}; jobs: {args.jobs}")
    print(f"one shard: {args.students} students in {wall:.0f} s = {per_minute:.2f} students per minute")
    print(
        f"{args.class_size} students in {args.shards} shards of {per_shard}: about {estimate:.0f} min "
        f"(+{args.setup_min:g} min set-up per shard, shards in parallel)"
    )


if __name__ == "__main__":
    main()
