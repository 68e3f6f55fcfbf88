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
    raise NotImplementedError("w02: implement split_heads; see course/w02_multihead/notes.md")


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, n_heads, T, d_head) -> (B, T, n_heads·d_head): the inverse of ``split_heads``."""
    raise NotImplementedError("w02: implement merge_heads; see course/w02_multihead/notes.md")


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
        raise NotImplementedError("w02: implement MultiHeadAttention.__init__; see course/w02_multihead/notes.md")

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        return_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError("w02: implement MultiHeadAttention.forward; see course/w02_multihead/notes.md")


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
        raise NotImplementedError("w02: implement GroupedQueryAttention.__init__; see course/w02_multihead/notes.md")

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        return_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError("w02: implement GroupedQueryAttention.forward; see course/w02_multihead/notes.md")


def mha_param_count(d_model: int, n_heads: int, bias: bool = True) -> int:
    """Parameters of ``MultiHeadAttention(d_model, n_heads, bias)``: 4·d_model² (+ 4·d_model biases).

    The number of heads does not change it: the heads split d_model, they do not add width.
    d_model=512, n_heads=8: 1,050,624 with biases, 1,048,576 without.
    """
    raise NotImplementedError("w02: implement mha_param_count; see course/w02_multihead/notes.md")
