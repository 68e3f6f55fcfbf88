"""Week 3 — positional information: attention alone cannot tell token order apart.

Four ways to give it back, each one function or module:

* ``sinusoidal_encoding``: fixed vectors added to the embeddings (Vaswani et al., 2017), interleaved
  ``PE[p, 2i] = sin(p·ω_i)``, ``PE[p, 2i+1] = cos(p·ω_i)``, ``ω_i = base^(-2i/d)``;
* ``LearnedPositionalEmbedding``: one trained vector per position (GPT-2);
* RoPE (Su et al., 2021): ``rope_angles`` / ``apply_rope`` rotate each *interleaved* pair
  ``(x[2i], x[2i+1])`` of a query or key by the angle ``p·θ_i``, ``θ_i = base^(-2i/d_head)``, i from 0;
  position 0 is the identity. Applied to queries and keys, never to values.
* ALiBi (Press et al., 2022): ``alibi_slopes`` / ``alibi_bias``, a per-head linear penalty on distance
  added to the attention scores.

Positions are absolute token indices; pass ``torch.arange(T) + offset`` when decoding with a KV cache.
"""

from __future__ import annotations

import torch
from torch import nn


def sinusoidal_encoding(T: int, d_model: int, base: float = 10000.0) -> torch.Tensor:
    """(T, d_model) float32 table: row p is the encoding of position p (0 … T-1), interleaved.

    ``PE[p, 2i] = sin(p / base^(2i/d))`` and ``PE[p, 2i+1] = cos(p / base^(2i/d))``.
    At d_model=4, p=1: [0.8414709848, 0.5403023059, 0.0099998333, 0.9999500004].
    """
    raise NotImplementedError("w03: implement sinusoidal_encoding; see course/w03_positional/notes.md")


class LearnedPositionalEmbedding(nn.Module):
    """One trained vector per position, as in GPT-2 and BERT.

    Parameter ``weight`` (max_len, d_model), initialised from N(0, 0.02²) (GPT-2's init).
    forward(positions: integer tensor of any shape (...)) -> (..., d_model), row ``weight[p]``
    for each position p. A position >= max_len raises an IndexError: learned tables cannot
    extrapolate past the longest context they were trained on.
    """

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.max_len, self.d_model = max_len, d_model
        raise NotImplementedError("w03: implement LearnedPositionalEmbedding.__init__; see course/w03_positional/notes.md")

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("w03: implement LearnedPositionalEmbedding.forward; see course/w03_positional/notes.md")


def rope_angles(
    d_head: int, positions: torch.Tensor, base: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the RoPE angles ``p·θ_i``, ``θ_i = base^(-2i/d_head)`` for i = 0 … d_head/2 − 1.

    positions: (..., T) integer or float positions. Returns cos, sin, each (..., T, d_head // 2)
    float32: entry [..., t, i] belongs to pair i = channels (2i, 2i+1) at position positions[..., t].
    """
    raise NotImplementedError("w03: implement rope_angles; see course/w03_positional/notes.md")


def apply_rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate each interleaved pair (x[..., 2i], x[..., 2i+1]) by the angle p·θ_i.

    x: (..., T, d_head), e.g. (B, h, T, d_head) queries or keys. positions: (T,) or any shape
    broadcastable to x's (..., T). Returns x's shape and dtype. Position 0 is the identity;
    at d_head=4, x=[1, 2, 3, 4], p=1: [-1.1426396637, 1.9220755965, 2.9598506679, 4.0297995017].
    """
    raise NotImplementedError("w03: implement apply_rope; see course/w03_positional/notes.md")


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """(n_heads,) float32 slopes m_h = 2^(-8h/n) for h = 1 … n: the paper's geometric sequence
    that starts at 2^(-8/n) and uses the same ratio (8 heads: 1/2, 1/4, …, 1/256), for any n."""
    raise NotImplementedError("w03: implement alibi_slopes; see course/w03_positional/notes.md")


def alibi_bias(n_heads: int, T_q: int, T_k: int) -> torch.Tensor:
    """(n_heads, T_q, T_k) float32 bias added to the attention scores: ``-m_h · (i - j)``.

    Query i sits at absolute position ``T_k - T_q + i`` (bottom-right aligned, like
    ``causal_mask``), so a cached query at the end sees the right distances. For keys in the
    future (j > i) the bias is 0: ALiBi is used with a causal mask, which hides those keys.
    """
    raise NotImplementedError("w03: implement alibi_bias; see course/w03_positional/notes.md")
