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
    ### BEGIN SOLUTION
    position = torch.arange(T, dtype=torch.float32).unsqueeze(1)  # (T, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float32)  # (ceil(d/2),) = 0, 2, 4, …
    angles = position * base ** (-two_i / d_model)  # (T, ceil(d/2)): wavelengths 2π … 2π·base^((d-2)/d)
    pe = torch.zeros(T, d_model)
    pe[:, 0::2] = torch.sin(angles)  # even channels
    pe[:, 1::2] = torch.cos(angles[:, : d_model // 2])  # odd channels (one fewer when d is odd)
    return pe
    ### END SOLUTION


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
        ### BEGIN SOLUTION
        self.weight = nn.Parameter(torch.empty(max_len, d_model))
        nn.init.normal_(self.weight, mean=0.0, std=0.02)
        ### END SOLUTION

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        if positions.numel() and int(positions.max()) >= self.max_len:
            raise IndexError(f"position {int(positions.max())} >= max_len={self.max_len}")
        return self.weight[positions]  # (..., d_model)
        ### END SOLUTION


def rope_angles(
    d_head: int, positions: torch.Tensor, base: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the RoPE angles ``p·θ_i``, ``θ_i = base^(-2i/d_head)`` for i = 0 … d_head/2 − 1.

    positions: (..., T) integer or float positions. Returns cos, sin, each (..., T, d_head // 2)
    float32: entry [..., t, i] belongs to pair i = channels (2i, 2i+1) at position positions[..., t].
    """
    ### BEGIN SOLUTION
    if d_head % 2:
        raise ValueError(f"RoPE rotates pairs of channels: d_head={d_head} must be even")
    theta = base ** (-torch.arange(0, d_head, 2, dtype=torch.float32) / d_head)  # (d_head/2,)
    angles = positions.to(torch.float32).unsqueeze(-1) * theta  # (..., T, d_head/2)
    return torch.cos(angles), torch.sin(angles)
    ### END SOLUTION


def apply_rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate each interleaved pair (x[..., 2i], x[..., 2i+1]) by the angle p·θ_i.

    x: (..., T, d_head), e.g. (B, h, T, d_head) queries or keys. positions: (T,) or any shape
    broadcastable to x's (..., T). Returns x's shape and dtype. Position 0 is the identity;
    at d_head=4, x=[1, 2, 3, 4], p=1: [-1.1426396637, 1.9220755965, 2.9598506679, 4.0297995017].
    """
    ### BEGIN SOLUTION
    cos, sin = rope_angles(x.size(-1), positions, base)  # (..., T, d_head/2)
    x_even, x_odd = x[..., 0::2], x[..., 1::2]  # (..., T, d_head/2) each
    # The 2-D rotation [[cos, -sin], [sin, cos]] applied to every pair (in at least float32).
    rotated_even = x_even * cos - x_odd * sin
    rotated_odd = x_even * sin + x_odd * cos
    # Interleave back: stack to (..., T, d_head/2, 2) then flatten, so pair i lands on 2i, 2i+1.
    return torch.stack((rotated_even, rotated_odd), dim=-1).flatten(-2).to(x.dtype)
    ### END SOLUTION


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """(n_heads,) float32 slopes m_h = 2^(-8h/n) for h = 1 … n: the paper's geometric sequence
    that starts at 2^(-8/n) and uses the same ratio (8 heads: 1/2, 1/4, …, 1/256), for any n."""
    ### BEGIN SOLUTION
    h = torch.arange(1, n_heads + 1, dtype=torch.float32)
    return 2.0 ** (-8.0 * h / n_heads)
    ### END SOLUTION


def alibi_bias(n_heads: int, T_q: int, T_k: int) -> torch.Tensor:
    """(n_heads, T_q, T_k) float32 bias added to the attention scores: ``-m_h · (i - j)``.

    Query i sits at absolute position ``T_k - T_q + i`` (bottom-right aligned, like
    ``causal_mask``), so a cached query at the end sees the right distances. For keys in the
    future (j > i) the bias is 0: ALiBi is used with a causal mask, which hides those keys.
    """
    ### BEGIN SOLUTION
    query_pos = torch.arange(T_q).unsqueeze(1) + (T_k - T_q)  # (T_q, 1)
    key_pos = torch.arange(T_k).unsqueeze(0)  # (1, T_k)
    offset = (key_pos - query_pos).clamp(max=0).float()  # (T_q, T_k): j - i, 0 for future keys
    # Farther keys get a larger penalty; each head has its own slope (its own "reach").
    return alibi_slopes(n_heads)[:, None, None] * offset  # (n_heads, T_q, T_k)
    ### END SOLUTION
