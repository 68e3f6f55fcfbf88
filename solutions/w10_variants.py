"""Week 10 — modern transformer variants: the pieces current papers are built from.

* **Tiled attention with an online softmax** (FlashAttention's algorithm, in plain PyTorch): the
  same output as ``softmax(q kᵀ / √d) v``, computed one (query block, key block) tile at a time
  with a running maximum and a running sum, so the (T_q, T_k) score matrix never exists.
* **Sliding-window attention**: a causal mask that also hides keys more than ``window − 1``
  positions back; with tiles, the hidden tiles are skipped, so the cost is O(T · window).
* **Mixture of experts**: a router picks ``top_k`` of ``n_experts`` feed-forward networks per
  token; a load-balancing loss (Switch Transformer's) keeps the experts evenly used.
* **Linear recurrences** (the core of state-space models): ``h_t = a_t ⊙ h_{t−1} + b_t``,
  computed step by step and as a parallel scan in O(log T) steps, with equal outputs.

Conventions (course/CONVENTIONS.md states them once for the whole course):

* masks are boolean, ``True`` = *may attend*; a query with no visible key gets a zero output;
* causal masks are bottom-right aligned: query ``i`` sits at absolute position ``T_k − T_q + i``;
* a sliding window ``w`` lets the query at position ``p`` see keys ``p − w < j ≤ p`` (``w`` keys,
  itself included);
* routing: softmax over all experts, the ``top_k`` largest probabilities (ties to the lower
  expert index), renormalised to sum to 1 unless ``renormalize=False``;
* the load-balancing loss is ``n_experts · Σ_i f_i · P_i`` with ``f_i`` the share of the
  routing assignments that went to expert ``i`` and ``P_i`` its mean router probability;
* the scan's ``h_0`` is the state *before* the first step (zeros by default); outputs are
  ``h_1 … h_T``.

Shapes: ``B`` batch, ``h`` heads, ``T`` tokens (``T_q`` queries, ``T_k`` keys), ``d`` head width,
``E`` experts, ``k`` experts per token, ``N`` tokens flattened, ``D`` the recurrent state width.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .w04_blocks import FeedForward

__all__ = [
    "online_softmax",
    "tiled_attention",
    "sliding_window_mask",
    "kv_cache_bytes",
    "route",
    "expert_counts",
    "load_balancing_loss",
    "MoEFeedForward",
    "moe_param_counts",
    "linear_scan_sequential",
    "linear_scan_parallel",
    "GatedLinearRecurrence",
]


# --------------------------------------------------------------------------- online softmax
def online_softmax(x: torch.Tensor, block_size: int) -> torch.Tensor:
    """Softmax over the last axis, reading it in blocks of ``block_size`` (the last block may be
    shorter) with a running maximum ``m`` and a running sum ``l = Σ exp(x − m)``.

    x: (..., T). Returns (..., T), equal to ``torch.softmax(x, -1)``; an all ``-inf`` row gives
    zeros. When a block raises the maximum from ``m`` to ``m'``, the sum so far is rescaled by
    ``exp(m − m')``. Build it from exp, max and sum (no library softmax).
    """
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    ### BEGIN SOLUTION
    m = x.new_full((*x.shape[:-1], 1), float("-inf"))  # (..., 1) running maximum
    l = x.new_zeros((*x.shape[:-1], 1))  # (..., 1) running Σ exp(x − m)
    for start in range(0, x.size(-1), block_size):
        block = x[..., start : start + block_size]  # (..., ≤ block_size)
        m_new = torch.maximum(m, block.amax(dim=-1, keepdim=True))
        # While every score seen is -inf, shift by 0: (-inf) − (-inf) would be NaN.
        shift = torch.where(torch.isfinite(m_new), m_new, torch.zeros_like(m_new))
        l = l * torch.exp(m - shift) + torch.exp(block - shift).sum(dim=-1, keepdim=True)
        m = m_new
    shift = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    return torch.exp(x - shift) / torch.where(l > 0, l, torch.ones_like(l))
    ### END SOLUTION


# --------------------------------------------------------------------------- tiled attention
def tiled_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    block_q: int = 16,
    block_k: int = 16,
    causal: bool = False,
    window: int | None = None,
    return_lse: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """softmax(q kᵀ / √d) v, one (block_q × block_k) tile of scores at a time (FlashAttention's
    algorithm): each query block keeps a running row maximum ``m``, a running sum ``l`` and an
    unnormalised output ``acc``, rescaled by ``exp(m − m')`` whenever the maximum grows.

    q: (..., T_q, d)   k: (..., T_k, d)   v: (..., T_k, d_v). Block sizes need not divide T.
    ``causal``: bottom-right aligned (query i at position T_k − T_q + i sees keys j ≤ that).
    ``window``: the causal sliding window (implies ``causal``): keys ``p − window < j ≤ p``.
    A tile's scores and its weighted values are matrix products (``@``). Tiles whose every entry
    is masked are skipped, not computed. No tensor of T_q · T_k entries is ever built (not the
    scores, not the weights, not a mask): the extra memory is O(T · d), not O(T²).
    Returns out (..., T_q, d_v); with ``return_lse`` also the log-sum-exp of each query's scaled,
    masked scores (..., T_q) (what FlashAttention keeps for its backward pass; ``-inf`` for a
    query that sees no key, whose output is zero).
    """
    if block_q < 1 or block_k < 1:
        raise ValueError(f"block sizes must be at least 1, got {block_q}, {block_k}")
    if window is not None and window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    ### BEGIN SOLUTION
    T_q, T_k = q.size(-2), k.size(-2)
    scale = 1.0 / math.sqrt(q.size(-1))
    masked = causal or window is not None
    outs, lses = [], []
    for qs in range(0, T_q, block_q):
        q_blk = q[..., qs : qs + block_q, :] * scale  # (..., n, d)
        n = q_blk.size(-2)
        q_pos = torch.arange(qs, qs + n, device=q.device) + (T_k - T_q)  # absolute positions
        m = q.new_full((*q_blk.shape[:-1], 1), float("-inf"))  # (..., n, 1)
        l = q.new_zeros((*q_blk.shape[:-1], 1))  # (..., n, 1)
        acc = q.new_zeros((*q_blk.shape[:-1], v.size(-1)))  # (..., n, d_v)
        for ks in range(0, T_k, block_k):
            k_pos = torch.arange(ks, min(ks + block_k, T_k), device=q.device)
            if masked:
                if int(k_pos[0]) > int(q_pos[-1]):  # every key of the tile is in the future
                    break
                if window is not None and int(k_pos[-1]) <= int(q_pos[0]) - window:  # all too old
                    continue
            s = q_blk @ k[..., ks : ks + block_k, :].transpose(-2, -1)  # (..., n, b) one tile
            if masked:
                keep = k_pos[None, :] <= q_pos[:, None]  # (n, b): built per tile, never T_q × T_k
                if window is not None:
                    keep &= k_pos[None, :] > q_pos[:, None] - window
                s = s.masked_fill(~keep, float("-inf"))
            m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
            shift = torch.where(torch.isfinite(m_new), m_new, torch.zeros_like(m_new))
            p = torch.exp(s - shift)  # (..., n, b)
            rescale = torch.exp(m - shift)  # (..., n, 1): the old sums were taken against m
            l = l * rescale + p.sum(dim=-1, keepdim=True)
            acc = acc * rescale + p @ v[..., ks : ks + block_k, :]
            m = m_new
        outs.append(acc / torch.where(l > 0, l, torch.ones_like(l)))
        shift = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        lses.append((shift + torch.log(l)).squeeze(-1))  # log 0 = -inf for an empty row
    out = torch.cat(outs, dim=-2)  # (..., T_q, d_v)
    return (out, torch.cat(lses, dim=-1)) if return_lse else out
    ### END SOLUTION


# --------------------------------------------------------------------------- sliding window
def sliding_window_mask(T_q: int, T_k: int | None = None, *, window: int, device=None) -> torch.Tensor:
    """Boolean (T_q, T_k) causal sliding-window mask, True where query i may attend to key j.

    Bottom-right aligned like ``causal_mask``: query i sits at absolute position
    ``p = T_k − T_q + i`` and sees keys ``p − window < j ≤ p``, that is the ``window`` most recent
    positions, itself included. ``window ≥ T_k`` gives ``causal_mask(T_q, T_k)``; ``window = 1``
    lets each query see only itself. ``T_k`` defaults to ``T_q``.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    ### BEGIN SOLUTION
    T_k = T_q if T_k is None else T_k
    query_pos = torch.arange(T_q, device=device).unsqueeze(1) + (T_k - T_q)  # (T_q, 1)
    key_pos = torch.arange(T_k, device=device).unsqueeze(0)  # (1, T_k)
    return (key_pos <= query_pos) & (key_pos > query_pos - window)  # (T_q, T_k)
    ### END SOLUTION


def kv_cache_bytes(
    *,
    n_layers: int,
    n_kv_heads: int,
    d_head: int,
    seq_len: int,
    batch: int = 1,
    bytes_per_value: int = 2,
    window: int | None = None,
) -> int:
    """Bytes a KV cache holds after ``seq_len`` tokens: a key and a value vector of ``d_head``
    numbers per layer, per key/value head, per cached position, per sequence of the batch.

    With a sliding ``window`` only the last ``window`` positions are kept (a rolling buffer).
    ``bytes_per_value`` is 2 for float16/bfloat16, 4 for float32. Multi-head attention has
    ``n_kv_heads = n_heads``, grouped-query fewer, multi-query 1. Llama 2 7B (32 layers, 32 kv
    heads, d_head 128) at 4096 tokens in float16: 2,147,483,648 bytes (2 GiB).
    """
    ### BEGIN SOLUTION
    cached = seq_len if window is None else min(seq_len, window)
    return 2 * n_layers * batch * n_kv_heads * d_head * cached * bytes_per_value  # 2: keys and values
    ### END SOLUTION


# --------------------------------------------------------------------------- mixture of experts
def route(logits: torch.Tensor, top_k: int, renormalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k routing: softmax over the experts, then the ``top_k`` largest probabilities.

    logits: (..., E) router scores. Returns weights (..., top_k) (float, same dtype) and experts
    (..., top_k) (int64), ordered by decreasing probability; equal probabilities go to the
    lower expert index first. With ``renormalize`` (Mixtral) the kept weights are divided by
    their sum, so they sum to 1 (the same as a softmax over the top-k logits); without it
    (Switch Transformer, GShard) they are the probabilities themselves.
    """
    if not 1 <= top_k <= logits.size(-1):
        raise ValueError(f"top_k must be between 1 and {logits.size(-1)}, got {top_k}")
    ### BEGIN SOLUTION
    probs = torch.softmax(logits, dim=-1)  # (..., E)
    # A stable descending sort keeps equal probabilities in index order: ties go to the lower index.
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)
    weights, experts = sorted_probs[..., :top_k], order[..., :top_k]  # (..., k)
    if renormalize:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights, experts
    ### END SOLUTION


def expert_counts(experts: torch.Tensor, n_experts: int) -> torch.Tensor:
    """How many routing assignments each expert received: (E,) int64.

    experts: (..., k) expert indices from ``route``; every (token, slot) pair counts once, so the
    counts sum to N · k.
    """
    ### BEGIN SOLUTION
    return torch.bincount(experts.reshape(-1), minlength=n_experts)  # (E,)
    ### END SOLUTION


def load_balancing_loss(router_logits: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """Switch Transformer's auxiliary loss ``E · Σ_i f_i · P_i`` (a scalar).

    router_logits: (..., E) the router's scores for every token; experts: (..., k) the experts
    chosen for each token. ``f_i`` is the share of the N · k assignments that went to expert
    ``i`` (counted, so no gradient flows through it) and ``P_i`` the mean over tokens of the
    router's softmax probability for ``i`` (the differentiable part). Perfect balance gives 1;
    everything on one expert that is also sure of itself gives E.
    """
    ### BEGIN SOLUTION
    n_experts = router_logits.size(-1)
    probs = torch.softmax(router_logits, dim=-1).reshape(-1, n_experts)  # (N, E)
    counts = expert_counts(experts, n_experts).to(probs.dtype)  # (E,)
    f = counts / counts.sum()  # (E,) fraction of assignments; Σ f = 1
    P = probs.mean(dim=0)  # (E,) mean router probability; Σ P = 1
    return n_experts * (f * P).sum()
    ### END SOLUTION


class MoEFeedForward(nn.Module):
    """A sparse mixture-of-experts feed-forward layer, a drop-in for week 4's ``FeedForward``.

    Submodules: ``router`` nn.Linear(d_model, n_experts, bias=False) and ``experts``, an
    nn.ModuleList of ``n_experts`` ``FeedForward(d_model, d_ff, activation, bias)`` (week 4).
    forward(x (..., d_model)) -> (..., d_model): each token is routed with ``route(router(x),
    top_k, renormalize)`` and its output is ``Σ_slots weight · expert(x)`` over its ``top_k``
    experts; an expert runs only on the tokens routed to it. After each call the module keeps
    ``aux_loss`` (the load-balancing loss of that call, a differentiable scalar) and
    ``last_counts`` ((E,) int64, assignments per expert).
    """

    def __init__(
        self,
        d_model: int,
        n_experts: int,
        top_k: int = 2,
        d_ff: int | None = None,
        activation: str = "gelu",
        bias: bool = True,
        renormalize: bool = True,
    ):
        super().__init__()
        if not 1 <= top_k <= n_experts:
            raise ValueError(f"top_k must be between 1 and n_experts={n_experts}, got {top_k}")
        self.d_model, self.n_experts, self.top_k, self.renormalize = d_model, n_experts, top_k, renormalize
        self.aux_loss: torch.Tensor | None = None
        self.last_counts: torch.Tensor | None = None
        ### BEGIN SOLUTION
        self.router = nn.Linear(d_model, n_experts, bias=False)
        self.experts = nn.ModuleList(FeedForward(d_model, d_ff, activation, bias) for _ in range(n_experts))
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        flat = x.reshape(-1, self.d_model)  # (N, d_model)
        logits = self.router(flat)  # (N, E)
        weights, experts = route(logits, self.top_k, self.renormalize)  # (N, k), (N, k)
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            tokens, slots = (experts == e).nonzero(as_tuple=True)  # the tokens routed to e
            if tokens.numel() == 0:
                continue  # an unused expert costs nothing
            y = expert(flat[tokens]) * weights[tokens, slots].unsqueeze(-1)  # (n_e, d_model)
            out = out.index_add(0, tokens, y)  # add: a token has top_k experts
        self.aux_loss = load_balancing_loss(logits, experts)
        self.last_counts = expert_counts(experts, self.n_experts)
        return out.reshape(x.shape)
        ### END SOLUTION


def moe_param_counts(
    d_model: int,
    n_experts: int,
    top_k: int,
    d_ff: int | None = None,
    activation: str = "gelu",
    bias: bool = True,
) -> tuple[int, int]:
    """(total, active) parameters of ``MoEFeedForward(d_model, n_experts, top_k, d_ff,
    activation, bias)``: every expert is stored, but a token passes through only ``top_k`` of them
    (and the router). ``d_ff`` defaults to 4·d_model; SwiGLU experts have three matrices.
    Mixtral-like (4096, 8 experts, top 2, d_ff 14336, swiglu, no bias): (1409318912, 352354304).
    """
    ### BEGIN SOLUTION
    d_ff = 4 * d_model if d_ff is None else d_ff
    n_matrices = 3 if activation == "swiglu" else 2
    expert = n_matrices * d_model * d_ff
    if bias:
        expert += (n_matrices - 1) * d_ff + d_model  # w1 (and w3) biases of d_ff, w2's of d_model
    router = d_model * n_experts  # no bias
    return n_experts * expert + router, top_k * expert + router
    ### END SOLUTION


# --------------------------------------------------------------------------- linear recurrences
def linear_scan_sequential(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """h_t = a_t ⊙ h_{t−1} + b_t for t = 1 … T, one step after the other.

    a, b: (..., T, D) (index t − 1 holds a_t, b_t); h0: (..., D) the state before the first
    step, zeros when None. Returns h_1 … h_T as (..., T, D). T = 0 gives an empty (..., 0, D).
    """
    ### BEGIN SOLUTION
    h = b.new_zeros((*b.shape[:-2], b.size(-1))) if h0 is None else h0  # (..., D)
    states = []
    for t in range(b.size(-2)):
        h = a[..., t, :] * h + b[..., t, :]
        states.append(h)
    return torch.stack(states, dim=-2) if states else b.clone()  # (..., T, D)
    ### END SOLUTION


def linear_scan_parallel(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """The same recurrence as ``linear_scan_sequential``, in ⌈log₂ T⌉ parallel steps.

    Each step t is the affine map h ↦ a_t h + b_t; composing "first (a₁, b₁), then (a₂, b₂)"
    gives (a₂a₁, a₂b₁ + b₂), an associative operation, so all prefixes can be combined as a
    scan (Hillis–Steele: at offset 1, 2, 4, … combine every element with the one ``offset``
    before it, all positions at once). Fold ``h0`` into the first step (b₁ + a₁h₀). Do not divide
    by cumulative products of ``a``: they underflow to 0 within a few dozen steps.
    a, b: (..., T, D); h0: (..., D) or None. Returns (..., T, D), equal to the sequential scan.
    """
    ### BEGIN SOLUTION
    if h0 is not None and b.size(-2) > 0:
        b = torch.cat([b[..., :1, :] + a[..., :1, :] * h0.unsqueeze(-2), b[..., 1:, :]], dim=-2)
    T = b.size(-2)
    offset = 1
    while offset < T:
        # Element t becomes "prefix ending at t − offset, then prefix ending at t" (older first).
        b_new = a[..., offset:, :] * b[..., :-offset, :] + b[..., offset:, :]
        a_new = a[..., offset:, :] * a[..., :-offset, :]
        b = torch.cat([b[..., :offset, :], b_new], dim=-2)
        a = torch.cat([a[..., :offset, :], a_new], dim=-2)
        offset *= 2
    return b.clone() if T == 0 else b  # (..., T, D): h_t with the initial state folded in
    ### END SOLUTION


class GatedLinearRecurrence(nn.Module):
    """A minimal gated linear recurrent layer (the "selective" idea of Mamba-style models with a
    diagonal state): the decay and the input both depend on the token.

    Submodules: ``gate`` nn.Linear(d_model, d_state), ``in_proj`` nn.Linear(d_model, d_state),
    ``out_proj`` nn.Linear(d_state, d_model), all with biases.

        a_t = sigmoid(gate(x_t))                 (per-channel decay in (0, 1))
        b_t = (1 − a_t) ⊙ in_proj(x_t)           (what the token writes)
        h_t = a_t ⊙ h_{t−1} + b_t                (the scan; h_0 = ``h0`` or zeros)
        y_t = out_proj(h_t)

    forward(x (B, T, d_model), h0 (B, d_state) or None, parallel=True) -> (y (B, T, d_model),
    h_T (B, d_state)); ``parallel`` picks ``linear_scan_parallel`` or ``linear_scan_sequential``
    (same result). Feeding the returned state into the next call continues the sequence: a long
    input can be processed in pieces with O(d_state) memory between them.
    """

    def __init__(self, d_model: int, d_state: int):
        super().__init__()
        self.d_model, self.d_state = d_model, d_state
        ### BEGIN SOLUTION
        self.gate = nn.Linear(d_model, d_state)
        self.in_proj = nn.Linear(d_model, d_state)
        self.out_proj = nn.Linear(d_state, d_model)
        ### END SOLUTION

    def forward(
        self, x: torch.Tensor, h0: torch.Tensor | None = None, parallel: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ### BEGIN SOLUTION
        a = torch.sigmoid(self.gate(x))  # (B, T, D)
        b = (1 - a) * self.in_proj(x)  # (B, T, D)
        scan = linear_scan_parallel if parallel else linear_scan_sequential
        h = scan(a, b, h0)  # (B, T, D)
        if x.size(-2) > 0:
            last = h[..., -1, :]
        else:  # nothing happened: the state is what came in
            last = x.new_zeros((*x.shape[:-2], self.d_state)) if h0 is None else h0
        return self.out_proj(h), last
        ### END SOLUTION
