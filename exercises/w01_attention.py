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
    raise NotImplementedError("w01: implement softmax; see course/w01_attention/notes.md")


def causal_mask(T_q: int, T_k: int | None = None, device=None) -> torch.Tensor:
    """Boolean (T_q, T_k) mask, True where query i may attend to key j.

    Bottom-right aligned: query i is at absolute position ``T_k - T_q + i`` and may see
    keys ``j <= T_k - T_q + i``. ``T_k`` defaults to ``T_q`` (the usual lower triangle,
    diagonal included: a token attends to itself).
    """
    raise NotImplementedError("w01: implement causal_mask; see course/w01_attention/notes.md")


def padding_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """Boolean (B, T) mask, True at real tokens: row b is True for positions < lengths[b].

    Broadcast it as ``mask[:, None, :]`` (B, 1, T_k) to hide padded *keys* from every query.
    """
    raise NotImplementedError("w01: implement padding_mask; see course/w01_attention/notes.md")


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
    raise NotImplementedError("w01: implement scaled_dot_product_attention; see course/w01_attention/notes.md")


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
        raise NotImplementedError("w01: implement AdditiveAttention.__init__; see course/w01_attention/notes.md")

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError("w01: implement AdditiveAttention.forward; see course/w01_attention/notes.md")


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
        raise NotImplementedError("w01: implement SelfAttentionHead.__init__; see course/w01_attention/notes.md")

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError("w01: implement SelfAttentionHead.forward; see course/w01_attention/notes.md")


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
    raise NotImplementedError("w01: implement rnn_cell; see course/w01_attention/notes.md")


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
        raise NotImplementedError("w01: implement RNNEncoder.__init__; see course/w01_attention/notes.md")

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError("w01: implement RNNEncoder.forward; see course/w01_attention/notes.md")


def attention_lookup(
    query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Retrieval of one query over T key-value pairs: softmax(q Kᵀ / √d_k) V.

    query: (..., d_k)   keys: (..., T, d_k)   values: (..., T, d_v)
    Returns the retrieved value (..., d_v) and the weights (..., T), which sum to 1 over the T
    keys. It is scaled_dot_product_attention with a single query (T_q = 1), axis dropped.
    """
    raise NotImplementedError("w01: implement attention_lookup; see course/w01_attention/notes.md")
