"""Git plumbing for the classroom scripts: authenticated clones and pushes, and branches used as
storage (the instructor's `grades` branch, the template's `solutions` branch).

A token travels to git through ``GIT_CONFIG_*`` environment variables as an HTTP header (as
actions/checkout does), never on a command line or in a remote URL, and is scrubbed from errors.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

DEFAULT_SERVER = "https://github.com"
IDENTITY = ["-c", "user.name=course-grader[bot]", "-c", "user.email=course-grader@users.noreply.github.com"]


class GitError(RuntimeError):
    pass


def server_url() -> str:
    return os.environ.get("GITHUB_SERVER_URL", DEFAULT_SERVER).rstrip("/")


def repo_url(repository: str, clone_base: str | None = None) -> str:
    """A clone URL for ``owner/name`` under ``clone_base`` (default: the GitHub server); a URL or
    a local path is taken as it is."""
    if "://" in repository or repository.startswith(("/", ".")):
        return repository
    return f"{(clone_base or server_url()).rstrip('/')}/{repository}.git"


def git_env(token: str | None = None, server: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_CONFIG_")}
    env["GIT_TERMINAL_PROMPT"] = "0"
    if token:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        env["GIT_CONFIG_COUNT"] = "1"
        env["GIT_CONFIG_KEY_0"] = f"http.{(server or server_url()).rstrip('/')}/.extraheader"
        env["GIT_CONFIG_VALUE_0"] = f"AUTHORIZATION: basic {basic}"
    return env


def git(*args: str, cwd: Path | None = None, env: dict | None = None, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        message = proc.stderr.strip() or proc.stdout.strip()
        if env and env.get("GIT_CONFIG_VALUE_0"):
            message = message.replace(env["GIT_CONFIG_VALUE_0"], "***")
        raise GitError(f"git {args[0]} failed: {message[-1500:]}")
    return proc.stdout.strip()


def remote_head(url: str, env: dict) -> str:
    """The commit the remote's default branch points to."""
    out = git("ls-remote", url, "HEAD", env=env)
    if not out:
        raise GitError(f"{url} has no default branch (an empty repository?)")
    return out.split()[0]


def checkout_branch(url: str, branch: str, dest: Path, env: dict) -> bool:
    """A working copy of ``branch`` of ``url`` in ``dest``; an empty one, ready to become the
    branch's first commit, when the branch does not exist yet. Returns whether it existed."""
    exists = bool(git("ls-remote", "--heads", url, f"refs/heads/{branch}", env=env))
    if exists:
        git("clone", "--quiet", "--single-branch", "--branch", branch, url, str(dest), env=env)
    else:
        git("init", "--quiet", "-b", branch, str(dest), env=env)
        git("remote", "add", "origin", url, cwd=dest, env=env)
    return exists


def commit_and_push(work: Path, branch: str, message: str, env: dict, attempts: int = 3) -> bool:
    """Commits everything in ``work`` and pushes it to ``branch``; False when nothing changed.
    A push that lost a race is rebased on the new tip (our files win) and tried again."""
    git("add", "-A", cwd=work, env=env)
    if not git("status", "--porcelain", cwd=work, env=env):
        return False
    git(*IDENTITY, "commit", "--quiet", "-m", message, cwd=work, env=env)
    for attempt in range(attempts):
        try:
            git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", cwd=work, env=env)
            return True
        except GitError:
            if attempt == attempts - 1:
                raise
            git("fetch", "--quiet", "origin", branch, cwd=work, env=env)
            git(*IDENTITY, "rebase", "--quiet", "-X", "theirs", "FETCH_HEAD", cwd=work, env=env)
    return True


def replace_tree(work: Path, tree: Path) -> None:
    """Makes ``work`` (a git working copy) hold exactly the files of ``tree``."""
    for entry in work.iterdir():
        if entry.name == ".git":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for entry in tree.iterdir():
        if entry.name == ".git":
            continue
        if entry.is_dir():
            shutil.copytree(entry, work / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, work / entry.name)
