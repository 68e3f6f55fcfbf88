"""Comparisons for hidden tests whose failure messages teach without giving answers away.

A message states what was compared, shapes and dtypes, exact / allclose, the largest
absolute difference and where it is, and a one-line hint naming the concept. It never
prints the expected tensor of the graded input. ``diagnose`` lists outputs of classic bugs
(computed on the trusted side); when the submission matches one, the message names that bug
instead, in the student's terms, and cites the convention it breaks (``convention``). Where no
diagnosis fits, an ``Example`` adds a case small enough to check on paper: its input, the
expected output and the submission's output.

Diagnoses and examples may call the submission (a probe). They run only after a mismatch was
found, and a probe that raises becomes this test's failure with the student's traceback, never
a grader error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .isolation import SubmissionError, SubmissionTimeout

# The headings of course/CONVENTIONS.md (a project test keeps the two in step). A message cites
# one with ``convention(section)`` so that every failure points at the rule it breaks.
CONVENTION_SECTIONS = (
    "Tensors and weights",
    "Masks and attention",
    "Positions",
    "Blocks",
    "Objectives and data",
    "Sampling",
    "Optimisation",
    "Tolerances",
)


def convention(section: str) -> str:
    """``"course/CONVENTIONS.md § Positions"``: the one way a message names the rule it breaks."""
    return f"course/CONVENTIONS.md § {section}"


Diagnoses = Sequence[tuple[Any, str]] | Callable[[], Sequence[tuple[Any, str]]]


@dataclass
class Example:
    """A worked example shown when a mismatch has no diagnosis.

    ``inputs`` describes a small input in words a student can type (``"x = [1., 2., 3.]"``);
    ``expected`` is the right output for it; ``got`` calls the submission on it (lazily: only
    when the graded comparison already failed).
    """

    inputs: str
    expected: Any
    got: Callable[[], Any]


class GradingFailure(AssertionError):
    """A verdict of 'wrong': the message is shown to the student as it is."""


def _fmt_shape(t: torch.Tensor) -> str:
    return f"{tuple(t.shape)} {str(t.dtype).replace('torch.', '')}"


def _as_tensor(value, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (int, float, bool)):
        return torch.tensor(value)
    raise GradingFailure(f"{what}: expected a torch.Tensor, got {type(value).__name__}")


def matches(actual, expected, atol: float = 1e-5, rtol: float = 1e-5) -> bool:
    """True when shapes agree and values are close (NaN never matches)."""
    if not isinstance(actual, torch.Tensor) or actual.shape != expected.shape:
        return False
    return bool(torch.allclose(actual.double(), expected.double(), atol=atol, rtol=rtol))


def check_close(
    actual,
    expected: torch.Tensor,
    *,
    what: str,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    hint: str = "",
    diagnose: Diagnoses = (),
    example: Example | None = None,
    check_dtype: bool = True,
) -> None:
    actual = _as_tensor(actual, what)
    expected = _as_tensor(expected, what)
    if actual.shape != expected.shape:
        raise GradingFailure(
            f"{what}: shape {tuple(actual.shape)}, expected {tuple(expected.shape)}." + _hint(hint)
        )
    if check_dtype and actual.dtype != expected.dtype:
        raise GradingFailure(f"{what}: dtype {actual.dtype}, expected {expected.dtype}." + _hint(hint))
    if torch.equal(actual, expected):
        return
    a, e = actual.double(), expected.double()
    close = torch.isclose(a, e, atol=atol, rtol=rtol, equal_nan=False)
    if bool(close.all()):
        return
    _raise_diagnosis(what, diagnose, lambda candidate: matches(actual, candidate, atol, rtol))
    n_bad = int((~close).sum())
    nan = int(torch.isnan(a).sum())
    diff = (a - e).abs().nan_to_num(nan=float("inf"))
    flat = int(diff.argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), a.shape)) if a.dim() else ()
    detail = (
        f"{what}: {_fmt_shape(actual)}; exact: False | allclose(atol={atol:g}, rtol={rtol:g}): False | "
        f"{n_bad} of {a.numel()} elements off, max |diff| {float(diff.max()):.3g} at index {index}"
    )
    if nan:
        detail += f"; {nan} NaN values in your output"
    raise GradingFailure(detail + "." + _hint(hint) + _worked(what, example))


def check_equal(
    actual, expected, *, what: str, hint: str = "", diagnose: Diagnoses = (), example: Example | None = None
) -> None:
    """Exact equality for ints, strings, shapes, bool masks and token ids."""
    if isinstance(expected, torch.Tensor):
        actual = _as_tensor(actual, what)
        if actual.shape != expected.shape:
            raise GradingFailure(
                f"{what}: shape {tuple(actual.shape)}, expected {tuple(expected.shape)}." + _hint(hint)
            )
        if actual.dtype != expected.dtype:
            raise GradingFailure(f"{what}: dtype {actual.dtype}, expected {expected.dtype}." + _hint(hint))
        if not torch.equal(actual, expected):
            _raise_diagnosis(what, diagnose, lambda candidate: _equal(actual, candidate))
            wrong = int((actual != expected).sum())
            first = tuple(int(i) for i in (actual != expected).nonzero()[0])
            raise GradingFailure(
                f"{what}: {wrong} of {actual.numel()} entries differ (first at index {first})."
                + _hint(hint)
                + _worked(what, example)
            )
        return
    if actual != expected:
        _raise_diagnosis(what, diagnose, lambda candidate: _equal(actual, candidate))
        raise GradingFailure(f"{what}: got {_short(actual)}." + _hint(hint) + _worked(what, example))


def check(condition: bool, message: str, hint: str = "") -> None:
    if not condition:
        raise GradingFailure(message + _hint(hint))


def check_shape(actual, shape: Sequence[int], *, what: str, hint: str = "") -> None:
    actual = _as_tensor(actual, what)
    if tuple(actual.shape) != tuple(shape):
        raise GradingFailure(f"{what}: shape {tuple(actual.shape)}, expected {tuple(shape)}." + _hint(hint))


def _hint(hint: str) -> str:
    return f" Hint: {hint}" if hint else ""


def _equal(actual, candidate) -> bool:
    if isinstance(candidate, torch.Tensor):
        return (
            isinstance(actual, torch.Tensor)
            and actual.shape == candidate.shape
            and bool(torch.equal(actual, candidate.to(actual.dtype)))
        )
    try:
        return bool(actual == candidate)
    except Exception:  # noqa: BLE001 - a value that cannot be compared matches no diagnosis
        return False


def _as_failure(call: Callable[[], Any], describe: Callable[[SubmissionError], str]) -> Any:
    """``call()``; an exception raised by the submission becomes this test's failure (the text
    ``describe`` gives, then the student's traceback); a timeout stays a timeout."""
    try:
        return call()
    except SubmissionTimeout:
        raise
    except SubmissionError as exc:
        message = describe(exc)
        if exc.traceback:
            message += "\n\nYour code's traceback:\n" + exc.traceback.rstrip()
        raise GradingFailure(message) from None


def attempt(call: Callable[[], Any], what: str, advice: str) -> Any:
    """``call()``; an exception raised by the submission fails the test with ``advice`` and the
    student's traceback (a timeout stays a timeout)."""
    return _as_failure(call, lambda exc: f"{what} raised {exc.exc_type or 'an error'}: {advice}")


def _probe(what: str, call: Callable[[], Any]) -> Any:
    """Runs a diagnosis or example probe; the student's exception becomes this test's failure."""
    return _as_failure(
        call, lambda exc: f"{what}: wrong, and while the grader tried a smaller case to say why, {exc}"
    )


def _raise_diagnosis(what: str, diagnose: Diagnoses, fits: Callable[[Any], bool]) -> None:
    candidates = _probe(what, diagnose) if callable(diagnose) else diagnose
    for candidate, diagnosis in candidates:
        if fits(candidate):
            raise GradingFailure(f"{what}: {diagnosis}")


def _short(value, limit: int = 300) -> str:
    """A small value as a student would type it: tensors rounded to 4 decimals."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point():
            value = torch.round(value.detach().double(), decimals=4)
        text = f"{value.tolist()}"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _worked(what: str, example: Example | None) -> str:
    if example is None:
        return ""
    got = _probe(what, example.got)
    return (
        f" A worked example to check on paper: {example.inputs} should give {_short(example.expected)};"
        f" yours gives {_short(got)}."
    )
