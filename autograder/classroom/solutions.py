"""Publishing the `solutions` branch: week by week, once each deadline and its late window pass.

The branch holds the tree of `course release --solutions`, with solutions/ filled in for the
weeks that are due by then (`course/schedule.toml`): each week's reference module and its
notebook with the solutions in place (`solutions/notebooks/`). Each run adds a commit only when
that set changed, so the branch's history reads "solutions through w01", "through w02", …
The notebooks' Colab badges and set-up cells name the template repository the branch is pushed
to, as `course release --repository` writes them.

A new term starts clean: with nothing due yet (the schedule's dates moved on), the branch is
reset to the tree without any solution, replacing what the last term published.
"""

from __future__ import annotations

import re
import tempfile
from datetime import datetime
from pathlib import Path

from ..tools.release import REPOSITORY_NAME, build, release_notebooks
from ..tools.schedule import SCHEDULE, load_schedule
from ..weeks import ROOT, WEEKS
from .gitops import checkout_branch, commit_and_push, git_env, replace_tree

# owner/name at the end of an https:// or ssh:// remote, or of an scp-like one (git@host:owner/name)
_REMOTE = re.compile(r"(?:(?:https?|ssh)://[^/]+/|[^/:@]+@[^/:]+:)(?P<repository>[^/]+/[^/]+?)(?:\.git)?/?")


def repository_of(remote: str) -> str | None:
    """The ``owner/name`` a remote URL points to (``https://github.com/owner/name.git``); None
    for a local path, whose notebooks then keep the placeholder."""
    match = _REMOTE.fullmatch(remote)
    if match and REPOSITORY_NAME.fullmatch(match["repository"]):
        return match["repository"]
    return None


def publish(
    remote: str,
    *,
    through: datetime,
    branch: str = "solutions",
    token: str | None = None,
    root: Path = ROOT,
    schedule: Path = SCHEDULE,
    repository: str | None = None,
) -> str:
    """Brings ``branch`` of ``remote`` up to date; returns what happened, in one line.

    ``repository`` (``owner/name``; by default the one ``remote`` points to) is written into the
    published notebooks' Colab badges and set-up cells."""
    due = load_schedule(schedule).solutions_due(through)
    weeks = [w for w in WEEKS if w.id in due]
    env = git_env(token)
    with tempfile.TemporaryDirectory(prefix="solutions-") as tmp:
        tmp = Path(tmp)
        tree = build(
            tmp / "tree",
            root=root,
            solutions=True,
            weeks=weeks,
            released=release_notebooks(root),
            git=False,
            repository=repository or repository_of(remote),
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
