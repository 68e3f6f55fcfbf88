"""Known-bug corpus: realistic student mistakes, one module per week (``wNN.py``).

Each bug is a textual edit of the reference module (``old`` must occur exactly once in
it); the project's tests apply it, grade the mutated module with that week's suite, and
assert the week loses points. ``catches`` optionally names a test that must fail.
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
