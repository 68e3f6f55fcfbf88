"""Week 9 hidden suite: the 90/10 split and get_batch (windows, shift, coverage, seeding).

What the data functions promise, and the edge each promise is tested at (test in brackets):

  * train_val_split: the first int(train_frac · N) tokens, in order; N where 0.9·N is not whole
    (rounded down, never to the nearest), N = 1 (an empty training part), another train_frac
    (train_val_split)
  * get_batch: (B, T) int64 windows, y = x shifted by one (get_batch_windows_and_shift); every
    start from 0 to the last valid one N - T - 1, none past it (get_batch_covers_every_window); a
    text of exactly one window (N = T + 1), block_size 1, batch_size 1 (get_batch_edges); the
    documented draw from the generator given, never the global RNG (get_batch_is_seeded)
"""

from __future__ import annotations

import math

import pytest
import torch

from autograder.checks import Example, check, check_equal, check_shape
from autograder.isolation import SubmissionError
from autograder.suites.w09_capstone.common import DATA, attempt, randint

pytestmark = pytest.mark.w09

ROUNDED = (
    "the training part has int(train_frac · N) tokens, rounded down; yours rounded to the nearest "
    f"integer (or up), so one token moved from validation to training ({DATA})."
)


def _split_diagnoses(n: int, frac: float):
    """Sizes of the training part under classic mistakes (the sizes differ, so the lengths are
    compared first)."""
    return [
        (round(frac * n), ROUNDED),
        (math.ceil(frac * n), ROUNDED),
        (
            int(0.9 * n),
            f"the split ignores train_frac: it always keeps 90%; use int(train_frac · N) ({DATA}).",
        ),
    ]


@pytest.mark.points(1)
def test_train_val_split(student, gen):
    """train_val_split keeps the first 90% for training and the last 10% for validation"""
    n = randint(gen, 3000, 1000)
    # N = 1 leaves nothing to train on; 0.9·4 = 3.6 and 0.9·14 = 12.6 round down to 3 and 12.
    cases = [(n, 0.9), (1, 0.9), (4, 0.9), (14, 0.9), (randint(gen, 40, 20) * 2 + 1, 0.5)]
    for size, frac in cases:
        data = torch.randperm(size, generator=gen)
        train, val = student.train_val_split(data, frac) if frac != 0.9 else student.train_val_split(data)
        cut = int(frac * size)
        check_equal(
            len(train),
            cut,
            what=f"the size of the training part of {size} tokens (train_frac {frac})",
            hint="the first int(train_frac * N) tokens.",
            diagnose=_split_diagnoses(size, frac),
        )
        check_equal(
            train,
            data[:cut],
            what=f"the training part of {size} tokens (train_frac {frac})",
            hint="the first int(train_frac * N) tokens, in order.",
            example=Example(
                "train_val_split(torch.arange(10))[0]",
                torch.arange(9),
                lambda: student.train_val_split(torch.arange(10))[0],
            ),
        )
        check_equal(
            val,
            data[cut:],
            what=f"the validation part of {size} tokens",
            hint="the rest, in order (no shuffle).",
        )


@pytest.mark.points(2)
def test_get_batch_windows_and_shift(student, gen):
    """get_batch returns (B, T) int64 windows and targets shifted by one token"""
    n, T, B = randint(gen, 400, 200), randint(gen, 12, 4), randint(gen, 9, 3)
    data = torch.randperm(n, generator=gen)  # distinct values: a window's start is recoverable
    x, y = student.get_batch(data, T, B, generator=torch.Generator().manual_seed(randint(gen, 10**6)))
    check_shape(x, (B, T), what=f"x of get_batch(data, block_size={T}, batch_size={B})")
    check_shape(y, (B, T), what="y")
    check_equal(
        x.dtype,
        torch.int64,
        what="x.dtype",
        hint="token ids are int64 (embedding and cross_entropy want it).",
    )
    check(
        not torch.equal(x, y),
        "y equals x: the targets are not shifted. y must hold the *next* tokens, data[i + 1 : i + 1 + T], "
        f"or the model learns to copy its input ({DATA}).",
    )
    where = torch.empty(n, dtype=torch.long)
    where[data] = torch.arange(n)
    example = Example(
        "get_batch(torch.arange(10, 16), block_size=3, batch_size=1, generator=torch.Generator()"
        ".manual_seed(0)), whose one start is torch.randint(3, (1,), generator=...) = 2: (x, y)",
        ([[12, 13, 14]], [[13, 14, 15]]),
        lambda: tuple(
            t.tolist()
            for t in student.get_batch(torch.arange(10, 16), 3, 1, generator=torch.Generator().manual_seed(0))
        ),
    )
    for b in range(B):
        start = int(where[x[b, 0]])
        check(
            start + T < n,
            f"row {b} of x starts at {start}: its window has no next token for the last position.",
        )
        check_equal(
            x[b],
            data[start : start + T],
            what=f"row {b} of x",
            hint="x = data[i : i + T], contiguous.",
            example=example,
        )
        check_equal(
            y[b],
            data[start + 1 : start + T + 1],
            what=f"row {b} of y",
            hint="y = data[i + 1 : i + T + 1]: the same window shifted by one.",
            example=example,
        )


def _past_the_end(exc: SubmissionError) -> str | None:
    if exc.exc_type not in ("IndexError", "RuntimeError"):
        return None
    return (
        "get_batch read past the end of data: a window starting at N - T has no target for its last "
        f"position. Valid starts are 0 … N - T - 1, which is torch.randint(len(data) - block_size, ...) ({DATA})"
    )


@pytest.mark.points(1)
def test_get_batch_covers_every_window(student, gen):
    """get_batch draws every valid start position, from the first to the last one"""
    n, T = 30, randint(gen, 8, 3)
    data = torch.arange(n)
    generator = torch.Generator().manual_seed(randint(gen, 10**6))
    x, _ = attempt(_past_the_end, student.get_batch, data, T, 3000, generator=generator)
    starts = set(x[:, 0].tolist())
    last = n - T - 1
    check(max(starts) <= last, f"a window starts at {max(starts)}, beyond the last valid start {last}.")
    check(
        last in starts,
        f"in 3000 draws the last valid window (start N - T - 1 = {last}) never came up: an off-by-one in the "
        f"range of start positions ({DATA}).",
        "torch.randint(len(data) - block_size, ...) draws 0 … N - T - 1.",
    )
    check(
        0 in starts,
        f"in 3000 draws the first window (start 0) never came up: start positions begin at 0 ({DATA}).",
        "torch.randint(len(data) - block_size, ...) draws 0 … N - T - 1.",
    )
    check(starts == set(range(last + 1)), "some valid start positions are never drawn.")


@pytest.mark.points(1)
def test_get_batch_edges(student, gen):
    """get_batch on a text of exactly one window, with block_size 1 and batch_size 1"""
    T = randint(gen, 9, 2)
    data = torch.randperm(T + 1, generator=gen)  # N = T + 1: one window, start 0 only

    def one_window(exc: SubmissionError) -> str | None:
        if exc.exc_type not in ("IndexError", "RuntimeError"):
            return None
        return (
            f"with N = block_size + 1 = {T + 1} tokens there is exactly one window: its start 0 is both the "
            "first and the last valid start (N - T - 1 = 0), and get_batch failed on it. Draw starts with "
            f"torch.randint(len(data) - block_size, ...), which is randint(1) here ({DATA})"
        )

    g = torch.Generator().manual_seed(randint(gen, 10**6))
    x, y = attempt(one_window, student.get_batch, data, T, 4, generator=g)
    check_equal(
        x, data[:T].expand(4, T).contiguous(), what=f"x for data of {T + 1} tokens and block_size {T}"
    )
    check_equal(
        y, data[1:].expand(4, T).contiguous(), what=f"y for data of {T + 1} tokens and block_size {T}"
    )
    data = torch.randperm(50, generator=gen)
    x, y = student.get_batch(data, 1, 1, generator=torch.Generator().manual_seed(randint(gen, 10**6)))
    check_shape(x, (1, 1), what="x of get_batch(data, block_size=1, batch_size=1)")
    check_shape(y, (1, 1), what="y of get_batch(data, block_size=1, batch_size=1)")
    where = int((data == x[0, 0]).nonzero()[0])
    check_equal(int(y[0, 0]), int(data[where + 1]), what="y for block_size 1 (the token after x)")


@pytest.mark.points(1)
def test_get_batch_is_seeded(student, gen):
    """get_batch draws its starts as documented, from the generator it is given"""
    n, T, B = 500, 8, 16
    data = torch.arange(n)
    seed = randint(gen, 10**6)
    x1, _ = student.get_batch(data, T, B, generator=torch.Generator().manual_seed(seed))
    x2, _ = student.get_batch(data, T, B, generator=torch.Generator().manual_seed(seed))
    check(
        torch.equal(x1, x2),
        "two batches drawn with equally seeded generators differ: the generator passed in is not used, so the "
        f"starts come from the global RNG and a run cannot be repeated or resumed ({DATA}).",
        "pass generator=generator to torch.randint.",
    )
    expected = torch.randint(n - T, (B,), generator=torch.Generator().manual_seed(seed))
    check_equal(
        x1[:, 0],
        expected,
        what="window starts",
        hint="starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator).",
    )
