"""`course release`: build the student template, or the solutions tree, as a ready-to-push git repository.

The template is what every student's repository starts from:

    exercises/            the stubs (generated from solutions/ right now) and the public tests
    autograder/           the grading engine, without the hidden suites (`course test`, pytest)
    course/               notes, schedule and the nbgrader *released* notebooks
    datasets/manifest.toml, pyproject.toml, README.md (for students), .gitignore
    .github/workflows/classroom.yml   push-time feedback and the request for the real grade

`--solutions` builds the same tree with `solutions/` filled in (every week, or only the weeks
given with `--weeks` / due by `--due-by`): the content of the protected `solutions` branch. A
week's solutions are its reference module and its notebook with the solutions in place
(`solutions/notebooks/wNN_*.ipynb`: the source notebook, without outputs).

Nothing leaves without an audit: no solution region, hidden test or mark scheme in any file,
no hidden suite, no notebook output (see `audit`).

The notebooks name the repository they are published from (the "Open in Colab" badge, the set-up
cell that clones it on Colab) by a placeholder; `--repository OWNER/NAME` writes the template
repository in its place (`fill_repository`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import string
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from .. import __version__
from ..weeks import ROOT, WEEKS, Week, get_week, module_path
from .schedule import SCHEDULE, load_schedule, parse_time
from .sync import MarkerError, find_regions, plan

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"  # autograder/templates/
STUDENT_TEMPLATE = TEMPLATES / "student"
# nbgrader's working folders inside course/ and other things that are not teaching material.
NBGRADER_DIRS = {"release", "submitted", "autograded", "feedback", "source"}
IGNORED = ("__pycache__", "*.pyc", ".ipynb_checkpoints", ".pytest_cache", ".DS_Store")
CACHES = shutil.ignore_patterns(*IGNORED)
# Top-level files of course/ that students get; everything else there stays with the instructor
# (nbgrader_config.py, INSTRUCTORS.md, the roster, gradebook.db).
COURSE_PUBLIC_FILES = ("*.md", "schedule.toml")
COURSE_PRIVATE_FILES = {"INSTRUCTORS.md"}
# Lines that mark material students must never see: our own solution regions (.py), nbgrader's
# solution, hidden-test and mark-scheme regions (notebooks and their Markdown).
FORBIDDEN = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "BEGIN MARK SCHEME")
# Where the solutions tree keeps each published week's notebook with its solutions.
SOLUTION_NOTEBOOKS = "notebooks"
# Stands for the template repository (owner/name) in the notebooks and notes: the Colab badge's
# address and the repository the set-up cell clones. `--repository` fills it in.
REPOSITORY_PLACEHOLDER = "__COURSE_REPOSITORY__"
REPOSITORY_NAME = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


class ReleaseError(RuntimeError):
    pass


# --------------------------------------------------------------------------- notebooks
def assignment_dirs(course: Path) -> list[Path]:
    """nbgrader source assignments: folders of course/ holding at least one notebook."""
    return [
        d
        for d in sorted(course.iterdir())
        if d.is_dir()
        and d.name not in NBGRADER_DIRS
        and not d.name.startswith((".", "_"))
        and any(d.glob("*.ipynb"))
    ]


def nbgrader_problem(notebook: Path) -> str | None:
    """Why ``nbgrader generate_assignment`` would refuse this source notebook (a solution region
    in a cell without nbgrader metadata, say), checked with nbgrader's own preprocessors."""
    import nbformat
    from nbgrader.preprocessors import CheckCellMetadata, ClearHiddenTests, ClearMarkScheme, ClearSolutions

    nb = nbformat.read(str(notebook), as_version=nbformat.NO_CONVERT)
    try:
        for step in (CheckCellMetadata(), ClearSolutions(), ClearHiddenTests(), ClearMarkScheme()):
            step.log.disabled = True  # the exception says it; nbgrader would also log it
            nb, _ = step.preprocess(nb, {})
    except Exception as exc:  # noqa: BLE001 - nbgrader raises plain RuntimeError/ValueError
        return str(exc) or type(exc).__name__
    return None


def strip_notebook(source: Path, dest: Path) -> None:
    """The student version of a notebook nbgrader cannot release, by nbgrader's preprocessors
    without their metadata checks: solution regions become stubs, hidden tests and mark schemes
    go, outputs are cleared. Safe to hand out, but nbgrader cannot autograde it."""
    import nbformat
    from nbgrader.preprocessors import ClearHiddenTests, ClearMarkScheme, ClearOutput, ClearSolutions

    nb = nbformat.read(str(source), as_version=nbformat.NO_CONVERT)
    for step in (
        ClearSolutions(enforce_metadata=False),
        ClearHiddenTests(enforce_metadata=False),
        ClearMarkScheme(enforce_metadata=False),
        ClearOutput(),
    ):
        nb, _ = step.preprocess(nb, {})
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(dest))


def release_notebooks(root: Path = ROOT) -> Path | None:
    """Runs ``nbgrader generate_assignment`` on the assignments of ``root/course`` with the
    course's nbgrader_config.py. Returns nbgrader's release folder (None without notebooks).

    This also records each assignment's cells in course/gradebook.db, which `nbgrader autograde`
    needs later: releasing and autograding use the same database. An assignment whose notebook
    nbgrader refuses is released by `strip_notebook` instead, with a warning: it is safe to hand
    out but cannot be autograded until its cell metadata is fixed."""
    course = root / "course"
    assignments = assignment_dirs(course)
    if not assignments:
        return None
    if not (course / "nbgrader_config.py").exists():
        raise ReleaseError(f"{course}/nbgrader_config.py is missing: nbgrader cannot release the notebooks")
    try:
        import nbgrader  # noqa: F401
    except ImportError:
        raise ReleaseError("releasing the notebooks needs nbgrader: pip install -e '.[instructor]'") from None
    refused = {}
    for assignment in assignments:
        for notebook in sorted(assignment.glob("*.ipynb")):
            problem = nbgrader_problem(notebook)
            if problem:
                refused.setdefault(assignment.name, []).append(f"{notebook.name}: {problem}")
    release = course / "release"
    env = dict(os.environ)
    # nbgrader upgrades its database with the `alembic` command, found next to this interpreter.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    # One nbgrader run for every assignment: it carries on past a notebook it refuses.
    started = time.time()
    cmd = [sys.executable, "-m", "nbgrader", "generate_assignment", "*", "--force", "--log-level=WARN"]
    proc = subprocess.run(cmd, cwd=course, env=env, capture_output=True, text=True)
    missing = [
        f"{a.name}/{nb.name}"
        for a in assignments
        if a.name not in refused
        for nb in a.glob("*.ipynb")
        if not (release / a.name / nb.name).exists()
        or (release / a.name / nb.name).stat().st_mtime < started - 1
    ]
    if missing or (proc.returncode != 0 and not refused):
        tail = (proc.stdout + proc.stderr)[-4000:]
        raise ReleaseError(f"nbgrader generate_assignment failed in {course} ({', '.join(missing)}):\n{tail}")
    for name, problems in refused.items():
        target = release / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(course / name, target, ignore=shutil.ignore_patterns("*.ipynb", *IGNORED))
        for notebook in sorted((course / name).glob("*.ipynb")):
            strip_notebook(notebook, target / notebook.name)
        print(
            f"course release: warning: nbgrader cannot release course/{name} ({'; '.join(problems)}); "
            "its solution regions were stripped with nbgrader's preprocessors, but it cannot be "
            "autograded until its cells carry nbgrader metadata",
            file=sys.stderr,
        )
    return release


def fill_repository(tree: Path, repository: str) -> list[Path]:
    """Writes ``repository`` (``owner/name`` on GitHub) over the placeholder in every notebook and
    Markdown file of ``tree``; returns the files it changed."""
    if not REPOSITORY_NAME.fullmatch(repository):
        raise ReleaseError(f"--repository must be OWNER/NAME on GitHub, got {repository!r}")
    changed = []
    for path in sorted(tree.rglob("*")):
        if (
            path.suffix not in (".ipynb", ".md")
            or not path.is_file()
            or ".git" in path.relative_to(tree).parts
        ):
            continue
        text = path.read_text()
        if REPOSITORY_PLACEHOLDER in text:
            path.write_text(text.replace(REPOSITORY_PLACEHOLDER, repository))
            changed.append(path)
    return changed


# --------------------------------------------------------------------------- building the tree
def _copy_course(root: Path, dest: Path, released: Path | None) -> None:
    course = root / "course"
    if not course.is_dir():
        return
    target = dest / "course"
    target.mkdir(parents=True, exist_ok=True)
    for pattern in COURSE_PUBLIC_FILES:
        for path in sorted(course.glob(pattern)):
            if path.is_file() and path.name not in COURSE_PRIVATE_FILES:
                shutil.copy2(path, target / path.name)
    assignments = {d.name for d in assignment_dirs(course)}
    for sub in sorted(course.iterdir()):
        if not sub.is_dir() or sub.name in NBGRADER_DIRS or sub.name.startswith((".", "_")):
            continue
        if sub.name in assignments and released is None:  # a tree without notebooks
            shutil.copytree(sub, target / sub.name, ignore=shutil.ignore_patterns("*.ipynb", *IGNORED))
        elif sub.name in assignments:
            out = released / sub.name
            if not out.is_dir():
                raise ReleaseError(f"nbgrader released nothing for course/{sub.name}")
            # nbgrader copies every file of the assignment (notes, figures) beside the notebooks.
            shutil.copytree(out, target / sub.name, ignore=CACHES)
        else:
            shutil.copytree(sub, target / sub.name, ignore=CACHES)


def _copy_engine(root: Path, dest: Path) -> None:
    shutil.copytree(
        root / "autograder",
        dest / "autograder",
        ignore=shutil.ignore_patterns("suites", "templates", "AUTHORING.md", "__pycache__", "*.pyc"),
    )


def _copy_exercises(root: Path, dest: Path) -> None:
    shutil.copytree(root / "exercises", dest / "exercises", ignore=CACHES)
    # The stubs are generated now from the reference, so a stale exercises/ cannot leak or lag.
    for path, content in plan(root).items():
        out = dest / path.relative_to(root)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(content)


def solution_notebook(source: Path, dest: Path) -> None:
    """A week's notebook as the solutions branch publishes it: the source notebook, solution
    regions and model answers in place, without outputs or execution counts."""
    nb = json.loads(source.read_text())
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")  # as nbformat writes


def _copy_solutions(root: Path, dest: Path, weeks: list[Week]) -> None:
    solutions = root / "solutions"
    (dest / "solutions").mkdir(parents=True, exist_ok=True)
    if (solutions / "__init__.py").exists():
        shutil.copy2(solutions / "__init__.py", dest / "solutions" / "__init__.py")
    for week in weeks:
        path = module_path(solutions, week)
        if path is None:
            continue
        if path.name == "__init__.py":  # a package week
            shutil.copytree(path.parent, dest / "solutions" / week.module, ignore=CACHES)
        else:
            shutil.copy2(path, dest / "solutions" / path.name)
        # The week's notebook, solved. Under solutions/, the only place the audit lets solution
        # regions be; opened from there, it finds the repository's exercises/ above it.
        for notebook in sorted((root / "course" / week.module).glob("*.ipynb")):
            solution_notebook(notebook, dest / "solutions" / SOLUTION_NOTEBOOKS / notebook.name)


def _weeks_table(root: Path) -> str:
    schedule_path = root / "course" / "schedule.toml"
    schedule = load_schedule(schedule_path) if schedule_path.exists() else None
    rows = ["| week | module | topic | due (UTC) |", "|---|---|---|---|"]
    for week in WEEKS:
        due = ""
        if schedule is not None:
            due = schedule.weeks[week.id].deadline.strftime("%Y-%m-%d %H:%M")
        ref = module_path(root / "solutions", week)
        where = (
            f"exercises/{week.module}/"
            if ref is not None and ref.name == "__init__.py"
            else f"exercises/{week.module}.py"
        )
        rows.append(f"| {week.number} | `{where}` | {week.title} | {due} |")
    return "\n".join(rows)


def _write_templates(root: Path, dest: Path, solutions: bool) -> None:
    readme = string.Template((STUDENT_TEMPLATE / "README.md").read_text())
    (dest / "README.md").write_text(readme.substitute(weeks_table=_weeks_table(root), version=__version__))
    shutil.copy2(STUDENT_TEMPLATE / "gitignore", dest / ".gitignore")
    workflows = dest / ".github" / "workflows"
    workflows.mkdir(parents=True, exist_ok=True)
    for path in sorted((STUDENT_TEMPLATE / ".github" / "workflows").glob("*.yml")):
        shutil.copy2(path, workflows / path.name)


def build(
    out: Path,
    *,
    root: Path = ROOT,
    solutions: bool = False,
    weeks: list[Week] | None = None,
    released: Path | None | str = "generate",
    git: bool = True,
    message: str | None = None,
    repository: str | None = None,
) -> Path:
    """Builds the template (or, with ``solutions``, the solutions tree) in ``out``.

    ``weeks`` limits the solutions that are filled in (default: all). ``released`` is nbgrader's
    release folder (`release_notebooks`); by default the notebooks are released now, and None
    leaves them out. ``repository`` (``owner/name``) replaces the placeholder in the notebooks'
    Colab badges and set-up cells; without it the placeholder stays (and the set-up cell asks
    the student to fill it in)."""
    out = Path(out)
    if repository and not REPOSITORY_NAME.fullmatch(repository):
        raise ReleaseError(f"--repository must be OWNER/NAME on GitHub, got {repository!r}")
    if out.exists() and any(out.iterdir()):
        raise ReleaseError(f"{out} exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    if released == "generate":
        released = release_notebooks(root)
    _copy_engine(root, out)
    _copy_exercises(root, out)
    _copy_course(root, out, released)
    manifest = root / "datasets" / "manifest.toml"
    if manifest.exists():
        (out / "datasets").mkdir(exist_ok=True)
        shutil.copy2(manifest, out / "datasets" / "manifest.toml")
        # The datasets the repository ships travel with it: students work offline too.
        with open(manifest, "rb") as fh:
            for entry in tomllib.load(fh).values():
                if entry.get("shipped") and (root / "datasets" / entry["file"]).is_file():
                    shutil.copy2(root / "datasets" / entry["file"], out / "datasets" / entry["file"])
    for name in ("pyproject.toml", "LICENSE"):
        if (root / name).exists():
            shutil.copy2(root / name, out / name)
    _write_templates(root, out, solutions)
    if solutions:
        _copy_solutions(root, out, list(weeks) if weeks is not None else list(WEEKS))
    if repository:
        fill_repository(out, repository)
    problems = audit(out, allow_solutions=solutions)
    if problems:
        raise ReleaseError("the release would leak course material:\n  " + "\n  ".join(problems))
    if git:
        kind = "solutions" if solutions else "student template"
        _git_commit(out, "solutions" if solutions else "main", message or f"Transformer Deep Dive {kind}")
    return out


# --------------------------------------------------------------------------- the audit
def _is_text(path: Path) -> bool:
    return b"\0" not in path.read_bytes()[:8192]


def audit(tree: Path, allow_solutions: bool = False) -> list[str]:
    """Everything in ``tree`` that must not reach students. Empty when the tree is clean."""
    problems = []
    if (tree / "autograder" / "suites").exists():
        problems.append("autograder/suites/ (the hidden tests) is in the tree")
    if (tree / "solutions").exists() and not allow_solutions:
        problems.append("solutions/ is in the tree")
    for path in sorted(p for p in tree.rglob("*") if p.is_file() and ".git" not in p.relative_to(tree).parts):
        rel = path.relative_to(tree)
        if allow_solutions and rel.parts[0] == "solutions":
            continue
        if path.suffix == ".ipynb":
            problems += [f"{rel}: {p}" for p in _audit_notebook(path)]
        elif path.suffix == ".py":
            try:
                regions = find_regions(path.read_text(), str(rel))
            except (MarkerError, SyntaxError) as exc:
                problems.append(f"{rel}: {exc}")
                continue
            problems += [f"{rel}:{r.begin}: a solution region" for r in regions]
        elif _is_text(path):
            for no, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                stripped = line.strip().strip("#=").strip()
                if any(stripped.startswith(m) for m in FORBIDDEN):
                    problems.append(f"{rel}:{no}: a marked region ({stripped})")
    return problems


def _audit_notebook(path: Path) -> list[str]:
    nb = json.loads(path.read_text())
    problems = []
    for i, cell in enumerate(nb.get("cells", [])):
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        for marker in FORBIDDEN:
            if marker in source:
                problems.append(f"cell {i}: {marker}")
        if cell.get("outputs"):
            problems.append(f"cell {i}: has outputs (a notebook is released without outputs)")
    return problems


# --------------------------------------------------------------------------- git
def _git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ReleaseError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def _git_commit(tree: Path, branch: str, message: str) -> None:
    _git(tree, "init", "-q", "-b", branch)
    identity = []
    if subprocess.run(["git", "config", "user.email"], cwd=tree, capture_output=True).returncode != 0:
        identity = ["-c", "user.name=Transformer Deep Dive", "-c", "user.email=course@example.invalid"]
    _git(tree, "add", "-A")
    _git(tree, *identity, "commit", "-q", "-m", message)


# --------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="course release",
        description="Build the student template repository (no solutions, no hidden tests) "
        "or, with --solutions, the tree of the protected `solutions` branch.",
    )
    parser.add_argument("out", nargs="?", help="directory to create (must be absent or empty)")
    parser.add_argument("--out", dest="out_option", metavar="DIR", help="the same, as an option")
    parser.add_argument("--solutions", action="store_true", help="fill in solutions/ (the solutions branch)")
    parser.add_argument("--weeks", nargs="+", help="with --solutions: only these weeks' solutions")
    parser.add_argument(
        "--due-by",
        metavar="TIME",
        help="with --solutions: only weeks whose deadline and late window have passed by TIME "
        "(ISO 8601 or `now`), from course/schedule.toml",
    )
    parser.add_argument(
        "--repository",
        metavar="OWNER/NAME",
        default=os.environ.get("TEMPLATE_REPOSITORY"),
        help="the template repository on GitHub, written into the notebooks' Colab badges and set-up "
        "cells (default: $TEMPLATE_REPOSITORY; without either, they keep a placeholder)",
    )
    parser.add_argument("--no-git", action="store_true", help="do not `git init` and commit the tree")
    parser.add_argument("--message", help="commit message")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:  # `course release -- --out DIR`: the separator is not ours
        argv = argv[1:]
    args = parser.parse_args(argv)
    args.out = args.out_option or args.out
    if not args.out:
        parser.error("the output directory is required (DIR or --out DIR)")
    if (args.weeks or args.due_by) and not args.solutions:
        parser.error("--weeks and --due-by choose solutions: use them with --solutions")
    try:
        weeks = [get_week(w) for w in args.weeks] if args.weeks else None
        if args.due_by:
            due = load_schedule(SCHEDULE).solutions_due(parse_time(args.due_by))
            weeks = [w for w in (weeks or WEEKS) if w.id in due]
        out = build(
            Path(args.out),
            solutions=args.solutions,
            weeks=weeks,
            git=not args.no_git,
            message=args.message,
            repository=args.repository,
        )
    except (ReleaseError, KeyError, ValueError) as exc:
        print(f"course release: {exc}", file=sys.stderr)
        return 2
    filled = ", ".join(w.id for w in weeks) if weeks is not None else "all weeks"
    what = f"solutions tree ({filled})" if args.solutions else "student template"
    print(f"course release: wrote the {what} to {out}")
    if not args.repository:
        print(
            f"course release: note: the notebooks' Colab badges still read {REPOSITORY_PLACEHOLDER}; "
            "give --repository OWNER/NAME (or set TEMPLATE_REPOSITORY) to fill it in",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
