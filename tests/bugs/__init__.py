"""Known-bug corpus: realistic student mistakes, one module per week (``wNN.py``).

Each bug is a textual edit of the reference module (``old`` must occur exactly once in
it); the project's tests apply it, grade the mutated module with that week's suite, and
assert the week loses points (caught) and that the failing test's message names the mistake
(named: it contains every one of the bug's ``keywords``, case-insensitively, and cites the
section of course/CONVENTIONS.md given as ``convention``). ``catches`` names the test that must
fail; without it, any failing test of the week may name the bug.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bug:
    name: str
    old: str
    new: str
    file: str | None = None  # path inside the week's package, for package weeks (w09)
    catches: str | None = None  # a test function name that must fail for this bug
    keywords: tuple[str, ...] = ()  # words the message must contain to name the mistake
    convention: str | None = None  # a heading of course/CONVENTIONS.md the message must cite
