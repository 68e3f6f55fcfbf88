"""Transformer Deep Dive's grading engine and course tooling (the `course` command)."""

from ._compat import install as _install_old_names

__version__ = "0.1.0"
_install_old_names()  # old module paths stay importable for one term (see _compat.py)
