"""Week 2 — multi-head attention: h attention heads side by side, one matrix product each.

Conventions (shared with week 1):

* masks are boolean, ``True`` = *may attend*; a mask must broadcast to ``(B, h, T_q, T_k)``, so
  ``(T_q, T_k)``, ``(B, 1, T_q, T_k)``, ``(B, 1, 1, T_k)`` and ``(B, h, T_q, T_k)`` all work.
  ``torch.nn.MultiheadAttention`` uses the *opposite* meaning (True = ignore): pass it ``~mask``.
* head ``h`` owns channels ``h·d_head … (h+1)·d_head − 1`` of the ``d_model`` axis, where
  ``d_head = d_model // n_heads`` (the layout of ``torch.nn.MultiheadAttention`` and nanoGPT).
* linear weights are ``nn.Linear`` layout ``(d_out, d_in)``.

Shapes: ``B`` batch, ``T`` (``T_q``/``T_k``) sequence length, ``h`` heads, ``d_head`` per-head width,
``g = n_heads // n_kv_heads`` query heads per key/value head in grouped-query attention.
"""

from __future__ import annotations

import torch
from torch import nn

from .w01_attention import causal_mask, scaled_dot_product_attention

__all__ = [
    "split_heads",
    "merge_heads",
    "MultiHeadAttention",
    "GroupedQueryAttention",
    "mha_param_count",
    "causal_mask",
]


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, T, d_model) -> (B, n_heads, T, d_head), head h taking channels h·d_head … (h+1)·d_head − 1.

    Any leading dims are kept: (..., T, d_model) -> (..., n_heads, T, d_head). Raises ValueError,
    naming both numbers, when n_heads does not divide d_model (never drops the leftover channels).
    """
    ### BEGIN SOLUTION
    *lead, T, d_model = x.shape
    if d_model % n_heads:
        raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
    # view splits the last axis into (h, d_head); the transpose brings h in front of T so that
    # every head becomes an independent batch entry for attention.
    return x.view(*lead, T, n_heads, d_model // n_heads).transpose(-3, -2)  # (..., h, T, d_head)
    ### END SOLUTION


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, n_heads, T, d_head) -> (B, T, n_heads·d_head): the inverse of ``split_heads``."""
    ### BEGIN SOLUTION
    *lead, h, T, d_head = x.shape
    # transpose back first, *then* flatten: flattening (h, T) would mix tokens across heads.
    return x.transpose(-3, -2).reshape(*lead, T, h * d_head)  # (..., T, d_model)
    ### END SOLUTION


class MultiHeadAttention(nn.Module):
    """Multi-head attention (Vaswani et al., 2017), self- or cross-attention.

    Submodules (state-dict keys ``{name}.weight`` ``(d_model, d_model)`` and ``{name}.bias``
    ``(d_model,)`` when ``bias``): ``q_proj``, ``k_proj``, ``v_proj`` and ``out_proj``; and
    ``attn_dropout``, an ``nn.Dropout(dropout)`` on the attention weights (active in training only).

    forward(x (B, T_q, d_model), context (B, T_k, d_model) or None, mask or None, return_weights)
    -> out (B, T_q, d_model), plus weights (B, h, T_q, T_k) (before dropout) when ``return_weights``.
    Queries come from ``x``; keys and values from ``context`` (cross-attention) or from ``x``.
    """

    def __init__(self, d_model: int, n_heads: int, bias: bool = True, dropout: float = 0.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        ### BEGIN SOLUTION
        # One d_model × d_model projection holds all h heads' projections side by side.
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)  # mixes what the heads found
        self.attn_dropout = nn.Dropout(dropout)
        ### END SOLUTION

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        return_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        ### BEGIN SOLUTION
        source = x if context is None else context  # keys/values: self- or cross-attention
        q = split_heads(self.q_proj(x), self.n_heads)  # (B, h, T_q, d_head)
        k = split_heads(self.k_proj(source), self.n_heads)  # (B, h, T_k, d_head)
        v = split_heads(self.v_proj(source), self.n_heads)  # (B, h, T_k, d_head)
        # Week 1's attention scales by 1/√d_head, the width of *one* head.
        out, weights = scaled_dot_product_attention(q, k, v, mask)  # (B, h, T_q, d_head)
        if self.training and self.attn_dropout.p > 0:
            out = self.attn_dropout(weights) @ v
        out = self.out_proj(merge_heads(out))  # (B, T_q, d_model)
        return (out, weights) if return_weights else out
        ### END SOLUTION


class GroupedQueryAttention(nn.Module):
    """Grouped-query attention (Ainslie et al., 2023): n_kv_heads key/value heads shared by
    n_heads query heads; query head i reads key/value head ``i // (n_heads // n_kv_heads)``.

    Submodules: ``q_proj`` nn.Linear(d_model, d_model), ``k_proj`` and ``v_proj``
    nn.Linear(d_model, n_kv_heads·d_head), ``out_proj`` nn.Linear(d_model, d_model), all with
    biases when ``bias`` (default True, as in ``MultiHeadAttention``). With n_kv_heads = n_heads
    it *is* multi-head attention (same state dict, same output); n_kv_heads = 1 is multi-query
    attention. forward is that of ``MultiHeadAttention``; weights are (B, n_heads, T_q, T_k).
    """

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int, bias: bool = True):
        super().__init__()
        if d_model % n_heads or n_heads % n_kv_heads:
            raise ValueError("need d_model % n_heads == 0 and n_heads % n_kv_heads == 0")
        self.d_model, self.n_heads, self.n_kv_heads = d_model, n_heads, n_kv_heads
        self.d_head = d_model // n_heads
        ### BEGIN SOLUTION
        d_kv = n_kv_heads * self.d_head  # the KV cache shrinks by n_heads / n_kv_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_kv, bias=bias)
        self.v_proj = nn.Linear(d_model, d_kv, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        ### END SOLUTION

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        return_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        ### BEGIN SOLUTION
        source = x if context is None else context
        q = split_heads(self.q_proj(x), self.n_heads)  # (B, h, T_q, d_head)
        k = split_heads(self.k_proj(source), self.n_kv_heads)  # (B, h_kv, T_k, d_head)
        v = split_heads(self.v_proj(source), self.n_kv_heads)  # (B, h_kv, T_k, d_head)
        # kv head j serves query heads j·g … j·g + g − 1: repeat each kv head g times in place
        # ([0, 0, 1, 1]), not the whole stack ([0, 1, 0, 1], which is what .repeat would give).
        g = self.n_heads // self.n_kv_heads
        k = k.repeat_interleave(g, dim=-3)  # (B, h, T_k, d_head)
        v = v.repeat_interleave(g, dim=-3)
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        out = self.out_proj(merge_heads(out))  # (B, T_q, d_model)
        return (out, weights) if return_weights else out
        ### END SOLUTION


def mha_param_count(d_model: int, n_heads: int, bias: bool = True) -> int:
    """Parameters of ``MultiHeadAttention(d_model, n_heads, bias)``: 4·d_model² (+ 4·d_model biases).

    The number of heads does not change it: the heads split d_model, they do not add width.
    d_model=512, n_heads=8: 1,050,624 with biases, 1,048,576 without.
    """
    ### BEGIN SOLUTION
    if d_model % n_heads:
        raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
    per_projection = d_model * d_model + (d_model if bias else 0)
    return 4 * per_projection  # q, k, v and out
    ### END SOLUTION
