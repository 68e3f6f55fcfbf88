"""Grading fetched submissions: one `course grade` run per student, each in a fresh copy of the
grading engine, wrapped with who, which commit and when.

Sandbox (``--sandbox auto``, the default): where this process is root or has password-less
sudo (GitHub's hosted runners), `course grade` runs as root in a network namespace of its own
(no network for anything it starts) and the engine starts the submission processes as an
unprivileged user (``--sandbox-user``). That user cannot read the hidden suites nor the
solutions of the weeks being graded (the engine copy makes them root-only), cannot write to the
engine, and never sees a token: the environment is rebuilt from nothing. Without those rights
the run falls back to plain process isolation, and the report's ``sandbox`` says so.

A report file (``REPORTS/<student>/<commit>.json``) is the fetched metadata plus:
``graded_at``, ``time`` (when the work was handed in: the push time GitHub recorded, else the
grading time), ``weeks_graded``, ``sandbox``, and ``report`` (what `course grade --json` wrote)
or ``error`` when grading itself could not run.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..weeks import ROOT, Week, module_path, reference_modules

DEFAULT_USER = "course-grader"


def grading_seed(text: str | None) -> int | None:
    """The grading seed from a secret: a number as it is, any other text hashed to one."""
    if not text or not text.strip():
        return None
    text = text.strip()
    if text.isdigit():
        return int(text) % 2**31
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % 2**31


# --------------------------------------------------------------------------- the sandbox
@dataclass(frozen=True)
class Sandbox:
    user: str | None = None  # the unprivileged user submission code runs as
    prefix: tuple[str, ...] = ()  # e.g. ("sudo", "-n", "unshare", "--net", "--")
    network: bool = True  # whether grading can reach the network

    def describe(self) -> dict:
        return {"user": self.user, "network": self.network}


def _ok(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def find_sandbox(mode: str = "auto", user: str = DEFAULT_USER) -> Sandbox:
    """``none``: plain process isolation. ``user``: the sandbox or an error. ``auto``: the
    sandbox where the rights for it exist, plain isolation otherwise."""
    if mode == "none":
        return Sandbox()
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    problems = []
    if sudo and not _ok([*sudo, "true"]):
        problems.append("neither root nor password-less sudo")
    if not problems:
        try:
            pwd.getpwnam(user)
        except KeyError:
            _ok([*sudo, "useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user])
        try:
            pwd.getpwnam(user)
        except KeyError:
            problems.append(f"cannot create the user {user}")
    if not problems:
        # The engine starts the submission processes as that user (subprocess, user=): check
        # that this interpreter and torch are within that user's reach.
        probe = (
            "import subprocess, sys; sys.exit(subprocess.run([sys.executable, '-I', '-c', 'import torch'], "
            f"user={user!r}, capture_output=True).returncode)"
        )
        if not _ok([*sudo, sys.executable, "-I", "-c", probe]):
            problems.append(f"user {user} cannot run {sys.executable} with torch")
    if problems:
        if mode == "user":
            raise RuntimeError("no sandbox: " + "; ".join(problems))
        return Sandbox()
    netns = [*sudo, "unshare", "--net", "--"]
    if shutil.which("unshare") and _ok([*netns, "true"]):
        return Sandbox(user, tuple(netns), network=False)
    if mode == "user":
        raise RuntimeError("no sandbox: cannot create a network namespace (unshare --net)")
    return Sandbox(user, tuple(sudo), network=True)


# --------------------------------------------------------------------------- the engine copy
def engine_copy(dest: Path, weeks: list[Week], root: Path = ROOT) -> Path:
    """A private copy of what `course grade` needs. Hidden suites and the solutions that the
    graded weeks do not substitute for earlier weeks are readable by their owner only, so the
    sandbox user cannot read them (the grading process itself runs as root)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "templates")
    dest.mkdir(parents=True)
    dest.chmod(0o755)
    for name in ("autograder", "solutions", "exercises"):
        if (root / name).is_dir():
            shutil.copytree(root / name, dest / name, ignore=ignore)
    shutil.copy2(root / "pyproject.toml", dest / "pyproject.toml")
    for path in [dest, *dest.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    needed = {Path(p).name for w in weeks for p in reference_modules(w, root / "solutions").values()}
    private = [dest / "autograder" / "suites"]
    for path in (dest / "solutions").iterdir() if (dest / "solutions").is_dir() else []:
        if path.name not in needed and path.name != "__init__.py":
            private.append(path)
    for path in private:
        if path.exists():
            for inner in [path, *path.rglob("*")] if path.is_dir() else [path]:
                inner.chmod(0o700 if inner.is_dir() else 0o600)
    return dest


# --------------------------------------------------------------------------- grading
def _command(sandbox: Sandbox, engine: Path, submission: Path, weeks: list[Week], report: Path, seed):
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(report.parent),
        "TMPDIR": str(report.parent),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(engine),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if "OMP_NUM_THREADS" in os.environ:
        env["OMP_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"]
    if seed is not None:
        env["COURSE_SEED"] = str(seed)
    cmd = [sys.executable, "-m", "autograder", "grade", "--submission", str(submission)]
    cmd += ["--weeks", *[w.id for w in weeks], "--json", str(report), "--isolation", "process"]
    if sandbox.user:
        cmd += ["--sandbox-user", sandbox.user]
    # `env -i` rebuilds the environment from nothing: no token or secret reaches grading.
    full = [*sandbox.prefix, "env", "-i", *[f"{k}={v}" for k, v in env.items()], *cmd]
    return full


def grade_submission(
    student_dir: Path,
    reports: Path,
    weeks: list[Week],
    *,
    seed: int | None,
    sandbox: Sandbox,
    root: Path = ROOT,
) -> Path:
    """Grades ``student_dir`` (as written by `roster.fetch_one`); returns the report file."""
    meta = json.loads((student_dir / "meta.json").read_text())
    wrapper = dict(meta)
    with tempfile.TemporaryDirectory(prefix="grading-", ignore_cleanup_errors=True) as tmp:
        tmp = Path(tmp)
        tmp.chmod(0o755)
        engine = engine_copy(tmp / "engine", weeks, root)
        submission = tmp / "submission"
        shutil.copytree(student_dir / "submission", submission)
        for path in [submission, *submission.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        # The grading run's HOME and TMPDIR, and where the report is written (as root, in the
        # sandbox): not writable by the sandbox user, who could plant a link there. Submission
        # processes get their own directories from the engine.
        out = tmp / "out"
        out.mkdir(mode=0o755)
        report_file = out / "report.json"
        cmd = _command(sandbox, engine, submission, weeks, report_file, seed)
        budget = sum(w.limit_s for w in weeks) + 180
        try:
            proc = subprocess.run(cmd, cwd=engine, capture_output=True, text=True, timeout=budget)
            code, log = proc.returncode, (proc.stdout + proc.stderr)
        except subprocess.TimeoutExpired:
            code, log = -1, f"grading ran past {budget} s"
        graded_at = datetime.now(UTC)
        if code == 0 and report_file.exists():
            report = json.loads(report_file.read_text())
            # Paths of this machine mean nothing later; keep the submission as the commit.
            report["submission"] = f"{meta['repository']}@{meta['commit']}"
            wrapper["report"] = report
        else:
            wrapper["report"] = None
            wrapper["error"] = f"course grade exited with {code}: {log.strip()[-3000:]}"
        wrapper["engine_paths"] = [str(engine), str(submission)]  # for the sanitiser
    wrapper["graded_at"] = graded_at.isoformat(timespec="seconds")
    wrapper["time"] = meta.get("pushed_at") or wrapper["graded_at"]
    wrapper["weeks_graded"] = [w.id for w in weeks]
    wrapper["sandbox"] = sandbox.describe()
    target = reports / meta["student"] / f"{meta['commit']}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(wrapper, indent=2) + "\n")
    return target


def grade_all(
    submissions: Path,
    reports: Path,
    weeks: list[Week],
    *,
    seed: int | None,
    sandbox: Sandbox,
    root: Path = ROOT,
) -> list[Path]:
    written = []
    for student_dir in sorted(p for p in submissions.iterdir() if (p / "meta.json").exists()):
        path = grade_submission(student_dir, reports, weeks, seed=seed, sandbox=sandbox, root=root)
        report = json.loads(path.read_text())
        score = (
            f"{report['report']['score']:g} / {report['report']['max_score']:g}"
            if report["report"]
            else "grading failed"
        )
        print(f"{report['student']} @ {report['commit'][:10]}: {score}", flush=True)
        written.append(path)
    return written


def present_weeks(weeks: list[Week], root: Path = ROOT) -> list[Week]:
    """The weeks the course can grade: those with a reference in this repository."""
    return [w for w in weeks if module_path(root / "solutions", w) is not None]
