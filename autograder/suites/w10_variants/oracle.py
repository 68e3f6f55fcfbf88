"""Week 10 oracles: PyTorch built-ins, closed forms and explicit loops, written independently of
the reference; and the outputs of the classic mistakes, so that a failing test can name them."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


# --------------------------------------------------------------------------- attention
def window_mask(T_q: int, T_k: int, window: int | None, causal: bool = True) -> torch.Tensor | None:
    """Query i (absolute position p = T_k − T_q + i) sees keys j with p − window < j ≤ p, by loops."""
    if not causal and window is None:
        return None
    mask = torch.zeros(T_q, T_k, dtype=torch.bool)
    for i in range(T_q):
        p = T_k - T_q + i
        for j in range(T_k):
            mask[i, j] = j <= p and (window is None or j > p - window)
    return mask


def attention(q, k, v, mask=None):
    """F.scaled_dot_product_attention, with the course's rule for a query that sees no key: zeros."""
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v)
    empty = ~mask.any(-1)  # (T_q,)
    safe = mask.clone()
    safe[empty] = True  # any finite row, zeroed below
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=safe)
    return out.masked_fill(empty[:, None], 0.0)


def logsumexp(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.logsumexp(scores, dim=-1)


def tiled_with_bug(q, k, v, block_q, block_k, bug: str, mask=None):
    """Tiled attention with one classic mistake, written from the formulas (for diagnoses only).

    bug: "no_scale" (scores not divided by √d), "acc_not_rescaled" (the running output is not
    multiplied by exp(m_old − m_new)), "sum_not_rescaled" (the running sum is not), "per_tile"
    (every tile normalised on its own and the tile outputs added), "drop_last_keys" (the keys of
    a last, shorter key block never read)."""
    T_q, T_k = q.size(-2), k.size(-2)
    scale = 1.0 if bug == "no_scale" else 1.0 / math.sqrt(q.size(-1))
    last = T_k - T_k % block_k if bug == "drop_last_keys" and T_k % block_k else T_k
    rows = []
    for qs in range(0, T_q, block_q):
        qb = q[..., qs : qs + block_q, :]
        n = qb.size(-2)
        m = torch.full((*qb.shape[:-1], 1), float("-inf"), dtype=q.dtype)
        l = torch.zeros((*qb.shape[:-1], 1), dtype=q.dtype)
        acc = torch.zeros((*qb.shape[:-1], v.size(-1)), dtype=q.dtype)
        for ks in range(0, last, block_k):
            s = qb @ k[..., ks : ks + block_k, :].transpose(-2, -1) * scale
            if mask is not None:
                s = s.masked_fill(~mask[qs : qs + n, ks : ks + block_k], float("-inf"))
            vb = v[..., ks : ks + block_k, :]
            if bug == "per_tile":
                mx = s.amax(-1, keepdim=True)
                mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
                e = torch.exp(s - mx)
                tot = e.sum(-1, keepdim=True)
                acc = acc + (e / torch.where(tot > 0, tot, torch.ones_like(tot))) @ vb
                l = torch.ones_like(l)
                continue
            m_new = torch.maximum(m, s.amax(-1, keepdim=True))
            shift = torch.where(torch.isfinite(m_new), m_new, torch.zeros_like(m_new))
            p = torch.exp(s - shift)
            r = torch.exp(m - shift)
            l = (l if bug == "sum_not_rescaled" else l * r) + p.sum(-1, keepdim=True)
            acc = (acc if bug == "acc_not_rescaled" else acc * r) + p @ vb
            m = m_new
        rows.append(acc / torch.where(l > 0, l, torch.ones_like(l)))
    return torch.cat(rows, dim=-2)


def online_softmax_with_bug(x, block_size, bug: str):
    """ "no_rescale": the running sum is never multiplied by exp(m_old − m_new); "per_block": each
    block is normalised by its own sum (softmax of every block on its own)."""
    if bug == "per_block":
        return torch.cat(
            [torch.softmax(x[..., s : s + block_size], -1) for s in range(0, x.size(-1), block_size)], -1
        )
    m = torch.full((*x.shape[:-1], 1), float("-inf"), dtype=x.dtype)
    l = torch.zeros((*x.shape[:-1], 1), dtype=x.dtype)
    for s in range(0, x.size(-1), block_size):
        b = x[..., s : s + block_size]
        m = torch.maximum(m, b.amax(-1, keepdim=True))
        l = l + torch.exp(b - m).sum(-1, keepdim=True)
    return torch.exp(x - m) / l


# --------------------------------------------------------------------------- mixture of experts
def route(logits: torch.Tensor, top_k: int, renormalize: bool = True, order: str = "course"):
    """Routing by loops over tokens. ``order`` "course": ties to the lower index; "high": ties to
    the higher index (a classic mistake, for diagnoses)."""
    probs = torch.softmax(logits.double(), dim=-1).reshape(-1, logits.size(-1))
    weights, experts = [], []
    for row in probs:
        values = row.tolist()
        if order == "course":
            ranked = sorted(range(len(values)), key=lambda e: (-values[e], e))
        else:
            ranked = sorted(range(len(values)), key=lambda e: (-values[e], -e))
        chosen = ranked[:top_k]
        w = [values[e] for e in chosen]
        if renormalize:
            total = sum(w)
            w = [x / total for x in w]
        weights.append(w)
        experts.append(chosen)
    shape = (*logits.shape[:-1], top_k)
    return (
        torch.tensor(weights, dtype=torch.float64).reshape(shape).to(logits.dtype),
        torch.tensor(experts, dtype=torch.int64).reshape(shape),
    )


def counts(experts: torch.Tensor, n_experts: int) -> torch.Tensor:
    c = [0] * n_experts
    for e in experts.reshape(-1).tolist():
        c[e] += 1
    return torch.tensor(c, dtype=torch.int64)


def balancing_loss(logits: torch.Tensor, experts: torch.Tensor, variant: str = "course") -> torch.Tensor:
    """E · Σ_i f_i P_i (Switch Transformer), f_i over the N·k assignments. Variants (classic
    mistakes, for diagnoses): "no_E" (no factor E), "per_token" (f_i over N tokens: k times
    larger), "top1_only" (f from the first choice only)."""
    E = logits.size(-1)
    probs = torch.softmax(logits.double(), dim=-1).reshape(-1, E)
    N = probs.size(0)
    chosen = experts.reshape(N, -1)
    if variant == "top1_only":
        chosen = chosen[:, :1]
    c = counts(chosen, E).double()
    f = c / (N if variant == "per_token" else c.sum())
    P = probs.mean(0)
    total = (f * P).sum()
    return (total if variant == "no_E" else E * total).to(logits.dtype)


def ffn(sd: dict, prefix: str, x: torch.Tensor, activation: str) -> torch.Tensor:
    """Week 4's FeedForward from its weights: w2(act(w1 x)), or w2(SiLU(w1 x) ⊙ w3 x)."""

    def lin(name, t):
        return F.linear(t, sd[f"{prefix}{name}.weight"], sd.get(f"{prefix}{name}.bias"))

    h = lin("w1", x)
    if activation == "swiglu":
        h = F.silu(h) * lin("w3", x)
    elif activation == "relu":
        h = F.relu(h)
    else:
        h = F.gelu(h, approximate="tanh" if activation == "gelu_tanh" else "none")
    return lin("w2", h)


def moe_forward(sd, x, n_experts, top_k, renormalize=True, activation="gelu", bug: str = ""):
    """The MoE layer token by token. bug (for diagnoses): "unweighted" (expert outputs added
    without their routing weights), "overwrite" (a token keeps only its output from the highest
    numbered of its experts, weighted), "renormalize_flip" (the opposite renormalisation)."""
    d = x.size(-1)
    flat = x.reshape(-1, d)
    logits = flat @ sd["router.weight"].T
    weights, experts = route(logits, top_k, renormalize != (bug == "renormalize_flip"))
    rows = []
    for n in range(flat.size(0)):
        total = torch.zeros(d, dtype=x.dtype)
        pairs = sorted(zip(experts[n].tolist(), weights[n]), key=lambda t: t[0])
        for e, w in pairs:
            y = ffn(sd, f"experts.{e}.", flat[n], activation)
            if bug == "unweighted":
                total = total + y
            elif bug == "overwrite":
                total = w * y
            else:
                total = total + w * y
        rows.append(total)
    return torch.stack(rows).reshape(x.shape), balancing_loss(logits, experts), counts(experts, n_experts)


def moe_param_counts(d_model, n_experts, top_k, d_ff=None, activation="gelu", bias=True):
    """Counted from the shapes of the matrices and vectors, one by one."""
    d_ff = 4 * d_model if d_ff is None else d_ff
    shapes = [(d_ff, d_model), (d_model, d_ff)] + ([(d_ff, d_model)] if activation == "swiglu" else [])
    expert = sum(a * b for a, b in shapes) + (sum(a for a, _ in shapes) if bias else 0)
    router = n_experts * d_model
    return n_experts * expert + router, top_k * expert + router


# --------------------------------------------------------------------------- scans
def scan(a, b, h0=None, bug: str = ""):
    """h_t = a_t h_{t−1} + b_t by an explicit loop in float64. bug (for diagnoses): "no_h0" (the
    initial state ignored), "shifted" (returns h_0 … h_{T−1}), "swapped" (the combine operator of
    the parallel scan in the wrong order: h_t = a_t-products applied to later terms), "a_on_b"
    (h_t = a_t ⊙ (h_{t−1} + b_t))."""
    a64, b64 = a.double(), b.double()
    h = torch.zeros(*b.shape[:-2], b.size(-1), dtype=torch.float64)
    if h0 is not None and bug != "no_h0":
        h = h0.double().clone()
    out = []
    for t in range(b.size(-2)):
        if bug == "shifted":
            out.append(h)
        if bug == "a_on_b":
            h = a64[..., t, :] * (h + b64[..., t, :])
        else:
            h = a64[..., t, :] * h + b64[..., t, :]
        if bug != "shifted":
            out.append(h)
    if not out:
        return b.clone()
    return torch.stack(out, dim=-2).to(b.dtype)


def scan_swapped(a, b, h0=None):
    """Hillis–Steele with the two operands of the combine swapped (newer first): what a parallel
    scan returns when (a₁, b₁) ∘ (a₂, b₂) is written as (a₁a₂, a₁b₂ + b₁)."""
    if h0 is not None:
        b = torch.cat([b[..., :1, :] + a[..., :1, :] * h0.unsqueeze(-2), b[..., 1:, :]], dim=-2)
    T, offset = b.size(-2), 1
    while offset < T:
        b_new = a[..., :-offset, :] * b[..., offset:, :] + b[..., :-offset, :]
        a_new = a[..., offset:, :] * a[..., :-offset, :]
        b = torch.cat([b[..., :offset, :], b_new], dim=-2)
        a = torch.cat([a[..., :offset, :], a_new], dim=-2)
        offset *= 2
    return b


def recurrence(sd, x, h0=None, bug: str = ""):
    """GatedLinearRecurrence from its weights, one step at a time. bug (for diagnoses):
    "no_sigmoid" (the gate's output used as the decay), "ungated" (b = in_proj(x), no 1 − a)."""
    gate = F.linear(x, sd["gate.weight"], sd["gate.bias"])
    a = gate if bug == "no_sigmoid" else torch.sigmoid(gate)
    b = F.linear(x, sd["in_proj.weight"], sd["in_proj.bias"])
    if bug != "ungated":
        b = (1 - a) * b
    h = scan(a, b, h0)
    return F.linear(h, sd["out_proj.weight"], sd["out_proj.bias"]), h[..., -1, :]
