"""Grading fetched submissions: one jail per student, in a fresh copy of the grading engine, one
`course grade` run per week inside it; each report wrapped with who, which commit and when.

Sandbox (``--sandbox required``, the default, and the only mode the workflow uses): the grader
runs as root; each submission is graded in a jail of its own (`autograder.sandbox.jail`:
new PID, mount, network, IPC and UTS namespaces, private ``/tmp`` and ``/dev/shm``, killed
whole at the end), and the engine starts the submission processes as an unprivileged user.
That user cannot read the hidden suites (the engine copy makes them root-only), cannot write to
the engine, and never sees a token or the seed: the seed travels on the jail's stdin. While a
week is graded, the engine's ``solutions/`` holds the reference solutions only of earlier weeks
whose solutions are already public (shared out week by week from a root-only folder), so no
submission can read a reference that is still secret, nor the one of the week being graded.
Where the jail cannot be made, grading stops with an error: it fails closed.

``--sandbox none`` grades with plain process isolation, for trying the flow on a laptop; every
report made that way says in its ``sandbox`` block (and every rendering) that it is not
authoritative.

A report file (``REPORTS/<student>/<commit>.json``) is the fetched metadata plus:
``graded_at``, ``time`` (when the work was handed in: the push time GitHub recorded, else the
grading time), ``weeks_graded``, ``sandbox``, and ``report`` (the weeks' `course grade` reports
merged) or ``error`` when grading itself could not run.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import queue
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..sandbox import jail
from ..weeks import ROOT, Week, module_path, reference_modules
from .roster import copy_plain_files

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
    user: str | None = None  # the unprivileged user submission code runs as; None: no jail
    # One user per submission graded at the same time: process limits (RLIMIT_NPROC) count per
    # user, so two students graded side by side must not share one.
    spare_users: tuple[str, ...] = ()

    @property
    def jailed(self) -> bool:
        return self.user is not None

    @property
    def users(self) -> tuple[str | None, ...]:
        return (self.user, *self.spare_users)

    def as_user(self, user: str | None) -> Sandbox:
        return Sandbox(user) if self.jailed else self

    def describe(self) -> dict:
        return {"user": self.user, "network": not self.jailed, "authoritative": self.jailed}


def _ensure_user(user: str) -> str | None:
    try:
        pwd.getpwnam(user)
        return None
    except KeyError:
        pass
    cmd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user]
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        return f"cannot create the user {user}"
    return None


def find_sandbox(mode: str = "required", user: str = DEFAULT_USER, slots: int = 1) -> Sandbox:
    """``required``: the jail, or RuntimeError saying what is missing. ``none``: no jail.
    ``slots`` submissions graded at once get a user each (``user``, ``user-2``, …)."""
    if mode == "none":
        return Sandbox()
    users = [user] + [f"{user}-{n}" for n in range(2, slots + 1)]
    problem = jail.available()
    for name in users:
        problem = problem or _ensure_user(name)
    if problem is None:
        problem = _probe(user)
    if problem:
        raise RuntimeError(f"no sandbox, so no authoritative grade: {problem}")
    return Sandbox(user, tuple(users[1:]))


def _probe(user: str) -> str | None:
    """Can ``user`` import torch inside a jail? (Where the interpreter lives in a private home,
    the jail makes it reachable; a probe proves it on this machine before any grading.)"""
    with tempfile.TemporaryDirectory(prefix="jail-probe-") as tmp:
        work = Path(tmp)
        work.chmod(0o711)
        _engine(work / "engine", None, set())
        (work / "submission").mkdir(mode=0o755)
        (work / "out").mkdir(mode=0o700)
        (work / "home").mkdir(mode=0o700)
        log = jail.run(work, {"probe": True, "user": user, "weeks": []}, timeout=300)
        report = jail.read_report_if_any(work / "out" / "report.json")
    if not (report or {}).get("ok"):
        return f"user {user} cannot run {sys.executable} with torch in the jail ({log.strip()[-500:]})"
    return None


# --------------------------------------------------------------------------- the engine copy
def _engine(dest: Path, week: Week | None, public: set[str], root: Path = ROOT) -> Path:
    """A private copy of what `course grade` needs to grade ``week``: the engine, the public
    tests, the data, and the references of earlier weeks that are public. Root's throughout;
    the hidden suites readable by root only."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "templates", "cache")
    dest.mkdir(parents=True)
    for name in ("autograder", "exercises", "datasets"):
        if (root / name).is_dir():
            shutil.copytree(root / name, dest / name, ignore=ignore)
    shutil.copy2(root / "pyproject.toml", dest / "pyproject.toml")
    (dest / "solutions").mkdir()
    (dest / "solutions" / "__init__.py").write_text("")
    if week is not None:
        for module, path in reference_modules(week, root / "solutions").items():
            if module.split("_")[0] in public:
                shutil.copy2(path, dest / "solutions" / Path(path).name)
    for path in [dest, *dest.rglob("*")]:
        os.chown(path, 0, 0, follow_symlinks=False) if os.geteuid() == 0 else None
        path.chmod(0o755 if path.is_dir() else 0o644)
    for path in [dest / "autograder" / "suites", *(dest / "autograder" / "suites").rglob("*")]:
        path.chmod(0o700 if path.is_dir() else 0o600)
    return dest


def engine_copy(dest: Path, weeks: list[Week], root: Path = ROOT, public: set[str] = frozenset()) -> Path:
    """The engine copy for grading ``weeks`` (one week per copy in the jailed flow)."""
    return _engine(dest, weeks[-1] if weeks else None, set(public), root)


# --------------------------------------------------------------------------- grading
def _references(weeks: list[Week], public: set[str], root: Path) -> dict[str, list[str]]:
    """Per week, the reference files that stand in for earlier weeks while it is graded: those
    of earlier weeks already public, and nothing else (never the week's own)."""
    return {
        week.id: sorted(
            Path(path).name
            for module, path in reference_modules(week, root / "solutions").items()
            if module.split("_")[0] in public
        )
        for week in weeks
    }


def _grade_weeks(
    sandbox: Sandbox,
    submission: Path,
    weeks: list[Week],
    seed,
    public: set[str],
    root: Path,
    landlock: bool = True,
) -> tuple[dict[str, dict | None], str, list[str]]:
    """The weeks of one submission, in one work folder: (report per week, or None where grading
    could not run; the log; the engine's and submission's paths as the grader saw them).

    Jailed, one jail grades the weeks one after the other (the interpreter, torch and pytest are
    loaded once); before each week the engine's ``solutions/`` is emptied and refilled with that
    week's references only (`_references`). Without a jail, each week is a `course grade` of its
    own on an engine copy of its own."""
    with tempfile.TemporaryDirectory(prefix="grading-", ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        work.chmod(0o711)
        skipped: list[str] = []
        copy_plain_files(submission, work / "submission", skipped, skip_dirs=())
        for path in [work / "submission", *(work / "submission").rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        (work / "out").mkdir(mode=0o700)
        (work / "home").mkdir(mode=0o700)
        references = _references(weeks, public, root)
        # landlock=False only in the project's own tests: to show the jail holds without it.
        settings = {"seed": seed, "user": sandbox.user, "landlock": landlock, "references": references}
        if "OMP_NUM_THREADS" in os.environ:
            settings["omp_threads"] = os.environ["OMP_NUM_THREADS"]
        if sandbox.jailed:
            _engine(work / "engine", None, set(), root)
            refs = work / "references"  # root's alone: the jail copies a week's share out of it
            refs.mkdir(mode=0o700)
            for name in sorted({n for names in references.values() for n in names}):
                shutil.copy2(root / "solutions" / name, refs / name)
                (refs / name).chmod(0o600)
            budget = sum(w.limit_s for w in weeks) + 60 * len(weeks) + 120
            log = jail.run(work, {**settings, "weeks": [w.id for w in weeks]}, timeout=budget)
            found = {w.id: jail.read_report_if_any(work / "out" / f"{w.id}.json") for w in weeks}
            return found, log, [str(jail.INSIDE / "engine"), str(jail.INSIDE / "submission")]
        found, logs = {}, []
        for week in weeks:
            engine = work / f"engine-{week.id}"
            _engine(engine, week, public, root)
            found[week.id], log = _grade_plain(work, engine, week, settings)
            logs.append(log)
        return (
            found,
            "\n".join(logs),
            [str(work / f"engine-{w.id}") for w in weeks] + [str(work / "submission")],
        )


def _grade_plain(work: Path, engine: Path, week: Week, settings: dict) -> tuple[dict | None, str]:
    """Without a jail (``--sandbox none``): `course grade` with plain process isolation; the
    seed in a file only this user can read."""
    seed_file = work / "out" / "seed"
    if settings["seed"] is not None and not seed_file.exists():
        fd = os.open(seed_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, str(settings["seed"]).encode())
        os.close(fd)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(work / "home"), "LANG": "C.UTF-8"}
    env.update(PYTHONPATH=str(engine), PYTHONDONTWRITEBYTECODE="1", TMPDIR=str(work / "home"))
    if settings.get("omp_threads"):
        env["OMP_NUM_THREADS"] = settings["omp_threads"]
    report = work / "out" / f"{week.id}.json"
    cmd = [sys.executable, "-m", "autograder", "grade", "--submission", str(work / "submission")]
    cmd += ["--weeks", week.id, "--json", str(report), "--isolation", "process"]
    if settings["seed"] is not None:
        cmd += ["--seed-file", str(seed_file)]
    budget = week.limit_s + 180
    try:
        proc = subprocess.run(cmd, cwd=engine, env=env, capture_output=True, text=True, timeout=budget)
    except subprocess.TimeoutExpired:
        return None, f"{week.id}: grading ran past {budget:.0f} s and was stopped"
    log = (proc.stdout + proc.stderr)[-20000:]
    found = jail.read_report_if_any(report)
    return (
        found,
        log if found else f"{week.id}: no report; course grade exited with {proc.returncode}: {log[-3000:]}",
    )


def merge_reports(reports: list[dict]) -> dict:
    """One report from the per-week reports of one submission."""
    first = reports[0]
    weeks = {wid: w for r in reports for wid, w in r["weeks"].items()}
    return {
        **{k: v for k, v in first.items() if k not in ("weeks", "grader_errors", "complete")},
        "score": sum(w["score"] for w in weeks.values()),
        "max_score": sum(w["max_score"] for w in weeks.values()),
        "complete": all(r.get("complete", True) for r in reports),
        "grader_errors": [e for r in reports for e in r.get("grader_errors", [])],
        "sandbox": {
            **first.get("sandbox", {}),
            "authoritative": all(r.get("sandbox", {}).get("authoritative", False) for r in reports),
        },
        "weeks": weeks,
    }


def grade_submission(
    student_dir: Path,
    reports: Path,
    weeks: list[Week],
    *,
    seed: int | None,
    sandbox: Sandbox,
    public: set[str] = frozenset(),
    root: Path = ROOT,
) -> Path:
    """Grades ``student_dir`` (as written by `roster.fetch_one`), week by week; returns the
    report file. ``public``: the weeks whose reference solutions have been published."""
    meta = json.loads((student_dir / "meta.json").read_text())
    wrapper = dict(meta)
    found, log, paths = _grade_weeks(
        sandbox, student_dir / "submission", sorted(weeks, key=lambda w: w.number), seed, set(public), root
    )
    done, problems = [], []
    for week_id, report in found.items():
        if report is None or not report.get("complete", False):
            problems.append(f"{week_id}: {'the grader failed' if report else 'no report'}")
        if report is not None:
            done.append(report)
    if problems:
        problems.append(log.strip()[-3000:])
    graded_at = datetime.now(UTC)
    if done and not problems:
        report = merge_reports(done)
        # Paths of this machine mean nothing later; keep the submission as the commit.
        report["submission"] = f"{meta['repository']}@{meta['commit']}"
        wrapper["report"] = report
    else:
        wrapper["report"] = None
        wrapper["error"] = "grading could not run: " + " | ".join(problems)[-6000:]
        if done:
            wrapper["partial_report"] = merge_reports(done)  # for the instructor, never posted
    wrapper["engine_paths"] = sorted(set(paths))  # for the sanitiser
    wrapper["graded_at"] = graded_at.isoformat(timespec="seconds")
    wrapper["time"] = meta.get("pushed_at") or wrapper["graded_at"]
    wrapper["weeks_graded"] = [w.id for w in weeks]
    wrapper["sandbox"] = (wrapper["report"] or {}).get("sandbox") or sandbox.describe()
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
    public: set[str] = frozenset(),
    root: Path = ROOT,
) -> list[Path]:
    """Every fetched submission, as many at once as the sandbox has users (each report is
    written as soon as its submission is graded: a run stopped halfway keeps what it did)."""
    students = sorted(p for p in submissions.iterdir() if (p / "meta.json").exists())
    free: queue.Queue = queue.Queue()
    for user in sandbox.users:
        free.put(user)

    def one(student_dir: Path) -> Path:
        user = free.get()
        try:
            return grade_submission(
                student_dir,
                reports,
                weeks,
                seed=seed,
                sandbox=sandbox.as_user(user),
                public=public,
                root=root,
            )
        finally:
            free.put(user)

    written = []
    with ThreadPoolExecutor(max_workers=len(sandbox.users)) as pool:
        for path in pool.map(one, students):
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
