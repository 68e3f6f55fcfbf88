"""Transformer Deep Dive's grading engine and course tooling (the `course` command)."""

__version__ = "0.1.0"
