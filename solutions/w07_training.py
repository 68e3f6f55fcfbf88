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
    ### BEGIN SOLUTION
    if step < warmup_steps:
        return max_lr * step / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)  # in [0, 1)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 -> 0
    return min_lr + cosine * (max_lr - min_lr)
    ### END SOLUTION


# --------------------------------------------------------------------------- clipping
def clip_grad_norm(parameters: Iterable[torch.Tensor] | torch.Tensor, max_norm: float) -> torch.Tensor:
    """Scale all gradients in place so that their *global* L2 norm is at most ``max_norm``.

    parameters: tensors (or one tensor); those whose ``.grad`` is ``None`` (frozen or unused)
    are skipped. The norm is taken over every gradient element at once, not per tensor.
    Returns the total norm *before* clipping, a 0-dim float tensor (0 when there are no
    gradients), exactly like ``torch.nn.utils.clip_grad_norm_``.
    """
    ### BEGIN SOLUTION
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    # ||g|| over everything = sqrt(sum of squared per-tensor norms).
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, 2.0) for g in grads]), 2.0)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)  # never scale gradients *up*
    for g in grads:
        g.mul_(coef.to(g.dtype))
    return total
    ### END SOLUTION


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
    ### BEGIN SOLUTION
    C = logits.size(-1)
    logits = logits.reshape(-1, C).float()  # (N, C); float32 even under bf16 autocast
    targets = targets.reshape(-1)  # (N,)
    keep = targets != ignore_index  # (N,)
    shifted = logits - logits.amax(dim=-1, keepdim=True)  # largest logit becomes 0: exp cannot overflow
    log_probs = shifted - shifted.exp().sum(dim=-1, keepdim=True).log()  # (N, C) log-softmax
    safe_targets = torch.where(keep, targets, torch.zeros_like(targets))  # any valid index
    nll = -log_probs.gather(1, safe_targets.unsqueeze(1)).squeeze(1)  # (N,)  -log p_y
    smooth = -log_probs.mean(dim=-1)  # (N,)  (1/C) Σ_c -log p_c
    loss = (1.0 - label_smoothing) * nll + label_smoothing * smooth
    return (loss * keep).sum() / keep.sum()
    ### END SOLUTION


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
        ### BEGIN SOLUTION
        for group in self.param_groups:
            lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p)  # m: running mean of g
                    state["exp_avg_sq"] = torch.zeros_like(p)  # v: running mean of g²
                state["step"] += 1
                t = state["step"].item()
                m, v, g = state["exp_avg"], state["exp_avg_sq"], p.grad
                # Decoupled decay: shrink the weight itself, not the gradient (that would be L2 in Adam).
                p.mul_(1 - lr * wd)
                m.lerp_(g, 1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                # Bias correction undoes the zero initialisation of m and v in early steps.
                step_size = lr / (1 - beta1**t)
                denom = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
                p.addcdiv_(m, denom, value=-step_size)
        ### END SOLUTION
        return loss


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two optimizer param groups for ``model``'s *trainable* parameters.

    ``[{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]``
    where ``decay`` holds every parameter with 2 or more dims (linear and embedding
    weights) and ``no_decay`` the rest (biases, LayerNorm/RMSNorm gains). Parameters with
    ``requires_grad=False`` are left out; a parameter shared by two modules appears once.
    Pass the result to an optimizer: ``AdamW(param_groups(model, 0.1), lr=3e-4)``.
    """
    ### BEGIN SOLUTION
    params = [p for p in model.parameters() if p.requires_grad]  # parameters() deduplicates tied weights
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    ### END SOLUTION


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
    ### BEGIN SOLUTION
    loss_fn = cross_entropy if loss_fn is None else loss_fn
    model.train()
    total = 0.0
    for inputs, targets in micro_batches:
        autocast = (
            torch.autocast(device_type=inputs.device.type, dtype=amp_dtype)
            if amp_dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            logits = model(inputs)
            if isinstance(logits, tuple):
                logits = logits[0]
            loss = loss_fn(logits, targets)
        # Dividing by the number of micro-batches turns a sum of gradients into a mean.
        (loss / len(micro_batches)).backward()
        total += loss.item()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    grad_norm = clip_grad_norm(params, max_norm if max_norm is not None else math.inf)
    if lr is not None:
        for group in optimizer.param_groups:
            group["lr"] = lr
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return {"loss": total / len(micro_batches), "grad_norm": float(grad_norm)}
    ### END SOLUTION


# --------------------------------------------------------------------------- reproducibility
def set_seed(seed: int) -> None:
    """Seed every generator a training run draws from: Python's ``random``, NumPy's global
    generator and PyTorch's (CPU and, where present, every CUDA device), all with ``seed``."""
    ### BEGIN SOLUTION
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    ### END SOLUTION


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
    ### BEGIN SOLUTION
    np_state = np.random.get_state()  # ("MT19937", uint32 array, pos, has_gauss, gauss)
    rng = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        # NumPy's key array becomes a tensor: weights_only loading refuses NumPy objects.
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(_py, np_state[2:])),
        "python": random.getstate(),
    }
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "step": int(step),
        "rng": rng,
        "extra": extra,
    }
    torch.save(checkpoint, path)
    ### END SOLUTION


def load_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None) -> dict:
    """Restore ``model``, ``optimizer`` (when given) and every RNG from ``path`` (written by
    ``save_checkpoint``), loading with ``weights_only=True``.

    Returns ``{"step": step, **extra}``: the step to resume from and whatever extra values
    were saved (such as the data position).
    """
    ### BEGIN SOLUTION
    checkpoint = torch.load(path, weights_only=True, map_location="cpu")
    model.load_state_dict(checkpoint["model"])
    if optimizer is not None and checkpoint["optimizer"] is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
    rng = checkpoint["rng"]
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    name, key, *rest = rng["numpy"]
    np.random.set_state((name, key.numpy().astype(np.uint32), *rest))
    random.setstate(_as_tuples(rng["python"]))
    return {"step": checkpoint["step"], **checkpoint["extra"]}
    ### END SOLUTION


def _py(value):
    """A NumPy scalar as the matching Python number (so weights_only loading accepts it)."""
    return value.item() if hasattr(value, "item") else value


def _as_tuples(value):
    """``random.setstate`` wants tuples all the way down."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value
