"""Publishing the `solutions` branch: week by week, once each deadline and its late window pass.

The branch holds the tree of `course release --solutions`, with solutions/ filled in for the
weeks that are due by then (`course/schedule.toml`): each week's reference module and its
notebook with the solutions in place (`solutions/notebooks/`). Each run adds a commit only when
that set changed, so the branch's history reads "solutions through w01", "through w02", …

A new term starts clean: with nothing due yet (the schedule's dates moved on), the branch is
reset to the tree without any solution, replacing what the last term published.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

from ..tools.release import build, release_notebooks
from ..tools.schedule import SCHEDULE, load_schedule
from ..weeks import ROOT, WEEKS
from .gitops import checkout_branch, commit_and_push, git_env, replace_tree


def publish(
    remote: str,
    *,
    through: datetime,
    branch: str = "solutions",
    token: str | None = None,
    root: Path = ROOT,
    schedule: Path = SCHEDULE,
) -> str:
    """Brings ``branch`` of ``remote`` up to date; returns what happened, in one line."""
    due = load_schedule(schedule).solutions_due(through)
    weeks = [w for w in WEEKS if w.id in due]
    env = git_env(token)
    with tempfile.TemporaryDirectory(prefix="solutions-") as tmp:
        tmp = Path(tmp)
        tree = build(
            tmp / "tree", root=root, solutions=True, weeks=weeks, released=release_notebooks(root), git=False
        )
        work = tmp / "work"
        checkout_branch(remote, branch, work, env)
        replace_tree(work, tree)
        if weeks:
            message = f"Solutions through {weeks[-1].id} ({', '.join(w.id for w in weeks)})"
        else:
            message = f"No solutions published yet (none is due by {through.isoformat()})"
        pushed = commit_and_push(work, branch, message, env)
    return (
        f"{branch}: {message}" if pushed else f"{branch}: already up to date ({', '.join(due) or 'none due'})"
    )
