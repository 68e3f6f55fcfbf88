"""The class list, and fetching each student's repository at the commit to grade.

A roster is a CSV file with a header ``student,repository``: the student's id (their GitHub
login, used for folder names and the gradebook) and their repository (``owner/name`` on the
GitHub server, or a clone URL or path). Lines starting with ``#`` are comments.

Fetching copies out of the clone only what grading needs, and only as plain data: regular files
of ``exercises/`` (the submission) and the committed notebooks under ``course/``. Symbolic
links, oversized files and the student's copy of the tests are left behind, and the clone is
deleted. Nothing in the repository is executed here.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .github import GitHub, check_repository, check_sha
from .gitops import GitError, git, git_env, remote_head, repo_url

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_FILE = 2 << 20  # bytes: larger files are not submission code
MAX_TOTAL = 32 << 20


@dataclass(frozen=True)
class Student:
    id: str
    repository: str


EXPECTED = "a CSV file with the header `student,repository`, like course/roster.example.csv"


def load_roster(path: Path) -> list[Student]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ValueError(f"cannot read the roster {path}: {why} (expected {EXPECTED})") from None
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    reader = csv.DictReader(lines)
    if lines and not {"student", "repository"} <= set(reader.fieldnames or ()):
        raise ValueError(f"{path}:1: the header is {lines[0]!r} (expected {EXPECTED})")
    students, seen = [], set()
    for no, row in enumerate(reader, 2):
        sid, repo = (row.get("student") or "").strip(), (row.get("repository") or "").strip()
        if not STUDENT_ID.match(sid):
            raise ValueError(f"{path}:{no}: student id {sid!r} (letters, digits, '.', '_', '-')")
        if not repo:
            raise ValueError(f"{path}:{no}: no repository for {sid}")
        if sid.lower() in seen:
            raise ValueError(f"{path}:{no}: {sid} appears twice")
        seen.add(sid.lower())
        students.append(Student(sid, repo))
    return students


def find_student(roster: list[Student], repository: str) -> Student | None:
    """The roster entry of a repository (``owner/name``, compared as GitHub does: ignoring case)."""
    wanted = repository.strip().lower().removesuffix(".git")
    for student in roster:
        if student.repository.lower().removesuffix(".git") == wanted:
            return student
    return None


def copy_plain_files(src: Path, dest: Path, skipped: list[str], *, skip_dirs=("tests",), budget=None) -> None:
    """Copies the regular files under ``src`` (no links, no devices) within the size limits."""
    budget = budget if budget is not None else [MAX_TOTAL]
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if any(part in (*skip_dirs, "__pycache__", ".git") for part in rel.parts):
            continue
        if path.is_symlink():
            skipped.append(f"{rel} (a symbolic link)")
            continue
        if not path.is_file():
            continue
        size = path.stat().st_size
        if size > MAX_FILE or size > budget[0]:
            skipped.append(f"{rel} (too large: {size} bytes)")
            continue
        budget[0] -= size
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def fetch_one(
    student: Student,
    out: Path,
    *,
    sha: str | None = None,
    clone_base: str | None = None,
    token: str | None = None,
    github: GitHub | None = None,
    graded: Path | None = None,
) -> dict | None:
    """Fetches one student's submission into ``out/<student>/``; returns its metadata, or None
    when that commit already has a report in ``graded``."""
    env = git_env(token)
    url = repo_url(student.repository, clone_base)
    sha = check_sha(sha) if sha else remote_head(url, env)
    if graded is not None and (graded / student.id / f"{sha}.json").exists():
        return None
    dest = out / student.id
    if dest.exists():
        shutil.rmtree(dest)
    with tempfile.TemporaryDirectory(prefix="clone-") as tmp:
        clone = Path(tmp) / "repo"
        git("clone", "--quiet", "--no-checkout", "--no-tags", url, str(clone), env=env)
        try:
            git("checkout", "--quiet", "--detach", sha, cwd=clone, env=env)
        except GitError:
            raise GitError(f"commit {sha} is not in {student.repository}") from None
        committed = git("show", "-s", "--format=%cI", sha, cwd=clone, env=env)
        skipped: list[str] = []
        budget = [MAX_TOTAL]
        (dest / "submission").mkdir(parents=True)
        if (clone / "exercises").is_dir() and not (clone / "exercises").is_symlink():
            copy_plain_files(clone / "exercises", dest / "submission", skipped, budget=budget)
        if (clone / "course").is_dir() and not (clone / "course").is_symlink():
            for nb in sorted((clone / "course").rglob("*.ipynb")):
                rel = nb.relative_to(clone)
                if nb.is_symlink() or ".ipynb_checkpoints" in rel.parts or nb.stat().st_size > MAX_FILE:
                    skipped.append(f"{rel} (a link, a checkpoint or too large)")
                    continue
                (dest / "notebooks" / rel.parent).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(nb, dest / "notebooks" / rel)
    pushed = None
    if github is not None:
        try:
            pushed = github.pushed_at(check_repository(student.repository), sha)
        except ValueError:  # a URL or path in the roster: no activity log to ask
            pushed = None
    meta = {
        "student": student.id,
        "repository": student.repository,
        "commit": sha,
        "commit_time": committed,  # the committer date: set by the student, informative only
        "pushed_at": pushed.isoformat() if pushed else None,
        "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "skipped_files": skipped,
    }
    (dest / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def fetch(
    roster: list[Student],
    out: Path,
    *,
    repository: str | None = None,
    sha: str | None = None,
    **kwargs,
) -> tuple[list[dict], list[str]]:
    """Fetches the whole roster, or the one repository asked for (which must be on it).
    Returns the fetched submissions' metadata and one line per problem."""
    out.mkdir(parents=True, exist_ok=True)
    if repository:
        student = find_student(roster, repository)
        if student is None:
            return [], [f"{repository} is not on the roster: nothing to grade"]
        chosen = [student]
    else:
        if sha:
            raise ValueError("a commit can only be given together with its repository")
        chosen = roster
    fetched, problems = [], []
    for student in chosen:
        try:
            meta = fetch_one(student, out, sha=sha, **kwargs)
        except (GitError, ValueError) as exc:
            problems.append(f"{student.id}: {exc}")
            continue
        if meta is not None:
            fetched.append(meta)
    return fetched, problems
