"""Week 1 — scaled dot-product attention, built from nothing but matrix products.

Conventions (course/CONVENTIONS.md states them once for the whole course):

* masks are boolean, ``True`` = *may attend* (as ``torch.nn.functional.scaled_dot_product_attention``);
* a query whose every key is masked gets zero weights and a zero output, never NaN;
* ``causal_mask(T_q, T_k)`` is bottom-right aligned: query ``i`` sits at absolute position
  ``T_k - T_q + i``, so a single cached query attends to every key;
* softmax subtracts the row maximum first, so it is exact at inputs of ±1e4;
* the recurrent cell follows ``nn.RNN``: ``h_t = tanh(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh)``,
  weights in the ``nn.Linear`` layout ``(d_out, d_in)``.

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


# --------------------------------------------------------------------------- before attention
# A recurrent encoder squeezes a whole sequence into one fixed-size state, one step at a time;
# attention_lookup reads any of the T inputs in one step. The notebook compares the two.


def rnn_cell(
    x_t: torch.Tensor,
    h_prev: torch.Tensor,
    weight_ih: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_ih: torch.Tensor,
    bias_hh: torch.Tensor,
) -> torch.Tensor:
    """One step of a tanh recurrent network, in ``nn.RNN``'s convention:

        h_t = tanh(x_t W_ihᵀ + b_ih + h_prev W_hhᵀ + b_hh)

    x_t: (B, d_in)   h_prev: (B, d_h)   weight_ih: (d_h, d_in)   weight_hh: (d_h, d_h)
    bias_ih, bias_hh: (d_h,). Returns h_t (B, d_h). Build it from matrix products and
    ``torch.tanh``: nn.RNNCell and nn.RNN are what the tests compare it with, not what to call.
    """
    ### BEGIN SOLUTION
    return torch.tanh(x_t @ weight_ih.T + bias_ih + h_prev @ weight_hh.T + bias_hh)  # (B, d_h)
    ### END SOLUTION


class RNNEncoder(nn.Module):
    """A one-layer tanh RNN that reads a batch-first sequence and keeps every state.

    Parameters have the names and shapes of ``nn.RNN(d_in, d_hidden, batch_first=True)``, so
    that module's ``state_dict()`` loads into this one as it is: ``weight_ih_l0`` (d_h, d_in),
    ``weight_hh_l0`` (d_h, d_h), ``bias_ih_l0`` (d_h,), ``bias_hh_l0`` (d_h,); like nn.RNN they
    start uniform in [-1/√d_h, 1/√d_h].

    forward(x (B, T, d_in), h0 (B, d_h) or None) -> states (B, T, d_h), final (B, d_h).
    ``states[:, t]`` is the state after reading ``x[:, t]`` and ``final`` is the last of them:
    everything the encoder knows about the sequence, in d_h numbers whatever T is. ``h0``
    defaults to zeros; passing the ``final`` of one call as ``h0`` of the next continues the
    sequence. (nn.RNN takes and returns its states as (1, B, d_h); here they are (B, d_h).)
    """

    def __init__(self, d_in: int, d_hidden: int):
        super().__init__()
        self.input_size, self.hidden_size = d_in, d_hidden
        ### BEGIN SOLUTION
        self.weight_ih_l0 = nn.Parameter(torch.empty(d_hidden, d_in))
        self.weight_hh_l0 = nn.Parameter(torch.empty(d_hidden, d_hidden))
        self.bias_ih_l0 = nn.Parameter(torch.empty(d_hidden))
        self.bias_hh_l0 = nn.Parameter(torch.empty(d_hidden))
        bound = 1 / math.sqrt(d_hidden)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)
        ### END SOLUTION

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        ### BEGIN SOLUTION
        h = x.new_zeros(x.size(0), self.hidden_size) if h0 is None else h0  # (B, d_h)
        states = []
        for t in range(x.size(1)):  # T steps, each waiting for the one before
            h = rnn_cell(x[:, t], h, self.weight_ih_l0, self.weight_hh_l0, self.bias_ih_l0, self.bias_hh_l0)
            states.append(h)  # (B, d_h)
        return torch.stack(states, dim=1), h  # (B, T, d_h), (B, d_h)
        ### END SOLUTION


def attention_lookup(
    query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Retrieval of one query over T key-value pairs: softmax(q Kᵀ / √d_k) V.

    query: (..., d_k)   keys: (..., T, d_k)   values: (..., T, d_v)
    Returns the retrieved value (..., d_v) and the weights (..., T), which sum to 1 over the T
    keys. It is scaled_dot_product_attention with a single query (T_q = 1), axis dropped.
    """
    ### BEGIN SOLUTION
    scores = (keys @ query.unsqueeze(-1)).squeeze(-1) / math.sqrt(query.size(-1))  # (..., T)
    weights = softmax(scores, dim=-1)  # over the T keys
    return (weights.unsqueeze(-1) * values).sum(dim=-2), weights  # (..., d_v), (..., T)
    ### END SOLUTION
