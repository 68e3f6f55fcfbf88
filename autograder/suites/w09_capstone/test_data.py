"""Week 9 hidden suite: the 90/10 split and get_batch (windows, shift, coverage, seeding)."""

from __future__ import annotations

import pytest
import torch

from autograder.checks import check, check_equal, check_shape
from autograder.suites.w09_capstone.common import randint

pytestmark = pytest.mark.w09


@pytest.mark.points(1)
def test_train_val_split(student, gen):
    """train_val_split keeps the first 90% for training and the last 10% for validation"""
    n = randint(gen, 3000, 1000)
    data = torch.randperm(n, generator=gen)
    train, val = student.train_val_split(data)
    cut = int(0.9 * n)
    check_equal(train, data[:cut], what=f"the training part of {n} tokens", hint="first int(0.9 * N) tokens.")
    check_equal(
        val, data[cut:], what=f"the validation part of {n} tokens", hint="the rest, in order (no shuffle)."
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
        not torch.equal(x, y), "y equals x: the targets must be the *next* tokens, data[i + 1 : i + 1 + T]."
    )
    where = torch.empty(n, dtype=torch.long)
    where[data] = torch.arange(n)
    for b in range(B):
        start = int(where[x[b, 0]])
        check(
            start + T < n,
            f"row {b} of x starts at {start}: its window has no next token for the last position.",
        )
        check_equal(
            x[b], data[start : start + T], what=f"row {b} of x", hint="x = data[i : i + T], contiguous."
        )
        check_equal(
            y[b],
            data[start + 1 : start + T + 1],
            what=f"row {b} of y",
            hint="y = data[i + 1 : i + T + 1]: the same window shifted by one.",
        )


@pytest.mark.points(1)
def test_get_batch_covers_every_window(student, gen):
    """get_batch draws every valid start position, up to the last one"""
    n, T = 30, randint(gen, 8, 3)
    data = torch.arange(n)
    x, _ = student.get_batch(data, T, 3000, generator=torch.Generator().manual_seed(randint(gen, 10**6)))
    starts = set(x[:, 0].tolist())
    last = n - T - 1
    check(max(starts) <= last, f"a window starts at {max(starts)}, beyond the last valid start {last}.")
    check(
        last in starts,
        f"in 3000 draws the last valid window (start N - T - 1 = {last}) never came up: an off-by-one in the "
        "range of start positions.",
        "torch.randint(len(data) - block_size, ...) draws 0 … N - T - 1.",
    )
    check(starts == set(range(last + 1)), "some valid start positions are never drawn.")


@pytest.mark.points(1)
def test_get_batch_is_seeded(student, gen):
    """get_batch draws its starts as documented, from the generator it is given"""
    n, T, B = 500, 8, 16
    data = torch.arange(n)
    seed = randint(gen, 10**6)
    x1, _ = student.get_batch(data, T, B, generator=torch.Generator().manual_seed(seed))
    x2, _ = student.get_batch(data, T, B, generator=torch.Generator().manual_seed(seed))
    check_equal(
        x1, x2, what="two batches drawn with equally seeded generators", hint="pass generator= to randint."
    )
    expected = torch.randint(n - T, (B,), generator=torch.Generator().manual_seed(seed))
    check_equal(
        x1[:, 0],
        expected,
        what="window starts",
        hint="starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator).",
    )
