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
    raise NotImplementedError("w05: implement mask_tokens; see course/w05_encoder/notes.md")


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
        raise NotImplementedError("w05: implement Encoder.__init__; see course/w05_encoder/notes.md")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError("w05: implement Encoder.forward; see course/w05_encoder/notes.md")


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
        raise NotImplementedError("w05: implement MaskedLM.__init__; see course/w05_encoder/notes.md")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError("w05: implement MaskedLM.forward; see course/w05_encoder/notes.md")


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the selected positions only.

    logits: (B, T, V); labels: (B, T) int64 with ``-100`` at positions that were not selected.
    Returns a scalar: the mean of ``-log p(label)`` over positions whose label is not -100, and
    ``0.0`` (still differentiable) when there is none, instead of the NaN of 0/0.
    """
    raise NotImplementedError("w05: implement mlm_loss; see course/w05_encoder/notes.md")


def cls_pool(hidden: torch.Tensor) -> torch.Tensor:
    """The sequence representation BERT uses for classification: the output at position 0.

    hidden: (B, T, d) encoder outputs for inputs that start with a [CLS] token. Returns (B, d).
    Because attention is bidirectional, position 0 has seen every token of the sequence.
    """
    raise NotImplementedError("w05: implement cls_pool; see course/w05_encoder/notes.md")
