"""Mini-GPT: a decoder-only transformer language model in one readable file.

    tokens (B, T) -> token embedding (+ learned positions, unless RoPE) -> N × Block -> LayerNorm -> logits (B, T, V)
    Block: x + Attention(LN(x)), then x + MLP(LN(x))      (pre-LN: the residual stream is never normalised)

Choices, and why:

* **Pre-LN** blocks train stably without a warm-up-sensitive post-norm; a final LayerNorm
  normalises the stream once before the head.
* **Weight tying** (``tie_weights=True``, the default): the output head reuses the token
  embedding matrix (``lm_head.weight is tok_emb.weight``): one matrix to learn instead of two,
  and better small-data results. ``tie_weights=False`` gives the head a matrix of its own
  (``V·d`` more parameters), for the experiment.
* **Fused attention**: training calls ``F.scaled_dot_product_attention(is_causal=True)``
  (flash / memory-efficient kernels where available); the explicit softmax path, the same
  function written out, runs only when attention weights are asked for (attention maps).
* **RoPE** (``rope=True``) rotates queries and keys by position instead of adding a position
  table: interleaved pairs ``(x[2i], x[2i+1])``, angle ``p · base^(-2i/d_head)``, position 0
  the identity (the course convention, see course/CONVENTIONS.md).
* GPT-2 initialisation: weights ~ N(0, 0.02), the two projections that write into the
  residual stream scaled down by ``1/√(2·n_layers)`` so the stream's variance does not grow
  with depth.

State-dict keys (``L`` = n_layers, ``d`` = d_model, ``V`` = vocab_size; biases only with ``bias=True``):

    tok_emb.weight (V, d)            pos_emb.weight (block_size, d)   [absent with rope=True]
    blocks.{i}.ln1.weight (d,)       blocks.{i}.attn.qkv.weight (3d, d)   rows: q, then k, then v
    blocks.{i}.attn.proj.weight (d, d)
    blocks.{i}.ln2.weight (d,)       blocks.{i}.mlp.fc.weight (4d, d)   blocks.{i}.mlp.proj.weight (d, 4d)
    ln_f.weight (d,)                 lm_head.weight (V, d)  [the same tensor as tok_emb.weight,
                                                             unless tie_weights=False]

Heads split ``d`` into ``n_heads`` contiguous slices of ``d_head = d / n_heads``; LayerNorm
has eps 1e-5; the MLP uses exact (erf) GELU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class GPTConfig:
    vocab_size: int = 65
    block_size: int = 256  # the longest context the model sees
    n_layers: int = 6
    n_heads: int = 6
    d_model: int = 384
    dropout: float = 0.0
    bias: bool = False  # biases in Linear and LayerNorm layers
    rope: bool = False  # rotary position embeddings instead of a learned position table
    rope_base: float = 10000.0
    tie_weights: bool = True  # the output head shares the token embedding's matrix


# --------------------------------------------------------------------------- rotary positions
def rope_angles(T: int, d_head: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotation angles ``p · base^(-2i/d_head)``, each (T, d_head // 2)."""
    raise NotImplementedError("w09: implement rope_angles; see course/w09_capstone/notes.md")


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each interleaved pair ``(x[..., 2i], x[..., 2i+1])`` of x (..., T, d_head) by
    its angle; cos, sin (T, d_head // 2) from `rope_angles`. Returns the same shape."""
    raise NotImplementedError("w09: implement apply_rope; see course/w09_capstone/notes.md")


# --------------------------------------------------------------------------- the blocks
class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with one fused q/k/v projection."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        if config.d_model % config.n_heads:
            raise ValueError(f"d_model={config.d_model} is not divisible by n_heads={config.n_heads}")
        self.n_heads = config.n_heads
        self.d_head = config.d_model // config.n_heads
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=config.bias)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=config.bias)
        self.resid_drop = nn.Dropout(config.dropout)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        return_weights: bool = False,
    ):
        """x (B, T, d) -> (B, T, d); with ``return_weights`` also the attention weights
        (B, n_heads, T, T), computed by the explicit path."""
        raise NotImplementedError("w09: implement CausalSelfAttention.forward; see course/w09_capstone/notes.md")


class MLP(nn.Module):
    """Position-wise feed-forward: d -> 4d -> GELU -> d."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(config.d_model, 4 * config.d_model, bias=config.bias)
        self.proj = nn.Linear(4 * config.d_model, config.d_model, bias=config.bias)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, d) -> (B, T, d)."""
        raise NotImplementedError("w09: implement MLP.forward; see course/w09_capstone/notes.md")


class Block(nn.Module):
    """Pre-LN transformer block: attention, then MLP, each added to the residual stream."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.d_model, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, rope=None, return_weights: bool = False):
        """x (B, T, d) -> (B, T, d) (and the attention weights with ``return_weights``)."""
        raise NotImplementedError("w09: implement Block.forward; see course/w09_capstone/notes.md")


# --------------------------------------------------------------------------- the model
class MiniGPT(nn.Module):
    """A decoder-only language model. ``forward(idx, targets=None) -> (logits, loss)``.

    With ``config.tie_weights`` (the default) ``lm_head.weight`` *is* ``tok_emb.weight`` (one
    Parameter, two uses); with ``tie_weights=False`` the head keeps its own (V, d) matrix.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = None if config.rope else nn.Embedding(config.block_size, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model, bias=config.bias)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        raise NotImplementedError("w09: implement MiniGPT.__init__; see course/w09_capstone/notes.md")
        if config.rope:
            cos, sin = rope_angles(config.block_size, config.d_model // config.n_heads, config.rope_base)
            # Not parameters and not saved: recomputed from the config.
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("attn.proj.weight") or name.endswith("mlp.proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self) -> int:
        """Trainable parameters, each counted once: a tied head is the embedding's matrix and adds
        nothing; an untied one (``tie_weights=False``) adds its own ``V·d``."""
        return sum(p.numel() for p in self.parameters())

    def _rope(self, T: int):
        return (self.rope_cos[:T], self.rope_sin[:T]) if self.config.rope else None

    def _embed(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence of length {T} is longer than block_size={self.config.block_size}")
        x = self.tok_emb(idx)  # (B, T, d)
        if self.pos_emb is not None:
            x = x + self.pos_emb(torch.arange(T, device=idx.device))  # (T, d) broadcast over B
        return self.drop(x)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx (B, T) int64, T <= block_size -> logits (B, T, V) and, when targets (B, T) are
        given, the mean cross-entropy (nats per token) of predicting ``targets``; else None."""
        raise NotImplementedError("w09: implement MiniGPT.forward; see course/w09_capstone/notes.md")

    @torch.no_grad()
    def attention_maps(self, idx: torch.Tensor) -> list[torch.Tensor]:
        """The attention weights of every layer for idx (B, T): a list of n_layers tensors
        (B, n_heads, T, T); row ``t`` of a map is how much position ``t`` reads each earlier one."""
        maps = []
        x = self._embed(idx)
        rope = self._rope(idx.size(1))
        for block in self.blocks:
            x, weights = block(x, rope, return_weights=True)
            maps.append(weights)
        return maps
