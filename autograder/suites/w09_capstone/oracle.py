"""Trusted re-implementations for the week 9 suite, written from the conventions alone.

* `forward`: the Mini-GPT as a pure function of a state dict (the keys the model's docstring
  lists), built on PyTorch's own `layer_norm`, `gelu`, `scaled_dot_product_attention`; RoPE
  via complex multiplication. Switches reproduce classic mistakes so a test can name them.
* `train_bpe` / `encode_bpe`: byte-level BPE by the stated rule (most frequent pair, ties to
  the smallest pair, merges applied in the order learnt).
* `sorted_char_ids`, `heldout_nll`, top-k / top-p filters, and the dataset lookup.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F

from autograder.checks import GradingFailure

CHUNK_PATTERN = r" ?\w+| ?[^\w\s]+|\s+(?!\S)|\s+"  # the split the BPE docstring states


# --------------------------------------------------------------------------- data
def shakespeare() -> Path:
    """The verified tiny Shakespeare file, or a failure that says how to get it."""
    from autograder.tools.data import DatasetError, dataset_path

    try:
        return dataset_path("shakespeare")
    except DatasetError as exc:
        raise GradingFailure(
            f"the tiny Shakespeare dataset is needed for this test and is not available ({exc}). "
            "Fetch it once with `course data shakespeare` (or `course data shakespeare --from PATH`)."
        ) from None


def sorted_char_ids(text: str) -> tuple[list[str], torch.Tensor]:
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    return chars, torch.tensor([stoi[c] for c in text], dtype=torch.long)


# --------------------------------------------------------------------------- the model
def n_layers_of(sd: dict) -> int:
    return len({k.split(".")[1] for k in sd if k.startswith("blocks.")})


def rope_complex(x: torch.Tensor, base: float = 10000.0, half_split: bool = False) -> torch.Tensor:
    """Rotate x (..., T, d) by position: pairs (2i, 2i+1) (or (i, i + d/2) with half_split)
    multiplied by e^{i·p·θ_i}, θ_i = base^(-2i/d)."""
    T, d = x.shape[-2], x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    rot = torch.polar(
        torch.ones(T, d // 2, dtype=torch.float64), torch.arange(T, dtype=torch.float64)[:, None] * theta
    )
    if half_split:
        pairs = torch.stack((x[..., : d // 2], x[..., d // 2 :]), dim=-1)
    else:
        pairs = x.reshape(*x.shape[:-1], d // 2, 2)
    z = torch.view_as_complex(pairs.double().contiguous()) * rot
    out = torch.view_as_real(z).to(x.dtype)  # (..., T, d/2, 2)
    if half_split:
        return torch.cat((out[..., 0], out[..., 1]), dim=-1)
    return out.flatten(-2)


def forward(
    sd: dict,
    idx: torch.Tensor,
    n_heads: int,
    *,
    rope: bool = False,
    half_split: bool = False,
    post_ln: bool = False,
    causal: bool = True,
    scale: bool = True,
    untied: bool = False,
    return_weights: bool = False,
    heads_untransposed: bool = False,
    first_position: int = 0,
    mask_above: bool = False,
    softmax_over_queries: bool = False,
):
    """Logits (B, T, V) of the Mini-GPT with state dict ``sd`` on idx (B, T) (and the
    per-layer attention weights with ``return_weights``).

    Classic mistakes: ``heads_untransposed`` re-assembles (B, h, T, d_head) as (B, T, d) without
    moving the head axis back; ``first_position`` 1 reads the position table from row 1;
    ``mask_above`` keeps the upper triangle (the future) in the attention maps instead of the
    lower; ``softmax_over_queries`` normalises the maps over dim -2."""
    B, T = idx.shape

    def ln(x, name):
        return F.layer_norm(x, x.shape[-1:], sd[f"{name}.weight"], sd.get(f"{name}.bias"), eps=1e-5)

    def linear(x, name):
        return F.linear(x, sd[f"{name}.weight"], sd.get(f"{name}.bias"))

    x = sd["tok_emb.weight"][idx]
    if not rope:
        x = x + sd["pos_emb.weight"][first_position : first_position + T]
    d = x.shape[-1]
    d_head = d // n_heads
    maps = []
    for i in range(n_layers_of(sd)):
        p = f"blocks.{i}"
        h = x if post_ln else ln(x, f"{p}.ln1")
        q, k, v = linear(h, f"{p}.attn.qkv").split(d, dim=-1)
        q, k, v = (t.reshape(B, T, n_heads, d_head).transpose(1, 2) for t in (q, k, v))
        if rope:
            q, k = rope_complex(q, half_split=half_split), rope_complex(k, half_split=half_split)
        mask = torch.ones(T, T, dtype=torch.bool).tril() if causal else None
        s = 1.0 / math.sqrt(d_head) if scale else 1.0
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=s)
        if return_weights:
            scores = (q @ k.transpose(-2, -1)) * s
            if mask is not None:
                shown = torch.ones(T, T, dtype=torch.bool).triu() if mask_above else mask
                scores = scores.masked_fill(~shown, float("-inf"))
            maps.append(torch.softmax(scores, dim=-2 if softmax_over_queries else -1))
        merged = att.reshape(B, T, d) if heads_untransposed else att.transpose(1, 2).reshape(B, T, d)
        a = linear(merged, f"{p}.attn.proj")
        if post_ln:
            x = ln(x + a, f"{p}.ln1")
            x = ln(x + linear(F.gelu(linear(x, f"{p}.mlp.fc")), f"{p}.mlp.proj"), f"{p}.ln2")
        else:
            x = x + a
            x = x + linear(F.gelu(linear(ln(x, f"{p}.ln2"), f"{p}.mlp.fc")), f"{p}.mlp.proj")
    head = sd["lm_head.weight"] if untied else sd["tok_emb.weight"]
    logits = ln(x, "ln_f") @ head.T
    return (logits, maps) if return_weights else logits


def param_count(V: int, block_size: int, n_layers: int, d: int, *, bias: bool, rope: bool) -> int:
    per_layer = 2 * d + 3 * d * d + d * d + 8 * d * d  # two LayerNorm gains, qkv, proj, MLP
    if bias:
        per_layer += 2 * d + 3 * d + d + 4 * d + d
    total = V * d + n_layers * per_layer + d + (d if bias else 0)  # tied head: no extra matrix
    return total + (0 if rope else block_size * d)


# --------------------------------------------------------------------------- BPE
def _merge(ids: list[int], pair: tuple[int, int], new_id: int, overlapping: bool = False) -> list[int]:
    """Replace ``pair`` by ``new_id`` left to right; ``overlapping`` reproduces the mistake of
    moving on by one id after a match (so ``[5, 5, 5]`` becomes ``[9, 9, 5]``)."""
    out, i = [], 0
    while i < len(ids):
        if ids[i : i + 2] == list(pair):
            out.append(new_id)
            i += 1 if overlapping else 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_bpe(
    text: str,
    vocab_size: int,
    *,
    weighted: bool = True,
    chunked: bool = True,
    overlapping: bool = False,
) -> list[tuple[int, int, int]]:
    """Merges as (a, b, new_id), in the order learnt. The switches reproduce classic mistakes:
    ``weighted=False`` counts each distinct chunk once, ``chunked=False`` treats the whole text
    as one chunk (merges across word boundaries), ``overlapping`` merges overlapping pairs."""
    chunks = re.findall(CHUNK_PATTERN, text) if chunked else [text]
    words = Counter(tuple(chunk.encode("utf-8")) for chunk in chunks)
    if not weighted:
        words = Counter(dict.fromkeys(words, 1))
    merges = []
    for new_id in range(256, vocab_size):
        stats: Counter = Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                stats[pair] += n
        if not stats:
            break
        top = max(stats.values())
        pair = min(p for p, c in stats.items() if c == top)
        merges.append((pair[0], pair[1], new_id))
        merged: Counter = Counter()
        for word, n in words.items():
            merged[tuple(_merge(list(word), pair, new_id, overlapping))] += n
        words = merged if weighted else Counter(dict.fromkeys(merged, 1))
    return merges


def encode_bpe(text: str, merges: list[tuple[int, int, int]], order: str = "learnt") -> list[int]:
    """Apply the merges in the order learnt to every chunk's bytes (equivalent to applying the
    lowest-ranked available pair first). ``order`` reproduces mistakes: ``"leftmost"`` merges
    the leftmost pair that has a merge, ``"latest"`` the pair learnt last."""
    rank = {(a, b): new_id for a, b, new_id in merges}
    out = []
    for chunk in re.findall(CHUNK_PATTERN, text):
        ids = list(chunk.encode("utf-8"))
        if order == "learnt":
            for a, b, new_id in merges:
                if len(ids) < 2:
                    break
                ids = _merge(ids, (a, b), new_id)
        else:
            while True:
                candidates = [p for p in zip(ids, ids[1:]) if p in rank]
                if not candidates:
                    break
                pair = candidates[0] if order == "leftmost" else max(candidates, key=rank.get)
                ids = _merge(ids, pair, rank[pair])
        out.extend(ids)
    return out


# --------------------------------------------------------------------------- sampling
def top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    kth = logits.sort(dim=-1, descending=True).values[..., k - 1 : k]
    return torch.where(logits >= kth, logits, torch.full_like(logits, float("-inf")))


def top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    out = torch.full_like(logits, float("-inf"))
    probs = torch.softmax(logits.double(), dim=-1)
    for row in range(logits.shape[0]):
        order = probs[row].argsort(descending=True)
        mass = 0.0
        for j in order.tolist():
            out[row, j] = logits[row, j]
            mass += probs[row, j].item()
            if mass >= p:
                break
    return out


def heldout_nll(
    sd: dict,
    data: torch.Tensor,
    n_heads: int,
    block_size: int,
    *,
    drop_partial: bool = False,
    per_window: bool = False,
    **kw,
) -> float:
    """Mean next-token loss over every prediction in ``data``, non-overlapping windows.
    Mistakes: ``drop_partial`` leaves out the last, shorter window (still dividing by every
    prediction); ``per_window`` averages the windows' mean losses instead of the tokens'."""
    total, n, means = 0.0, len(data) - 1, []
    with torch.no_grad():
        for s in range(0, n, block_size):
            t = min(block_size, n - s)
            if drop_partial and t < block_size:
                continue
            logits = forward(sd, data[s : s + t][None], n_heads, **kw)
            nll = F.cross_entropy(logits[0].double(), data[s + 1 : s + t + 1], reduction="sum").item()
            total += nll
            means.append(nll / t)
    if per_window:
        return sum(means) / len(means)
    return total / n
