"""Week 1 — scaled dot-product attention, built from nothing but matrix products.

Conventions (course/CONVENTIONS.md states them once for the whole course):

* masks are boolean, ``True`` = *may attend* (as ``torch.nn.functional.scaled_dot_product_attention``);
* a query whose every key is masked gets zero weights and a zero output, never NaN;
* ``causal_mask(T_q, T_k)`` is bottom-right aligned: query ``i`` sits at absolute position
  ``T_k - T_q + i``, so a single cached query attends to every key;
* softmax subtracts the row maximum first, so it is exact at inputs of ±1e4.

Shapes: ``B`` batch, ``T_q``/``T_k`` query/key lengths, ``d_k`` query/key width, ``d_v`` value width.
Attention accepts any number of leading batch dimensions (``...``).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Numerically stable softmax along ``dim``.

    x: any shape. Returns the same shape; entries along ``dim`` are non-negative and sum
    to 1. A slice that is all ``-inf`` (every key masked) returns zeros instead of NaN.
    Do not call ``torch.softmax`` / ``F.softmax``: building it is the point.
    """
    ### BEGIN SOLUTION
    x_max = x.amax(dim=dim, keepdim=True)
    # An all -inf slice has max -inf; shifting by it would give NaN (-inf - -inf).
    x_max = torch.where(torch.isfinite(x_max), x_max, torch.zeros_like(x_max))
    exp = torch.exp(x - x_max)
    total = exp.sum(dim=dim, keepdim=True)
    return exp / torch.where(total > 0, total, torch.ones_like(total))
    ### END SOLUTION


def causal_mask(T_q: int, T_k: int | None = None, device=None) -> torch.Tensor:
    """Boolean (T_q, T_k) mask, True where query i may attend to key j.

    Bottom-right aligned: query i is at absolute position ``T_k - T_q + i`` and may see
    keys ``j <= T_k - T_q + i``. ``T_k`` defaults to ``T_q`` (the usual lower triangle,
    diagonal included: a token attends to itself).
    """
    ### BEGIN SOLUTION
    T_k = T_q if T_k is None else T_k
    query_pos = torch.arange(T_q, device=device).unsqueeze(1) + (T_k - T_q)  # (T_q, 1)
    key_pos = torch.arange(T_k, device=device).unsqueeze(0)  # (1, T_k)
    return key_pos <= query_pos  # (T_q, T_k)
    ### END SOLUTION


def padding_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """Boolean (B, T) mask, True at real tokens: row b is True for positions < lengths[b].

    Broadcast it as ``mask[:, None, :]`` (B, 1, T_k) to hide padded *keys* from every query.
    """
    ### BEGIN SOLUTION
    positions = torch.arange(T, device=lengths.device)  # (T,)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    ### END SOLUTION


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q kᵀ / √d_k) v, returning the output and the attention weights.

    q: (..., T_q, d_k)   k: (..., T_k, d_k)   v: (..., T_k, d_v)
    mask: bool, broadcastable to (..., T_q, T_k); True = may attend.
    Returns out (..., T_q, d_v) and weights (..., T_q, T_k); each weights row sums to 1
    (or is all zeros when its every key is masked).
    """
    ### BEGIN SOLUTION
    d_k = q.size(-1)
    # Dot products of unit-variance vectors have variance d_k; 1/√d_k keeps softmax out of saturation.
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (..., T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = softmax(scores, dim=-1)  # normalise over keys
    return weights @ v, weights  # (..., T_q, d_v), (..., T_q, T_k)
    ### END SOLUTION


class AdditiveAttention(nn.Module):
    """Bahdanau (additive) attention: e_j = vᵀ tanh(W_q q + W_k k_j).

    Parameters: ``W_q`` = nn.Linear(d_query, d_hidden, bias=False), ``W_k`` =
    nn.Linear(d_key, d_hidden, bias=False), ``v`` = nn.Linear(d_hidden, 1, bias=False);
    in all ``d_hidden · (d_query + d_key + 1)`` parameters.

    forward(query (B, d_query), keys (B, T, d_key), mask (B, T) bool or None)
    -> context (B, d_key), weights (B, T). The keys double as values, as in the paper.
    """

    def __init__(self, d_query: int, d_key: int, d_hidden: int):
        super().__init__()
        ### BEGIN SOLUTION
        self.W_q = nn.Linear(d_query, d_hidden, bias=False)
        self.W_k = nn.Linear(d_key, d_hidden, bias=False)
        self.v = nn.Linear(d_hidden, 1, bias=False)
        ### END SOLUTION

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ### BEGIN SOLUTION
        hidden = torch.tanh(self.W_q(query).unsqueeze(1) + self.W_k(keys))  # (B, T, d_hidden)
        scores = self.v(hidden).squeeze(-1)  # (B, T)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = softmax(scores, dim=-1)  # (B, T)
        context = (weights.unsqueeze(-1) * keys).sum(dim=1)  # (B, d_key)
        return context, weights
        ### END SOLUTION


class SelfAttentionHead(nn.Module):
    """One self-attention head: q, k, v are linear maps of the same sequence.

    Submodules ``query``, ``key``, ``value``: nn.Linear(d_model, d_head, bias=False).
    forward(x (B, T, d_model), mask=None) -> out (B, T, d_head). With ``causal=True`` a
    causal mask is applied (and combined with ``mask`` if one is given). The weights of
    the last call are kept in ``self.last_weights`` (B, T, T) for plotting.
    """

    def __init__(self, d_model: int, d_head: int, causal: bool = False):
        super().__init__()
        self.causal = causal
        self.last_weights: torch.Tensor | None = None
        ### BEGIN SOLUTION
        self.query = nn.Linear(d_model, d_head, bias=False)
        self.key = nn.Linear(d_model, d_head, bias=False)
        self.value = nn.Linear(d_model, d_head, bias=False)
        ### END SOLUTION

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        ### BEGIN SOLUTION
        q, k, v = self.query(x), self.key(x), self.value(x)  # (B, T, d_head) each
        if self.causal:
            causal = causal_mask(x.size(-2), device=x.device)  # (T, T)
            mask = causal if mask is None else mask & causal
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        self.last_weights = weights.detach()
        return out  # (B, T, d_head)
        ### END SOLUTION
