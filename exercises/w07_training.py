"""Week 7 — training recipes: the schedule, clipping, loss, optimizer and bookkeeping that
make a small transformer train reliably.

Conventions (course/w07_training/notes.md states them with examples):

* ``lr_schedule``: linear warmup ``max_lr · step / warmup_steps`` for ``step < warmup_steps``,
  then a half cosine from ``max_lr`` down to ``min_lr`` at ``total_steps``, ``min_lr`` after.
  With ``min_lr = 0`` it equals Hugging Face's ``get_cosine_schedule_with_warmup`` on
  ``0 … total_steps``.
* ``clip_grad_norm``: one global L2 norm over every gradient (``None`` gradients skipped),
  gradients scaled by ``min(1, max_norm / (norm + 1e-6))``; returns the norm *before* clipping,
  as ``torch.nn.utils.clip_grad_norm_`` does.
* ``cross_entropy`` with label smoothing ε: ``(1-ε)(-log p_y) + (ε/C) Σ_c (-log p_c)``, averaged
  over the targets that are not ``ignore_index``.
* ``AdamW``: decoupled weight decay with ``torch.optim.AdamW``'s defaults and update order.
* ``param_groups``: tensors with 2+ dims (matmul weights, embeddings) decay; biases and
  norm gains do not.

Shapes: ``N`` targets, ``C`` classes (vocabulary); logits ``(..., C)`` with targets ``(...)``.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn


# --------------------------------------------------------------------------- schedule
def lr_schedule(
    step: int, *, max_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0
) -> float:
    """Learning rate at optimizer step ``step`` (0-indexed).

    ``step < warmup_steps``: ``max_lr · step / warmup_steps`` (0 at step 0, so the very first
    update is a no-op, as in Hugging Face). ``warmup_steps <= step <= total_steps``: cosine
    from ``max_lr`` (at ``warmup_steps``) to ``min_lr`` (at ``total_steps``). Beyond
    ``total_steps``: ``min_lr``. Returns a Python float.
    """
    raise NotImplementedError("w07: implement lr_schedule; see course/w07_training/notes.md")


# --------------------------------------------------------------------------- clipping
def clip_grad_norm(parameters: Iterable[torch.Tensor] | torch.Tensor, max_norm: float) -> torch.Tensor:
    """Scale all gradients in place so that their *global* L2 norm is at most ``max_norm``.

    parameters: tensors (or one tensor); those whose ``.grad`` is ``None`` (frozen or unused)
    are skipped. The norm is taken over every gradient element at once, not per tensor.
    Returns the total norm *before* clipping, a 0-dim float tensor (0 when there are no
    gradients), exactly like ``torch.nn.utils.clip_grad_norm_``.
    """
    raise NotImplementedError("w07: implement clip_grad_norm; see course/w07_training/notes.md")


# --------------------------------------------------------------------------- loss
def cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Mean cross-entropy of ``logits`` (..., C) against class ids ``targets`` (...).

    With label smoothing ε the target distribution puts ``1 - ε + ε/C`` on the true class
    and ``ε/C`` on every class, so the loss is ``(1-ε)(-log p_y) + (ε/C) Σ_c (-log p_c)``.
    Positions whose target is ``ignore_index`` contribute nothing and are not counted in
    the mean. Computed in float32 with a max-subtracted log-softmax, so it is exact for
    logits of any size (no overflow at 1000× logits). Returns a 0-dim tensor.
    Build it from tensor operations; ``F.cross_entropy`` is the oracle, not the answer.
    """
    raise NotImplementedError("w07: implement cross_entropy; see course/w07_training/notes.md")


# --------------------------------------------------------------------------- optimizer
class AdamW(torch.optim.Optimizer):
    """Adam with decoupled weight decay (Loshchilov & Hutter), step for step the same as
    ``torch.optim.AdamW`` with its defaults (``lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
    weight_decay=1e-2``).

    Per parameter ``p`` with gradient ``g``, at step ``t`` (1, 2, …):
    ``p ← p · (1 - lr·wd)``; ``m ← β1 m + (1-β1) g``; ``v ← β2 v + (1-β2) g²``;
    ``p ← p - lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + eps)``.
    State per parameter: ``step`` (float tensor), ``exp_avg`` (m), ``exp_avg_sq`` (v), so
    ``state_dict()`` holds tensors and numbers only. Reads ``lr`` and ``weight_decay`` from
    each param group at every step, so a schedule can change them.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ):
        if lr < 0 or eps < 0 or weight_decay < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"invalid AdamW hyper-parameters: lr={lr}, betas={betas}, eps={eps}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        raise NotImplementedError("w07: implement AdamW.step; see course/w07_training/notes.md")
        return loss


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two optimizer param groups for ``model``'s *trainable* parameters.

    ``[{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]``
    where ``decay`` holds every parameter with 2 or more dims (linear and embedding
    weights) and ``no_decay`` the rest (biases, LayerNorm/RMSNorm gains). Parameters with
    ``requires_grad=False`` are left out; a parameter shared by two modules appears once.
    Pass the result to an optimizer: ``AdamW(param_groups(model, 0.1), lr=3e-4)``.
    """
    raise NotImplementedError("w07: implement param_groups; see course/w07_training/notes.md")


# --------------------------------------------------------------------------- one optimizer step
def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    micro_batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    max_norm: float | None = None,
    lr: float | None = None,
    amp_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """One optimizer step accumulated over ``micro_batches``.

    micro_batches: a list of ``(inputs, targets)`` pairs of equal size, e.g. inputs (B, T)
    token ids and targets (B, T). For each pair: ``logits = model(inputs)`` (a model that
    returns a tuple, like week 6's GPT, contributes its first element), ``loss =
    loss_fn(logits, targets) / len(micro_batches)``, backward. With equal-sized micro-batches
    the summed gradient then equals the gradient of the mean loss over one big batch.
    ``loss_fn`` defaults to this module's ``cross_entropy`` (logits (..., C), targets (...)).
    The forward passes run under ``torch.autocast(device_type, dtype=amp_dtype)`` when
    ``amp_dtype`` is given (``torch.bfloat16`` works on CPU); parameters and the optimizer
    stay float32. Then: clip to ``max_norm`` (if given), set every group's ``lr`` (if given),
    ``optimizer.step()``, ``optimizer.zero_grad(set_to_none=True)``.
    Returns ``{"loss": mean micro-batch loss, "grad_norm": global gradient norm before clipping}``.
    """
    raise NotImplementedError("w07: implement train_step; see course/w07_training/notes.md")


# --------------------------------------------------------------------------- reproducibility
def set_seed(seed: int) -> None:
    """Seed every generator a training run draws from: Python's ``random``, NumPy's global
    generator and PyTorch's (CPU and, where present, every CUDA device), all with ``seed``."""
    raise NotImplementedError("w07: implement set_seed; see course/w07_training/notes.md")


def save_checkpoint(
    path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None, step: int, **extra
) -> None:
    """Write everything needed to resume *exactly* to ``path`` with ``torch.save``.

    The file is a dict: ``model`` (state_dict), ``optimizer`` (state_dict, or None),
    ``step`` (int), ``rng`` (the states of torch, CUDA if present, NumPy and Python's
    ``random``) and ``extra`` (the keyword arguments, e.g. ``data_pos=…`` for where the data
    loader stands, or a config dict). Only tensors, numbers, strings and containers of them
    are stored, so ``torch.load(path, weights_only=True)`` reads it.
    """
    raise NotImplementedError("w07: implement save_checkpoint; see course/w07_training/notes.md")


def load_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None) -> dict:
    """Restore ``model``, ``optimizer`` (when given) and every RNG from ``path`` (written by
    ``save_checkpoint``), loading with ``weights_only=True``.

    Returns ``{"step": step, **extra}``: the step to resume from and whatever extra values
    were saved (such as the data position).
    """
    raise NotImplementedError("w07: implement load_checkpoint; see course/w07_training/notes.md")


def _py(value):
    """A NumPy scalar as the matching Python number (so weights_only loading accepts it)."""
    return value.item() if hasattr(value, "item") else value


def _as_tuples(value):
    """``random.setstate`` wants tuples all the way down."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value
