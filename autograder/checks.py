"""Comparisons for hidden tests whose failure messages teach without giving answers away.

A message states what was compared, shapes and dtypes, exact / allclose, the largest
absolute difference and where it is, and a one-line hint naming the concept. It never
prints the expected tensor. ``diagnose`` lists outputs of classic bugs (computed on the
trusted side); when the submission matches one, the message names that bug instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


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
    diagnose: Sequence[tuple[torch.Tensor, str]] = (),
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
    for candidate, diagnosis in diagnose:
        if matches(actual, candidate, atol, rtol):
            raise GradingFailure(f"{what}: {diagnosis}")
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
    raise GradingFailure(detail + "." + _hint(hint))


def check_equal(actual, expected, *, what: str, hint: str = "") -> None:
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
            wrong = int((actual != expected).sum())
            first = tuple(int(i) for i in (actual != expected).nonzero()[0])
            raise GradingFailure(
                f"{what}: {wrong} of {actual.numel()} entries differ (first at index {first})." + _hint(hint)
            )
        return
    if actual != expected:
        raise GradingFailure(f"{what}: got {actual!r}." + _hint(hint))


def check(condition: bool, message: str, hint: str = "") -> None:
    if not condition:
        raise GradingFailure(message + _hint(hint))


def check_shape(actual, shape: Sequence[int], *, what: str, hint: str = "") -> None:
    actual = _as_tensor(actual, what)
    if tuple(actual.shape) != tuple(shape):
        raise GradingFailure(f"{what}: shape {tuple(actual.shape)}, expected {tuple(shape)}." + _hint(hint))


def _hint(hint: str) -> str:
    return f" Hint: {hint}" if hint else ""
