"""Week 5 — encoder models (BERT-style): bidirectional attention and masked-language modelling.

An encoder reads the whole sequence at once: every token attends to every other token, left
*and* right, so each output vector is a representation of its token *in context*. It is trained
by hiding some tokens and asking for them back (masked-language modelling, MLM): to fill a
blank, the model has to use both sides.

Conventions (course/CONVENTIONS.md):

* MLM masking: each non-special token is selected with probability 0.15; a selected token
  becomes ``[MASK]`` with probability 0.8, a random vocabulary token (uniform over
  ``0 … vocab_size − 1``) with probability 0.1, and stays as it is with probability 0.1.
  Labels hold the original token where selected and ``-100`` everywhere else.
* ``attention_mask`` (B, T) is boolean, ``True`` at real tokens and ``False`` at padding; padded
  positions are hidden as *keys* from every query (mask ``(B, 1, 1, T)``).
* the encoder is pre-LN (week 4's ``TransformerBlock`` with ``norm_first=True``) with a final
  LayerNorm, learned positions (week 3), and no causal mask.

Shapes: ``B`` batch, ``T`` tokens, ``d`` = d_model, ``V`` vocabulary size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .w03_positional import LearnedPositionalEmbedding
from .w04_blocks import LayerNorm, TransformerBlock

__all__ = ["mask_tokens", "Encoder", "MaskedLM", "mlm_loss", "cls_pool", "IGNORE_INDEX"]

IGNORE_INDEX = -100  # label of a position the loss skips (F.cross_entropy's default)


def mask_tokens(
    input_ids: torch.Tensor,
    *,
    vocab_size: int,
    mask_id: int,
    special_ids: Sequence[int] = (),
    mlm_prob: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking rule: pick the tokens to predict and corrupt them in the input.

    input_ids: (B, T) int64 (any shape works). Returns ``(inputs, labels)``, both new tensors of
    the same shape and dtype; ``input_ids`` itself is left untouched.

    * each token whose id is not in ``special_ids`` is *selected* independently with
      probability ``mlm_prob``; special tokens ([CLS], [SEP], [PAD], …) never are;
    * ``labels`` = the original id where selected, ``-100`` elsewhere;
    * ``inputs`` = ``input_ids`` except at selected positions: ``mask_id`` with probability 0.8,
      a uniformly random id in ``0 … vocab_size − 1`` with probability 0.1, unchanged otherwise.

    Every random draw uses ``generator``, so a seeded generator gives a reproducible result.
    """
    ### BEGIN SOLUTION
    shape = input_ids.shape
    specials = torch.as_tensor(list(special_ids), dtype=input_ids.dtype)
    is_special = torch.isin(input_ids, specials)  # (B, T)
    selected = (torch.rand(shape, generator=generator) < mlm_prob) & ~is_special  # (B, T)
    labels = input_ids.masked_fill(~selected, IGNORE_INDEX)

    # One uniform draw per position decides what a selected token turns into: [0, 0.8) -> [MASK],
    # [0.8, 0.9) -> a random token, [0.9, 1) -> itself. Keeping 10% unchanged and 10% random
    # means the model cannot assume that a visible token is the right one; it must check.
    action = torch.rand(shape, generator=generator)
    random_ids = torch.randint(vocab_size, shape, generator=generator, dtype=input_ids.dtype)
    inputs = input_ids.clone()  # a copy: the caller's batch must stay intact
    to_mask = selected & (action < 0.8)
    to_random = selected & (action >= 0.8) & (action < 0.9)
    inputs[to_mask] = mask_id
    inputs[to_random] = random_ids[to_random]
    return inputs, labels
    ### END SOLUTION


class Encoder(nn.Module):
    """A bidirectional transformer encoder: embeddings, ``n_layers`` pre-LN blocks, final LayerNorm.

    Submodules (state-dict prefixes): ``tok_emb`` nn.Embedding(V, d) (init N(0, 0.02²)),
    ``pos_emb`` week 3's LearnedPositionalEmbedding(max_len, d), ``drop`` nn.Dropout on the
    summed embeddings, ``blocks`` an nn.ModuleList of week 4's
    ``TransformerBlock(d, n_heads, d_ff, norm_first=True, activation=activation, causal=False,
    dropout=dropout)``, ``ln_f`` week 4's LayerNorm(d).

    forward(input_ids (B, T) int64, attention_mask (B, T) bool or None) -> hidden (B, T, d).
    ``attention_mask`` is True at real tokens; padded positions are never attended to, so the
    outputs at real tokens do not depend on what the padding contains. T must be <= max_len.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        n_layers: int,
        n_heads: int,
        max_len: int,
        d_ff: int | None = None,
        dropout: float = 0.0,
        activation: str = "gelu",
    ):
        super().__init__()
        self.vocab_size, self.d_model, self.max_len = vocab_size, d_model, max_len
        ### BEGIN SOLUTION
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(self.tok_emb.weight, mean=0.0, std=0.02)  # BERT's init (also the MLM head's)
        self.pos_emb = LearnedPositionalEmbedding(max_len, d_model)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                d_model, n_heads, d_ff, norm_first=True, activation=activation, causal=False, dropout=dropout
            )
            for _ in range(n_layers)
        )
        self.ln_f = LayerNorm(d_model)  # pre-LN blocks leave the stream unnormalised
        ### END SOLUTION

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        ### BEGIN SOLUTION
        T = input_ids.size(1)
        positions = torch.arange(T, device=input_ids.device)  # (T,)
        x = self.drop(self.tok_emb(input_ids) + self.pos_emb(positions))  # (B, T, d)
        # No causal mask: every token sees both sides. Padding is hidden as a *key* (the last
        # axis of the scores); padded *queries* still get (unused) outputs.
        mask = None if attention_mask is None else attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T)
        for block in self.blocks:
            x = block(x, mask)  # (B, T, d)
        return self.ln_f(x)
        ### END SOLUTION


class MaskedLM(nn.Module):
    """An ``Encoder`` with BERT's MLM head, whose output matrix is the token embedding (tied).

    MaskedLM(vocab_size, d_model, n_layers, n_heads, max_len, **encoder_kwargs) builds
    ``encoder`` = Encoder(same arguments) and the head:
    ``transform`` = nn.Sequential(nn.Linear(d, d), nn.GELU(), LayerNorm(d)) then
    ``lm_head`` = nn.Linear(d, V) whose ``weight`` *is* ``encoder.tok_emb.weight`` (one tensor,
    two names) and whose ``bias`` (V,) is its own.

    forward(input_ids (B, T), attention_mask (B, T) bool or None) -> logits (B, T, V).
    """

    def __init__(
        self, vocab_size: int, d_model: int, n_layers: int, n_heads: int, max_len: int, **encoder_kwargs
    ):
        super().__init__()
        ### BEGIN SOLUTION
        self.encoder = Encoder(vocab_size, d_model, n_layers, n_heads, max_len, **encoder_kwargs)
        self.transform = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), LayerNorm(d_model))
        self.lm_head = nn.Linear(d_model, vocab_size)
        # Weight tying: scoring "is this token t?" reuses t's input embedding, which saves V·d
        # parameters and gives rare tokens' output rows the gradient of their input rows.
        self.lm_head.weight = self.encoder.tok_emb.weight
        ### END SOLUTION

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        ### BEGIN SOLUTION
        hidden = self.encoder(input_ids, attention_mask)  # (B, T, d)
        return self.lm_head(self.transform(hidden))  # (B, T, V)
        ### END SOLUTION


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the selected positions only.

    logits: (B, T, V); labels: (B, T) int64 with ``-100`` at positions that were not selected.
    Returns a scalar: the mean of ``-log p(label)`` over positions whose label is not -100, and
    ``0.0`` (still differentiable) when there is none, instead of the NaN of 0/0.
    """
    ### BEGIN SOLUTION
    V = logits.size(-1)
    flat_logits, flat_labels = logits.reshape(-1, V), labels.reshape(-1)  # (B·T, V), (B·T,)
    if not bool((flat_labels != IGNORE_INDEX).any()):
        return logits.sum() * 0.0  # nothing selected in this batch: no signal, but no NaN
    # ignore_index drops unselected positions from both the sum and the count (the mean).
    return F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE_INDEX)
    ### END SOLUTION


def cls_pool(hidden: torch.Tensor) -> torch.Tensor:
    """The sequence representation BERT uses for classification: the output at position 0.

    hidden: (B, T, d) encoder outputs for inputs that start with a [CLS] token. Returns (B, d).
    Because attention is bidirectional, position 0 has seen every token of the sequence.
    """
    ### BEGIN SOLUTION
    return hidden[:, 0]  # (B, d)
    ### END SOLUTION
