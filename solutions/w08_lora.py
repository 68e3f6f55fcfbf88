"""Week 8 — LoRA: fine-tune a frozen model through low-rank updates of a few linear layers.

A LoRA layer keeps the pretrained ``W`` (d_out × d_in) frozen and learns ``ΔW = s · B A``
with ``A`` (r × d_in), ``B`` (d_out × r) and r ≪ min(d_in, d_out):

    y = x Wᵀ + b + s · dropout(x) Aᵀ Bᵀ

Conventions (course/w08_lora/notes.md explains them):

* ``A`` is initialised Kaiming-uniform with ``a = √5`` (as ``nn.Linear`` initialises its
  weight), ``B`` with zeros, so a freshly wrapped layer computes exactly what the base did;
* the scaling is ``s = alpha / r``, or ``alpha / √r`` with rank-stabilised LoRA (rsLoRA);
* dropout applies to the input of the LoRA branch only; the frozen path never sees it;
* ``merge()`` folds ``s · B A`` into the base weight (no extra cost at inference), and
  ``unmerge()`` takes it out again.

Shapes: ``x`` (..., d_in) → (..., d_out).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


class LoRALinear(nn.Module):
    """Wraps ``base`` (an ``nn.Linear``) with a trainable low-rank update.

    Submodules and parameters (these names are the contract; ``lora_state_dict`` and the
    tests rely on them):

    * ``base``: the wrapped ``nn.Linear``; its ``weight`` (d_out, d_in) and ``bias`` (d_out,)
      are frozen (``requires_grad=False``);
    * ``lora_A``: ``nn.Parameter`` of shape (r, d_in), Kaiming-uniform (a=√5);
    * ``lora_B``: ``nn.Parameter`` of shape (d_out, r), zeros;
    * ``lora_dropout``: ``nn.Dropout(dropout)`` applied to the LoRA branch's input.

    Attributes ``r``, ``alpha``, ``scaling`` (alpha/r, or alpha/√r when ``rslora``) and
    ``merged`` (True while ``s · B A`` is folded into ``base.weight``).
    forward(x (..., d_in)) -> (..., d_out).
    """

    def __init__(
        self, base: nn.Linear, r: int = 8, alpha: float = 8, dropout: float = 0.0, rslora: bool = False
    ):
        super().__init__()
        if r <= 0:
            raise ValueError(f"LoRA rank must be positive, got r={r}")
        self.r, self.alpha = r, alpha
        self.merged = False
        ### BEGIN SOLUTION
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)  # the pretrained weights stay as they are
        d_out, d_in = base.weight.shape
        # rsLoRA: alpha/√r keeps the update's size steady as r grows; alpha/r shrinks it.
        self.scaling = alpha / math.sqrt(r) if rslora else alpha / r
        factory = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_A = nn.Parameter(torch.empty(r, d_in, **factory))  # (r, d_in)
        self.lora_B = nn.Parameter(torch.zeros(d_out, r, **factory))  # (d_out, r): ΔW = 0 at the start
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_dropout = nn.Dropout(dropout)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        out = self.base(x)  # (..., d_out), frozen path
        if self.merged:
            return out  # ΔW is already inside base.weight
        update = self.lora_dropout(x) @ self.lora_A.T @ self.lora_B.T  # (..., r) -> (..., d_out)
        return out + self.scaling * update
        ### END SOLUTION

    def delta_weight(self) -> torch.Tensor:
        """``scaling · B @ A``: the (d_out, d_in) update this layer adds to ``base.weight``."""
        ### BEGIN SOLUTION
        return self.scaling * (self.lora_B @ self.lora_A)
        ### END SOLUTION

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into ``base.weight``; calling it again does nothing."""
        ### BEGIN SOLUTION
        if not self.merged:
            self.base.weight += self.delta_weight()
            self.merged = True
        ### END SOLUTION

    @torch.no_grad()
    def unmerge(self) -> None:
        """Take the update back out of ``base.weight``; a no-op when not merged."""
        ### BEGIN SOLUTION
        if self.merged:
            self.base.weight -= self.delta_weight()
            self.merged = False
        ### END SOLUTION

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, merged={self.merged}"


def apply_lora(
    model: nn.Module,
    target_modules: Iterable[str] = ("q_proj", "v_proj"),
    r: int = 8,
    alpha: float = 8,
    dropout: float = 0.0,
) -> nn.Module:
    """Freeze every parameter of ``model``, then replace each ``nn.Linear`` whose attribute
    name (the last part of its dotted name, e.g. ``q_proj`` in ``blocks.0.attn.q_proj``) is in
    ``target_modules`` with ``LoRALinear(linear, r, alpha, dropout)``. Only the new ``lora_A``
    and ``lora_B`` parameters are trainable afterwards. Works in place and returns ``model``.
    Raises ``ValueError`` when no module matches (a typo in a name would otherwise train nothing).
    """
    ### BEGIN SOLUTION
    targets = set(target_modules)
    for p in model.parameters():
        p.requires_grad_(False)
    # Collect first: replacing modules while iterating named_modules() would revisit them.
    found = [
        (name, module)
        for name, module in model.named_modules()
        if name.rsplit(".", 1)[-1] in targets and isinstance(module, nn.Linear)
    ]
    if not found:
        raise ValueError(f"no nn.Linear named any of {sorted(targets)} in {type(model).__name__}")
    for name, linear in found:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, LoRALinear(linear, r=r, alpha=alpha, dropout=dropout))
    return model
    ### END SOLUTION


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements in ``model`` (each shared tensor counted once); with
    ``trainable_only`` only those with ``requires_grad``. A LoRA layer adds ``r·(d_in + d_out)``."""
    ### BEGIN SOLUTION
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
    ### END SOLUTION


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA tensors of ``model`` only: ``{"<path>.lora_A": (r, d_in), "<path>.lora_B":
    (d_out, r), …}`` with the same keys as in ``model.state_dict()``. This is what an adapter
    checkpoint stores; load it back with ``model.load_state_dict(sd, strict=False)``."""
    ### BEGIN SOLUTION
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, LoRALinear):
            prefix = f"{name}." if name else ""
            out[prefix + "lora_A"] = module.lora_A.detach().clone()
            out[prefix + "lora_B"] = module.lora_B.detach().clone()
    return out
    ### END SOLUTION
