"""`course sync`: generate the student stubs in exercises/ from the reference in solutions/.

A solution region is delimited by two comment-only lines, ``### BEGIN SOLUTION`` and
``### END SOLUTION``. It becomes a single ``raise NotImplementedError("wNN: implement …;
see course/…")`` at the marker's indentation; everything outside the regions (imports,
signatures, docstrings, provided code) is kept as it is. Markers are found with
`tokenize`, so the same text inside a string or docstring is not a marker.
"""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass
from pathlib import Path

from .weeks import ROOT, WEEKS

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


class MarkerError(ValueError):
    pass


@dataclass
class Region:
    begin: int  # 1-based line numbers of the marker lines
    end: int
    indent: str


def find_regions(source: str, filename: str) -> list[Region]:
    lines = source.splitlines()
    regions: list[Region] = []
    open_at: int | None = None
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    for tok in tokens:
        if tok.type != tokenize.COMMENT:
            continue
        text = tok.string.strip()
        if text not in (BEGIN, END):
            continue
        line_no = tok.start[0]
        if lines[line_no - 1].strip() != text:
            continue  # a trailing comment after code is not a marker line
        if text == BEGIN:
            if open_at is not None:
                raise MarkerError(
                    f"{filename}:{line_no}: nested {BEGIN} (the region opened at line {open_at} is not closed)"
                )
            open_at = line_no
        else:
            if open_at is None:
                raise MarkerError(f"{filename}:{line_no}: {END} without a matching {BEGIN}")
            indent = lines[open_at - 1][: len(lines[open_at - 1]) - len(lines[open_at - 1].lstrip())]
            if not indent:
                raise MarkerError(
                    f"{filename}:{open_at}: a solution region at module level would make the stub fail to import"
                )
            regions.append(Region(open_at, line_no, indent))
            open_at = None
    if open_at is not None:
        raise MarkerError(f"{filename}:{open_at}: {BEGIN} is never closed by {END}")
    return regions


def _enclosing_function(tree: ast.AST, line_no: int) -> str:
    """Qualified name of the innermost def or class around ``line_no``."""
    best = "this part"

    def visit(node: ast.AST, prefix: str) -> None:
        nonlocal best
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if child.lineno <= line_no <= (child.end_lineno or child.lineno):
                    best = name
                    visit(child, name + ".")

    visit(tree, "")
    return best


def make_stub(source: str, filename: str, week_id: str, notes: str) -> str:
    regions = find_regions(source, filename)
    if not regions:
        return source
    tree = ast.parse(source, filename)
    lines = source.splitlines(keepends=True)
    out: list[str] = []
    cursor = 0
    for region in regions:
        out.extend(lines[cursor : region.begin - 1])
        name = _enclosing_function(tree, region.begin)
        message = f"{week_id}: implement {name}; see {notes}".replace("\\", "\\\\").replace('"', '\\"')
        out.append(f'{region.indent}raise NotImplementedError("{message}")\n')
        cursor = region.end
    out.extend(lines[cursor:])
    return "".join(out)


def plan(root: Path = ROOT) -> dict[Path, str]:
    """Every file exercises/ should hold that is generated, with its content."""
    solutions, exercises = root / "solutions", root / "exercises"
    wanted: dict[Path, str] = {}
    for week in WEEKS:
        notes = f"course/{week.module}/notes.md"
        single = solutions / f"{week.module}.py"
        files = [single] if single.exists() else sorted((solutions / week.module).rglob("*.py"))
        for path in files:
            rel = path.relative_to(solutions)
            wanted[exercises / rel] = make_stub(path.read_text(), f"solutions/{rel}", week.id, notes)
    init = solutions / "__init__.py"
    if init.exists():
        wanted[exercises / "__init__.py"] = init.read_text().replace("reference solutions", "exercises")
    return wanted


def sync(root: Path = ROOT, check: bool = False) -> list[Path]:
    """Write (or with ``check`` only compare) the stubs; returns the files that differ."""
    drifted = []
    for path, content in plan(root).items():
        current = path.read_text() if path.exists() else None
        if current != content:
            drifted.append(path)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content)
    return drifted
