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
):
    """Logits (B, T, V) of the Mini-GPT with state dict ``sd`` on idx (B, T) (and the
    per-layer attention weights with ``return_weights``)."""
    B, T = idx.shape

    def ln(x, name):
        return F.layer_norm(x, x.shape[-1:], sd[f"{name}.weight"], sd.get(f"{name}.bias"), eps=1e-5)

    def linear(x, name):
        return F.linear(x, sd[f"{name}.weight"], sd.get(f"{name}.bias"))

    x = sd["tok_emb.weight"][idx]
    if not rope:
        x = x + sd["pos_emb.weight"][:T]
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
                scores = scores.masked_fill(~mask, float("-inf"))
            maps.append(torch.softmax(scores, dim=-1))
        a = linear(att.transpose(1, 2).reshape(B, T, d), f"{p}.attn.proj")
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
def _merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    out, i = [], 0
    while i < len(ids):
        if ids[i : i + 2] == list(pair):
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_bpe(text: str, vocab_size: int) -> list[tuple[int, int, int]]:
    """Merges as (a, b, new_id), in the order learnt."""
    words = Counter(tuple(chunk.encode("utf-8")) for chunk in re.findall(CHUNK_PATTERN, text))
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
            merged[tuple(_merge(list(word), pair, new_id))] += n
        words = merged
    return merges


def encode_bpe(text: str, merges: list[tuple[int, int, int]]) -> list[int]:
    """Apply the merges in the order learnt to every chunk's bytes (equivalent to applying the
    lowest-ranked available pair first)."""
    out = []
    for chunk in re.findall(CHUNK_PATTERN, text):
        ids = list(chunk.encode("utf-8"))
        for a, b, new_id in merges:
            if len(ids) < 2:
                break
            ids = _merge(ids, (a, b), new_id)
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


def heldout_nll(sd: dict, data: torch.Tensor, n_heads: int, block_size: int, **kw) -> float:
    """Mean next-token loss over every prediction in ``data``, non-overlapping windows."""
    total, n = 0.0, len(data) - 1
    with torch.no_grad():
        for s in range(0, n, block_size):
            t = min(block_size, n - s)
            logits = forward(sd, data[s : s + t][None], n_heads, **kw)
            total += F.cross_entropy(logits[0].double(), data[s + 1 : s + t + 1], reduction="sum").item()
    return total / n
