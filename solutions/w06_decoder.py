"""Week 6 — decoder models (GPT-style): next-token prediction, sampling and the KV cache.

A decoder is a stack of *causal* blocks: token t attends to tokens 0 … t only, so the output
at t can be trained to predict token t + 1 from what comes before, at every position of a
sequence in one pass. Generation then runs the model again and again, appending one sampled
token each time. A KV cache keeps the keys and values of the tokens already processed, so
each new step computes attention for one new query instead of re-running the whole prefix.

Conventions (course/CONVENTIONS.md):

* ``forward(idx, targets)``: ``targets[b, t]`` is the token that *follows* ``idx[b, t]`` (the
  caller shifts: ``idx = tokens[:, :-1]``, ``targets = tokens[:, 1:]``); the loss is the mean
  cross-entropy over every position whose target is not -100.
* positions are absolute: with a cache, the new tokens sit at ``cache.length …``;
  ``causal_mask(T_new, T_total)`` is bottom-right aligned, so new queries see the whole cache.
* sampling: temperature divides the logits and 0 means greedy; top-k keeps every logit tied
  with the k-th; top-p keeps the smallest prefix (by decreasing probability) whose mass
  reaches p, and always the most likely token.

Shapes: ``B`` batch, ``T`` tokens, ``V`` vocabulary, ``d`` = d_model, ``h`` heads,
``d_head = d / h``, ``T_past`` cached tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .w01_attention import causal_mask, scaled_dot_product_attention
from .w02_multihead import merge_heads, split_heads
from .w03_positional import LearnedPositionalEmbedding, apply_rope
from .w04_blocks import FeedForward, LayerNorm, SelfAttention, block_param_count

__all__ = [
    "GPTConfig",
    "KVCache",
    "CausalSelfAttention",
    "Block",
    "GPT",
    "gpt_param_count",
    "top_k_filter",
    "top_p_filter",
    "generate",
]


@dataclass
class GPTConfig:
    """Hyper-parameters of a GPT. The defaults are GPT-2 small (124,439,808 parameters).

    bias: biases in every linear layer and LayerNorm. tie_weights: the LM head's weight is the
    token embedding. pos: "learned" (a table of block_size positions, GPT-2) or "rope"
    (rotary embeddings on queries and keys, no table).
    """

    vocab_size: int = 50257
    block_size: int = 1024  # the longest context the model accepts
    n_layers: int = 12
    n_heads: int = 12
    d_model: int = 768
    dropout: float = 0.0
    bias: bool = True
    tie_weights: bool = True
    pos: str = "learned"  # "learned" or "rope"


class KVCache:
    """Keys and values of every layer for the tokens processed so far (one cache per sequence batch).

    ``keys[i]`` / ``values[i]``: (B, h, T_past, d_head) for layer i, present once layer i has
    run. ``length`` is T_past, the number of cached positions, which is also the absolute
    position of the next token. Create an empty one with ``KVCache()``; the model fills it.
    """

    def __init__(self) -> None:
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []

    @property
    def length(self) -> int:
        ### BEGIN SOLUTION
        return self.keys[0].size(-2) if self.keys else 0
        ### END SOLUTION

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new keys and values of ``layer`` and return everything cached for it.

        k, v: (B, h, T_new, d_head). Returns k_all, v_all: (B, h, T_past + T_new, d_head), the
        cached tokens first. Layers are updated in order 0, 1, …; the first update of a layer
        starts its entry.
        """
        ### BEGIN SOLUTION
        if layer == len(self.keys):  # first time this layer runs
            self.keys.append(k)
            self.values.append(v)
        else:
            # Concatenate along the *time* axis (-2): the cache grows by T_new positions.
            self.keys[layer] = torch.cat((self.keys[layer], k), dim=-2)
            self.values[layer] = torch.cat((self.values[layer], v), dim=-2)
        return self.keys[layer], self.values[layer]
        ### END SOLUTION


class CausalSelfAttention(SelfAttention):
    """Week 4's causal self-attention (same ``q_proj``/``k_proj``/``v_proj``/``out_proj``), made
    cache-aware: it reads and extends a ``KVCache``.

    forward(x (B, T, d), positions (T,) absolute positions of these tokens, cache or None)
    -> (B, T, d). With ``rope``, queries and keys are rotated by ``apply_rope(·, positions)``
    *before* keys go into the cache (a cached key keeps the rotation of its own position).
    Queries attend to the cached keys and to the new ones up to themselves:
    ``causal_mask(T, T_past + T)``.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        layer: int,
        rope: bool = False,
        bias: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__(d_model, n_heads, causal=True, rope=rope, bias=bias, dropout=dropout)
        self.layer = layer  # which entry of the cache is ours

    def forward(self, x: torch.Tensor, positions: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        ### BEGIN SOLUTION
        T = x.size(-2)
        q = split_heads(self.q_proj(x), self.n_heads)  # (B, h, T, d_head)
        k = split_heads(self.k_proj(x), self.n_heads)  # (B, h, T, d_head)
        v = split_heads(self.v_proj(x), self.n_heads)  # (B, h, T, d_head)
        if self.rope:
            q, k = apply_rope(q, positions), apply_rope(k, positions)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)  # (B, h, T_past + T, d_head)
        # Bottom-right aligned: query i is token T_past + i and sees keys 0 … T_past + i.
        mask = causal_mask(T, k.size(-2), device=x.device)  # (T, T_past + T)
        out, weights = scaled_dot_product_attention(q, k, v, mask)  # (B, h, T, d_head)
        if self.training and self.attn_dropout.p > 0:
            out = self.attn_dropout(weights) @ v
        return self.out_proj(merge_heads(out))  # (B, T, d)
        ### END SOLUTION


class Block(nn.Module):
    """A pre-LN GPT block built from week 4's parts, passing positions and the cache through.

    Submodules (the names of week 4's ``TransformerBlock``, so the same state dict):
    ``norm1`` LayerNorm(d, bias), ``attn`` CausalSelfAttention, ``norm2`` LayerNorm(d, bias),
    ``ffn`` FeedForward(d, 4d, "gelu", bias, dropout), ``dropout`` on the attention output.
    forward(x (B, T, d), positions (T,), cache or None) -> (B, T, d):
    x = x + dropout(attn(norm1(x))); x = x + ffn(norm2(x)).
    """

    def __init__(self, config: GPTConfig, layer: int):
        super().__init__()
        ### BEGIN SOLUTION
        d = config.d_model
        self.norm1 = LayerNorm(d, bias=config.bias)
        self.attn = CausalSelfAttention(
            d, config.n_heads, layer, rope=config.pos == "rope", bias=config.bias, dropout=config.dropout
        )
        self.norm2 = LayerNorm(d, bias=config.bias)
        self.ffn = FeedForward(d, 4 * d, "gelu", bias=config.bias, dropout=config.dropout)
        self.dropout = nn.Dropout(config.dropout)
        ### END SOLUTION

    def forward(self, x: torch.Tensor, positions: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        ### BEGIN SOLUTION
        x = x + self.dropout(self.attn(self.norm1(x), positions, cache))  # (B, T, d)
        return x + self.ffn(self.norm2(x))
        ### END SOLUTION


class GPT(nn.Module):
    """A decoder-only language model (GPT-2 layout, pre-LN).

    State-dict keys (``d`` = d_model, ``V`` = vocab_size, i = 0 … n_layers − 1):
    ``tok_emb.weight`` (V, d); ``pos_emb.weight`` (block_size, d) only when pos="learned";
    ``blocks.{i}.norm1.{weight,bias}`` (d,); ``blocks.{i}.attn.{q,k,v,out}_proj.weight`` (d, d)
    and ``.bias`` (d,); ``blocks.{i}.norm2.{weight,bias}``; ``blocks.{i}.ffn.w1.weight`` (4d, d),
    ``.bias`` (4d,); ``blocks.{i}.ffn.w2.weight`` (d, 4d), ``.bias`` (d,);
    ``ln_f.{weight,bias}`` (d,); ``lm_head.weight`` (V, d), no bias; with ``tie_weights`` it is
    the same tensor as ``tok_emb.weight``. Without ``bias`` every ``.bias`` is absent.
    Also ``drop`` (dropout on the embeddings) and ``config``.

    Init (GPT-2): weights N(0, 0.02²), biases 0, LayerNorms (1, 0); the two projections that
    write into the residual stream (``attn.out_proj``, ``ffn.w2``) use std 0.02/√(2·n_layers).

    forward(idx (B, T) int64, targets (B, T) int64 or None, cache KVCache or None)
    -> (logits (B, T, V), loss scalar or None).
    Without a cache ``idx`` is the whole context (T <= block_size). With a cache, ``idx`` holds
    only the tokens that are not cached yet: they take positions ``cache.length …``, their keys
    and values are appended to ``cache`` (in place), and the logits are theirs alone.
    ``cache.length + T`` must not exceed ``block_size``.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        if config.pos not in ("learned", "rope"):
            raise ValueError(f"pos must be 'learned' or 'rope', got {config.pos!r}")
        self.config = config
        ### BEGIN SOLUTION
        d = config.d_model
        self.tok_emb = nn.Embedding(config.vocab_size, d)
        self.pos_emb = LearnedPositionalEmbedding(config.block_size, d) if config.pos == "learned" else None
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.n_layers))
        self.ln_f = LayerNorm(d, bias=config.bias)  # pre-LN: one last norm before the head
        self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.tok_emb.weight  # one (V, d) tensor, two uses
        self.apply(self._init_weights)
        # Each block *adds* two outputs to the residual stream; shrink them so its variance
        # does not grow with depth (GPT-2's scaled init).
        for block in self.blocks:
            for proj in (block.attn.out_proj, block.ffn.w2):
                nn.init.normal_(proj.weight, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layers))
        ### END SOLUTION

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        ### BEGIN SOLUTION
        T = idx.size(1)
        start = cache.length if cache is not None else 0  # tokens already in the cache
        if start + T > self.config.block_size:
            raise ValueError(f"{start + T} positions exceed block_size={self.config.block_size}")
        positions = torch.arange(start, start + T, device=idx.device)  # (T,) absolute positions
        x = self.tok_emb(idx)  # (B, T, d)
        if self.pos_emb is not None:
            x = x + self.pos_emb(positions)
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, positions, cache)  # (B, T, d)
        logits = self.lm_head(self.ln_f(x))  # (B, T, V)
        loss = None
        if targets is not None:
            # Every position is a training example: flatten (B, T) into B·T rows.
            loss = F.cross_entropy(
                logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100
            )
        return logits, loss
        ### END SOLUTION


def gpt_param_count(config: GPTConfig) -> int:
    """Exact number of distinct parameters of ``GPT(config)``, from the config alone.

    Token embedding V·d, a position table block_size·d (learned positions only), n_layers
    blocks (week 4's ``block_param_count``), the final LayerNorm, and the LM head V·d unless
    it is tied to the embedding (a shared tensor counts once). GPT-2 small: 124,439,808.
    """
    ### BEGIN SOLUTION
    d = config.d_model
    embeddings = config.vocab_size * d + (config.block_size * d if config.pos == "learned" else 0)
    blocks = config.n_layers * block_param_count(d, 4 * d, "layernorm", "gelu", bias=config.bias)
    final_norm = 2 * d if config.bias else d
    head = 0 if config.tie_weights else config.vocab_size * d
    return embeddings + blocks + final_norm + head
    ### END SOLUTION


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of each row, and every logit tied with the k-th; -inf elsewhere.

    logits: (..., V). Returns a new tensor of the same shape. k >= V keeps everything.
    """
    ### BEGIN SOLUTION
    if k < 1:
        raise ValueError(f"top-k needs k >= 1, got {k}")
    k = min(k, logits.size(-1))
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1): the k-th largest value
    return logits.masked_fill(logits < kth, float("-inf"))  # strict <: ties with the k-th stay
    ### END SOLUTION


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of most likely tokens whose probability reaches p.

    logits: (..., V). Sort by decreasing probability and keep each token whose *preceding*
    mass is still < p, so the token that makes the sum reach p is kept; the most likely token
    is always kept. Returns a new tensor of the same shape, -inf at the dropped tokens.
    """
    ### BEGIN SOLUTION
    if p >= 1.0:
        # Every token is needed to reach a mass of 1. (In float32 the running sum reaches 1.0
        # before the tail of tiny probabilities, which the comparison below would then drop.)
        return logits.clone()
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (..., V)
    probs = torch.softmax(sorted_logits, dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs  # (..., V): mass of the more likely tokens
    drop_sorted = mass_before >= p  # the set already reached p without this token
    drop_sorted[..., 0] = False  # at least one token survives
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))
    ### END SOLUTION


@torch.no_grad()
def generate(
    model: nn.Module,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """Extend ``idx`` (B, T) by ``max_new_tokens`` tokens, one at a time; returns (B, T + new).

    model: a ``GPT`` (or any module with ``config.block_size`` and the same ``forward``). Each
    step scores the next token from the last logits: temperature 0 takes the argmax (greedy);
    otherwise logits / temperature, then ``top_k_filter``, then ``top_p_filter``, then a draw
    from the softmax with ``torch.multinomial(…, generator=generator)``.
    The model sees at most the last ``block_size`` tokens. With ``use_cache`` the prompt is
    processed once into a ``KVCache`` and each later step feeds only the newest token; when
    the cache is full it is rebuilt from the last ``block_size`` tokens (learned positions
    cannot slide). Runs in eval mode (no dropout) and restores the model's mode afterwards.
    """
    ### BEGIN SOLUTION
    block_size = model.config.block_size
    was_training = model.training
    model.eval()
    cache = None
    for _ in range(max_new_tokens):
        if not use_cache:
            logits, _ = model(idx[:, -block_size:])  # recompute the whole (cropped) context
        elif cache is None or cache.length >= block_size:
            cache = KVCache()  # (re)fill: run the cropped context once
            logits, _ = model(idx[:, -block_size:], cache=cache)
        else:
            logits, _ = model(idx[:, -1:], cache=cache)  # one new token, attends to the cache
        logits = logits[:, -1, :]  # (B, V): only the last position predicts the next token
        if temperature == 0:
            next_id = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
        else:
            logits = logits / temperature  # before softmax: T < 1 sharpens, T > 1 flattens
            if top_k is not None:
                logits = top_k_filter(logits, top_k)
            if top_p is not None:
                logits = top_p_filter(logits, top_p)
            probs = torch.softmax(logits, dim=-1)
            next_id = torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)
        idx = torch.cat((idx, next_id), dim=1)
    model.train(was_training)
    return idx
    ### END SOLUTION
