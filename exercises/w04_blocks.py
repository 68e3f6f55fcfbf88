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
        raise NotImplementedError("w04: implement LayerNorm.__init__; see course/w04_blocks/notes.md")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("w04: implement LayerNorm.forward; see course/w04_blocks/notes.md")


class RMSNorm(nn.Module):
    """Root-mean-square normalisation (Zhang & Sennrich, 2019), as in Llama.

    y = x / sqrt(mean(x²) + eps) · weight over the last axis: no mean subtraction, no bias.
    Parameter: ``weight`` (d,) initialised to ones. x: (..., d) -> (..., d).
    No ``F.rms_norm`` / ``nn.RMSNorm``: build it.
    """

    def __init__(self, d: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        raise NotImplementedError("w04: implement RMSNorm.__init__; see course/w04_blocks/notes.md")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("w04: implement RMSNorm.forward; see course/w04_blocks/notes.md")


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
        raise NotImplementedError("w04: implement FeedForward.__init__; see course/w04_blocks/notes.md")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("w04: implement FeedForward.forward; see course/w04_blocks/notes.md")


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
        raise NotImplementedError("w04: implement SelfAttention.forward; see course/w04_blocks/notes.md")


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
        raise NotImplementedError("w04: implement TransformerBlock.__init__; see course/w04_blocks/notes.md")

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        raise NotImplementedError("w04: implement TransformerBlock.forward; see course/w04_blocks/notes.md")


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
        raise NotImplementedError("w04: implement DecoderBlock.__init__; see course/w04_blocks/notes.md")

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        self_mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        raise NotImplementedError("w04: implement DecoderBlock.forward; see course/w04_blocks/notes.md")


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
    raise NotImplementedError("w04: implement block_param_count; see course/w04_blocks/notes.md")
