"""Data: the text as one long tensor of token ids, split 90/10, sampled in random windows.

A language model learns from (input, target) pairs where the target is the input shifted
by one token: for a window ``data[i : i + T + 1]``, the model reads ``data[i : i + T]`` and
must predict ``data[i + 1 : i + T + 1]``, i.e. T next-token predictions per window.
"""

from __future__ import annotations

from pathlib import Path

import torch


def load_text(path: str | Path) -> str:
    """The whole corpus as one string (UTF-8)."""
    return Path(path).read_text(encoding="utf-8")


def train_val_split(data: torch.Tensor, train_frac: float = 0.9) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``train_frac`` of ``data`` for training, the rest for validation.

    data: (N,) token ids. Returns (train (n,), val (N - n,)) with ``n = int(train_frac * N)``.
    A contiguous split (not a shuffle): validation text is text the model has never seen
    any part of, the standard split for tiny Shakespeare.
    """
    raise NotImplementedError("w09: implement train_val_split; see course/w09_capstone/notes.md")


def get_batch(
    data: torch.Tensor,
    block_size: int,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random batch of windows from ``data`` and their next-token targets.

    data: (N,) int64 token ids. Draws ``batch_size`` start positions ``i`` uniformly from
    every valid start (``0 <= i <= N - block_size - 1``) with ``torch.randint(...,
    generator=generator)``; returns
    x (batch_size, block_size) = ``data[i : i + block_size]`` and
    y (batch_size, block_size) = ``data[i + 1 : i + 1 + block_size]`` (x shifted by one),
    both int64, on ``device``.
    """
    raise NotImplementedError("w09: implement get_batch; see course/w09_capstone/notes.md")
    if device is not None and torch.device(device).type == "cuda":
        # Pinned memory + non_blocking lets the copy overlap with the GPU's work.
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    if device is not None:
        return x.to(device), y.to(device)
    return x, y
