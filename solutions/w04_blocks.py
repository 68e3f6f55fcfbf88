"""Week 4 — the transformer block: attention and a feed-forward network, each wrapped in a
residual connection and a normalisation.

Conventions (shared with weeks 1–3):

* masks are boolean, ``True`` = *may attend*, broadcastable to ``(B, h, T_q, T_k)``;
* ``LayerNorm`` uses the *biased* variance (divide by d, not d − 1) and puts eps inside the
  square root: ``(x − mean) / sqrt(var + eps) · weight + bias``, eps = 1e-5;
* ``RMSNorm`` is ``x / sqrt(mean(x²) + eps) · weight`` (no mean subtraction, no bias);
* GELU is exact (erf) unless ``"gelu_tanh"`` is asked for; SwiGLU is ``w2(SiLU(w1 x) ⊙ w3 x)``;
* the FFN width ``d_ff`` defaults to 4·d_model, for every activation (SwiGLU included);
* RoPE (week 3's ``apply_rope``, interleaved pairs) rotates queries and keys after their
  projections, never values; ``positions`` default to ``0 … T−1``.

Pre-LN (``norm_first=True``, GPT-2 and most modern models)::

    x = x + Dropout(Attn(Norm1(x)))          x = Norm1(x + Dropout(Attn(x)))
    x = x + FFN(Norm2(x))                    x = Norm2(x + FFN(x))
                                             Post-LN (``norm_first=False``, the 2017 paper)

A pre-LN block has no norm at its end: the model adds one final norm after the last block.

Shapes: ``B`` batch, ``T`` tokens, ``S`` memory (encoder) tokens, ``h`` heads,
``d_head = d_model // h``, ``d_ff`` the FFN's hidden width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .w01_attention import causal_mask, scaled_dot_product_attention
from .w02_multihead import MultiHeadAttention, merge_heads, split_heads
from .w03_positional import apply_rope

__all__ = [
    "LayerNorm",
    "RMSNorm",
    "FeedForward",
    "SelfAttention",
    "TransformerBlock",
    "DecoderBlock",
    "block_param_count",
    "make_norm",
]

NORMS = ("layernorm", "rmsnorm")
ACTIVATIONS = ("gelu", "gelu_tanh", "relu", "swiglu")


# --------------------------------------------------------------------------- normalisation
class LayerNorm(nn.Module):
    """Layer normalisation over the last axis (Ba et al., 2016).

    y = (x − mean(x)) / sqrt(var(x) + eps) · weight + bias, with mean and the *biased* variance
    taken over the last axis (d features) of each token separately.
    Parameters: ``weight`` (d,) initialised to ones, ``bias`` (d,) zeros (``None`` when
    ``bias=False``). x: (..., d) -> (..., d). Build it from tensor operations: no
    ``F.layer_norm`` / ``nn.LayerNorm``.
    """

    def __init__(self, d: int, eps: float = 1e-5, bias: bool = True):
        super().__init__()
        self.eps = eps
        ### BEGIN SOLUTION
        self.weight = nn.Parameter(torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d)) if bias else None
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        mean = x.mean(dim=-1, keepdim=True)  # (..., 1): one mean per token
        # Biased variance (divide by d): the statistics of *these* d numbers, not an estimate.
        var = (x - mean).pow(2).mean(dim=-1, keepdim=True)  # (..., 1)
        x_hat = (x - mean) / torch.sqrt(var + self.eps)  # eps inside: finite even when var = 0
        y = x_hat * self.weight
        return y + self.bias if self.bias is not None else y
        ### END SOLUTION


class RMSNorm(nn.Module):
    """Root-mean-square normalisation (Zhang & Sennrich, 2019), as in Llama.

    y = x / sqrt(mean(x²) + eps) · weight over the last axis: no mean subtraction, no bias.
    Parameter: ``weight`` (d,) initialised to ones. x: (..., d) -> (..., d).
    No ``F.rms_norm`` / ``nn.RMSNorm``: build it.
    """

    def __init__(self, d: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        ### BEGIN SOLUTION
        self.weight = nn.Parameter(torch.ones(d))
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        rms = torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)  # (..., 1)
        return x / rms * self.weight
        ### END SOLUTION


def make_norm(norm: str, d: int, bias: bool = True) -> nn.Module:
    """``"layernorm"`` -> LayerNorm(d), ``"rmsnorm"`` -> RMSNorm(d) (provided)."""
    if norm == "layernorm":
        return LayerNorm(d, bias=bias)
    if norm == "rmsnorm":
        return RMSNorm(d)
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


# --------------------------------------------------------------------------- feed-forward
class FeedForward(nn.Module):
    """The position-wise feed-forward network: the same two-layer MLP applied to every token.

    Submodules (nn.Linear, with biases when ``bias``):
      ``w1``: d_model -> d_ff, ``w2``: d_ff -> d_model, and for ``"swiglu"`` only
      ``w3``: d_model -> d_ff.
    activation "gelu" (exact, erf), "gelu_tanh", "relu": ``w2(act(w1 x))``;
    "swiglu": ``w2(SiLU(w1 x) ⊙ w3 x)`` (w1 is the gate, w3 the value).
    ``d_ff`` defaults to 4·d_model. ``dropout`` is applied to the output (training mode only).
    x: (..., d_model) -> (..., d_model).
    """

    def __init__(
        self,
        d_model: int,
        d_ff: int | None = None,
        activation: str = "gelu",
        bias: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.activation = activation
        ### BEGIN SOLUTION
        d_ff = 4 * d_model if d_ff is None else d_ff
        self.d_ff = d_ff
        self.w1 = nn.Linear(d_model, d_ff, bias=bias)
        if activation == "swiglu":
            self.w3 = nn.Linear(d_model, d_ff, bias=bias)  # the gated "value" branch
        self.w2 = nn.Linear(d_ff, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        h = self.w1(x)  # (..., d_ff): the FFN works in a 4x wider space
        if self.activation == "gelu":
            h = F.gelu(h)  # exact: x·Φ(x) with the erf-based normal CDF
        elif self.activation == "gelu_tanh":
            h = F.gelu(h, approximate="tanh")
        elif self.activation == "relu":
            h = F.relu(h)
        else:  # swiglu: a learned, per-channel gate on a second projection
            h = F.silu(h) * self.w3(x)
        return self.dropout(self.w2(h))  # (..., d_model)
        ### END SOLUTION


# --------------------------------------------------------------------------- attention
class SelfAttention(MultiHeadAttention):
    """Week 2's multi-head self-attention with two options a block needs: a causal mask and
    rotary position embeddings (RoPE) on queries and keys.

    Same submodules and state dict as ``MultiHeadAttention`` (``q_proj``, ``k_proj``,
    ``v_proj``, ``out_proj``); dropout on the attention weights in training mode.
    forward(x (B, T, d_model), mask or None, positions (T,) or None) -> (B, T, d_model).
    With ``causal`` the causal mask is combined (``&``) with ``mask``. With ``rope`` queries
    and keys are rotated by ``apply_rope(·, positions)`` after splitting heads; ``positions``
    default to ``arange(T)``.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        causal: bool = False,
        rope: bool = False,
        bias: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__(d_model, n_heads, bias=bias, dropout=dropout)
        self.causal, self.rope = causal, rope

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        ### BEGIN SOLUTION
        T = x.size(-2)
        if self.causal:
            causal = causal_mask(T, device=x.device)  # (T, T)
            mask = causal if mask is None else mask & causal
        q = split_heads(self.q_proj(x), self.n_heads)  # (B, h, T, d_head)
        k = split_heads(self.k_proj(x), self.n_heads)  # (B, h, T, d_head)
        v = split_heads(self.v_proj(x), self.n_heads)  # (B, h, T, d_head)
        if self.rope:
            # Rotate after the projections: q_m·k_n then depends on m − n only. Never v.
            positions = torch.arange(T, device=x.device) if positions is None else positions
            q, k = apply_rope(q, positions), apply_rope(k, positions)
        out, weights = scaled_dot_product_attention(q, k, v, mask)  # (B, h, T, d_head)
        if self.training and self.attn_dropout.p > 0:
            out = self.attn_dropout(weights) @ v
        return self.out_proj(merge_heads(out))  # (B, T, d_model)
        ### END SOLUTION


# --------------------------------------------------------------------------- blocks
class TransformerBlock(nn.Module):
    """One transformer block: self-attention then FFN, each with a residual and a norm.

    Submodules: ``norm1`` (before/after attention), ``attn`` (a ``SelfAttention``: q_proj,
    k_proj, v_proj, out_proj), ``norm2`` (before/after the FFN), ``ffn`` (a ``FeedForward``:
    w1, w2, and w3 for SwiGLU), ``dropout`` (on the attention sublayer's output; the FFN
    drops its own output). Norms are ``LayerNorm`` or ``RMSNorm`` (``norm``).

    norm_first=True (pre-LN):  x = x + drop(attn(norm1(x))); x = x + ffn(norm2(x))
    norm_first=False (post-LN): x = norm1(x + drop(attn(x))); x = norm2(x + ffn(x))

    forward(x (B, T, d_model), mask=None, positions=None) -> (B, T, d_model).
    ``mask``: bool, True = may attend, broadcastable to (B, h, T, T); ``causal=True`` adds
    the causal mask. ``positions``: (T,) token positions for RoPE (default 0 … T−1; ignored
    without ``rope``). ``bias=False`` drops every bias (linears and LayerNorm).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int | None = None,
        norm_first: bool = True,
        norm: str = "layernorm",
        activation: str = "gelu",
        causal: bool = False,
        rope: bool = False,
        dropout: float = 0.0,
        bias: bool = True,
    ):
        super().__init__()
        self.norm_first, self.causal, self.rope = norm_first, causal, rope
        ### BEGIN SOLUTION
        self.norm1 = make_norm(norm, d_model, bias)
        self.attn = SelfAttention(d_model, n_heads, causal=causal, rope=rope, bias=bias, dropout=dropout)
        self.norm2 = make_norm(norm, d_model, bias)
        self.ffn = FeedForward(d_model, d_ff, activation, bias=bias, dropout=dropout)
        self.dropout = nn.Dropout(dropout)
        ### END SOLUTION

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        ### BEGIN SOLUTION
        if self.norm_first:
            # The residual stream x is never normalised: each sublayer reads a normalised copy
            # and *adds* its result, so gradients reach early layers through the identity path.
            x = x + self.dropout(self.attn(self.norm1(x), mask, positions))  # (B, T, d_model)
            x = x + self.ffn(self.norm2(x))
        else:
            # Post-LN: normalise the sum, after each residual addition.
            x = self.norm1(x + self.dropout(self.attn(x, mask, positions)))
            x = self.norm2(x + self.ffn(x))
        return x
        ### END SOLUTION


class DecoderBlock(nn.Module):
    """The decoder block of an encoder–decoder transformer: three sublayers, pre-LN.

    Submodules: ``norm1``, ``self_attn`` (a causal ``SelfAttention``), ``norm2``, ``cross_attn``
    (a ``MultiHeadAttention``: queries from the decoder, keys and values from ``memory``),
    ``norm3``, ``ffn`` (``FeedForward``), ``dropout`` (on both attention outputs)::

        x = x + drop(self_attn(norm1(x), self_mask))          # causal: no peeking ahead
        x = x + drop(cross_attn(norm2(x), memory, memory_mask))  # read the source sentence
        x = x + ffn(norm3(x))

    ``memory`` is used as it is (the encoder's final norm has already normalised it).
    forward(x (B, T, d_model), memory (B, S, d_model), self_mask broadcastable to (B, h, T, T),
    memory_mask broadcastable to (B, h, T, S), e.g. a (B, 1, 1, S) padding mask) -> (B, T, d_model).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int | None = None,
        norm: str = "layernorm",
        activation: str = "gelu",
        dropout: float = 0.0,
        bias: bool = True,
    ):
        super().__init__()
        ### BEGIN SOLUTION
        self.norm1 = make_norm(norm, d_model, bias)
        self.self_attn = SelfAttention(d_model, n_heads, causal=True, bias=bias, dropout=dropout)
        self.norm2 = make_norm(norm, d_model, bias)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, bias=bias, dropout=dropout)
        self.norm3 = make_norm(norm, d_model, bias)
        self.ffn = FeedForward(d_model, d_ff, activation, bias=bias, dropout=dropout)
        self.dropout = nn.Dropout(dropout)
        ### END SOLUTION

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        self_mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        ### BEGIN SOLUTION
        x = x + self.dropout(self.self_attn(self.norm1(x), self_mask))  # (B, T, d_model)
        # Queries from the decoder's (normalised) stream, keys and values from the encoder.
        x = x + self.dropout(self.cross_attn(self.norm2(x), context=memory, mask=memory_mask))
        x = x + self.ffn(self.norm3(x))
        return x
        ### END SOLUTION


def block_param_count(
    d_model: int,
    d_ff: int | None = None,
    norm: str = "layernorm",
    activation: str = "gelu",
    bias: bool = True,
    cross_attention: bool = False,
) -> int:
    """Exact number of parameters of a block, from its dimensions alone.

    ``TransformerBlock(d_model, n_heads, d_ff, norm=norm, activation=activation, bias=bias)``
    by default; ``cross_attention=True`` counts a ``DecoderBlock`` instead (a second attention
    and a third norm). Arguments mean what they mean in the constructors: d_ff defaults to
    4·d_model; norm "layernorm" (weight and bias, or weight only when bias=False) or "rmsnorm"
    (weight); activation "gelu" / "gelu_tanh" / "relu" (two linears) or "swiglu" (three);
    bias: every linear and LayerNorm has a bias. n_heads is not an argument: heads split
    d_model, they add no parameters. Example: GPT-2 small's block (768, gelu, layernorm, bias)
    has 7,087,872.
    """
    ### BEGIN SOLUTION
    d_ff = 4 * d_model if d_ff is None else d_ff
    attention = 4 * d_model * d_model + (4 * d_model if bias else 0)  # q, k, v, out
    n_in = 2 if activation == "swiglu" else 1  # w1 (and w3) map d_model -> d_ff
    ffn = (n_in + 1) * d_model * d_ff + ((n_in * d_ff + d_model) if bias else 0)
    one_norm = 2 * d_model if (norm == "layernorm" and bias) else d_model
    n_attn, n_norms = (2, 3) if cross_attention else (1, 2)
    return n_attn * attention + ffn + n_norms * one_norm
    ### END SOLUTION
