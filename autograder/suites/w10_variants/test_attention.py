"""Week 10 hidden suite, part 1: the online softmax, tiled attention, sliding windows, KV caches.

Expected values come from F.scaled_dot_product_attention, torch.softmax, torch.logsumexp, masks
built by explicit loops and closed forms, on inputs drawn from the grading seed (`gen`).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from autograder.checks import Example, check, check_close, check_equal, convention
from autograder.drivers.w10 import profile_call, tiled_attention_grads
from autograder.suites.w10_variants import oracle

pytestmark = pytest.mark.w10

MASKS = convention("Masks and attention")
# Largest |tiled − F.scaled_dot_product_attention| of the reference over every tile size and 20
# seeds: 6e-7 (float32); 1e-5 leaves a margin of ten.
ATOL = 1e-5
LIBRARY_OPS = ("aten._softmax", "aten._safe_softmax", "aten._log_softmax", "aten.logsumexp")


def randn(gen, *shape, dtype=torch.float32):
    return torch.randn(*shape, generator=gen, dtype=dtype)


def tile_bugs(q, k, v, bq, bk, mask=None):
    """Lazy diagnoses for a tiled-attention mismatch at tile sizes (bq, bk)."""

    def bugs():
        found = [
            (
                oracle.tiled_with_bug(q, k, v, bq, bk, "acc_not_rescaled", mask),
                "the running output is not rescaled: when a tile raises a row's maximum from m to m', "
                "the output accumulated so far must be multiplied by exp(m − m'), like the running sum.",
            ),
            (
                oracle.tiled_with_bug(q, k, v, bq, bk, "sum_not_rescaled", mask),
                "the running sum is not rescaled: when a tile raises a row's maximum from m to m', "
                "the sum l must be multiplied by exp(m − m') before the tile's exponentials are added.",
            ),
            (
                oracle.tiled_with_bug(q, k, v, bq, bk, "per_tile", mask),
                "each tile is normalised by its own softmax and the tile outputs are added: the softmax "
                "runs over all keys of a row, so keep a running maximum and sum and divide once at the end.",
            ),
            (
                oracle.tiled_with_bug(q, k, v, bq, bk, "no_scale", mask),
                "scores are √d too large: did you scale q kᵀ by 1/√d?",
            ),
        ]
        if k.size(-2) % bk:
            found.append(
                (
                    oracle.tiled_with_bug(q, k, v, bq, bk, "drop_last_keys", mask),
                    "the last key block is skipped when the block size does not divide T_k: the last "
                    "tile may be shorter (range(0, T_k, block_k) and slices that stop at T_k).",
                )
            )
        return found

    return bugs


# --------------------------------------------------------------------------- online softmax
@pytest.mark.points(2)
def test_online_softmax_matches_torch(student, gen):
    """online_softmax equals torch.softmax for block sizes 1, 3, 4, T and larger than T"""
    x = randn(gen, 3, 4, 11) * 4
    for block in (1, 3, 4, 11, 16):
        check_close(
            student.online_softmax(x, block),
            torch.softmax(x, dim=-1),
            what=f"online_softmax(x of shape (3, 4, 11), block_size={block})",
            atol=1e-6,
            hint="keep a running max m and sum l; when the max grows to m', l becomes l·exp(m − m') + Σ exp(block − m').",
            diagnose=lambda block=block: [
                (
                    oracle.online_softmax_with_bug(x, block, "no_rescale"),
                    "the running sum is not rescaled when the maximum grows: l must become "
                    "l·exp(m − m') + Σ exp(block − m'), or the early blocks count too much.",
                ),
                (
                    oracle.online_softmax_with_bug(x, block, "per_block"),
                    "each block is normalised on its own: the softmax runs over the whole row, so "
                    "divide by the sum of all blocks at the end.",
                ),
            ],
            example=Example(
                "x = [[0., ln 2, ln 3, ln 4]] with block_size=2",
                torch.tensor([[0.1, 0.2, 0.3, 0.4]]),
                lambda: student.online_softmax(
                    torch.tensor([[0.0, math.log(2), math.log(3), math.log(4)]]), 2
                ),
            ),
        )


@pytest.mark.points(2)
def test_online_softmax_stable_and_masked(student, gen):
    """online_softmax is exact at ±1e4, zero on all -inf rows, and fine when a first block is all -inf"""
    x = randn(gen, 4, 9) * 1e4
    out = student.online_softmax(x, 2)
    check(
        bool(torch.isfinite(out).all()),
        "online_softmax of inputs around ±1e4 returned NaN or inf.",
        "subtract the running maximum inside exp, never exponentiate raw scores.",
    )
    check_close(out, torch.softmax(x, -1), what="online_softmax at ±1e4 (block_size=2)", atol=1e-6)
    y = randn(gen, 3, 8)
    y[0] = float("-inf")  # every key masked: zeros
    y[1, :4] = float("-inf")  # the first two blocks see nothing yet
    y[2, ::2] = float("-inf")
    out = student.online_softmax(y, 2)
    check(
        not torch.isnan(out).any(),
        "online_softmax returned NaN on a row whose first blocks are all -inf (or that is all -inf).",
        "while the running max is still -inf, shift by 0: (-inf) − (-inf) is NaN. "
        + f"A fully masked row gives zeros ({MASKS}).",
    )
    expected = torch.softmax(y, -1).nan_to_num(0.0)
    check_close(
        out,
        expected,
        what="online_softmax with -inf entries (block_size=2)",
        atol=1e-6,
        hint="while the running max is still -inf, shift by 0: (-inf) − (-inf) is NaN, and a NaN sum is "
        f"lost for good ({MASKS}).",
    )


# --------------------------------------------------------------------------- tiled attention
TILES = ((1, 1), (1, 11), (11, 1), (3, 4), (4, 3), (5, 2), (11, 11), (16, 16))


@pytest.mark.points(4)
def test_tiled_matches_sdpa_every_tile_size(student, gen):
    """tiled_attention equals F.scaled_dot_product_attention for every tile size, T not a multiple"""
    q, k, v = randn(gen, 2, 2, 11, 8) * 2, randn(gen, 2, 2, 11, 8) * 2, randn(gen, 2, 2, 11, 5)
    expected = F.scaled_dot_product_attention(q, k, v)
    for bq, bk in TILES:
        check_close(
            student.tiled_attention(q, k, v, bq, bk),
            expected,
            what=f"tiled_attention (B=2, h=2, T=11, d=8) with block_q={bq}, block_k={bk}",
            atol=ATOL,
            hint="per query block: m, l, acc; per key tile: m' = max(m, rowmax), rescale l and acc by "
            "exp(m − m'), add exp(s − m') and exp(s − m') @ v; divide acc by l at the end. Block sizes need "
            "not divide T: the last block of queries or keys may be shorter.",
            diagnose=tile_bugs(q, k, v, bq, bk),
        )
    q2, k2, v2 = randn(gen, 2, 6, 4), randn(gen, 2, 13, 4), randn(gen, 2, 13, 3)
    check_close(
        student.tiled_attention(q2, k2, v2, 4, 5),
        F.scaled_dot_product_attention(q2, k2, v2),
        what="tiled_attention with T_q=6, T_k=13 (3-D inputs, blocks 4 × 5)",
        atol=ATOL,
        diagnose=tile_bugs(q2, k2, v2, 4, 5),
    )


@pytest.mark.points(3)
def test_tiled_causal_bottom_right(student, gen):
    """causal=True equals SDPA with the bottom-right causal mask, T_q = T_k and T_q < T_k (cache)"""
    for T_q, T_k in ((10, 10), (4, 11), (1, 7)):
        q, k, v = randn(gen, 2, T_q, 8), randn(gen, 2, T_k, 8), randn(gen, 2, T_k, 4)
        mask = oracle.window_mask(T_q, T_k, None)
        expected = oracle.attention(q, k, v, mask)
        top_left = torch.ones(T_q, T_k, dtype=torch.bool).tril()
        for bq, bk in ((1, 1), (3, 4), (4, 3), (16, 16)):
            check_close(
                student.tiled_attention(q, k, v, bq, bk, causal=True),
                expected,
                what=f"causal tiled_attention, T_q={T_q}, T_k={T_k}, blocks {bq} × {bk}",
                atol=ATOL,
                hint="query i sits at absolute position T_k − T_q + i and sees keys j ≤ that position; "
                "skip a tile only when its first key is after the block's last query.",
                diagnose=lambda q=q, k=k, v=v, top_left=top_left, bq=bq, bk=bk, mask=mask: [
                    (
                        oracle.attention(q, k, v, top_left),
                        "the causal mask is top-left aligned (j ≤ i): with fewer queries than keys, query "
                        f"i sits at position T_k − T_q + i ({MASKS}).",
                    ),
                    (
                        oracle.attention(q, k, v, mask.tril(mask.size(1) - mask.size(0) - 1)),
                        f"the causal mask leaves out the diagonal: a query sees its own key, j ≤ p ({MASKS}).",
                    ),
                    *tile_bugs(q, k, v, bq, bk, mask)(),
                ],
            )


@pytest.mark.points(3)
def test_tiled_sliding_window(student, gen):
    """window=w equals SDPA with the causal sliding-window mask (w keys, itself included)"""
    T_q, T_k = 9, 12
    q, k, v = randn(gen, 2, T_q, 8), randn(gen, 2, T_k, 8), randn(gen, 2, T_k, 4)
    for window in (1, 3, 5, 20):
        mask = oracle.window_mask(T_q, T_k, window)
        expected = oracle.attention(q, k, v, mask)
        for bq, bk in ((1, 1), (2, 3), (4, 4), (16, 16)):
            wider = oracle.window_mask(T_q, T_k, window + 1)
            narrower = oracle.window_mask(T_q, T_k, window - 1) if window > 1 else None
            check_close(
                student.tiled_attention(q, k, v, bq, bk, window=window),
                expected,
                what=f"tiled_attention with window={window}, T_q={T_q}, T_k={T_k}, blocks {bq} × {bk}",
                atol=ATOL,
                hint="the query at position p sees keys p − window < j ≤ p; skip only tiles that lie "
                "wholly before p − window + 1 for every query of the block (or wholly in the future).",
                diagnose=lambda wider=wider, narrower=narrower, window=window: [
                    (
                        oracle.attention(q, k, v, wider),
                        f"the window is off by one: with window={window} a query sees exactly {window} key(s), "
                        f"its own included (p − window < j ≤ p), not window + 1 ({MASKS}).",
                    ),
                    *(
                        []
                        if narrower is None
                        else [
                            (
                                oracle.attention(q, k, v, narrower),
                                f"the window is off by one: with window={window} a query sees exactly "
                                f"{window} key(s), its own included (p − window < j ≤ p), not window − 1 ({MASKS}).",
                            )
                        ]
                    ),
                    (
                        oracle.attention(q, k, v, None),
                        "the window is ignored: with window=w a query sees only the w most recent keys.",
                    ),
                    (
                        oracle.attention(q, k, v, oracle.window_mask(T_q, T_k, None)),
                        "the window is ignored (only the causal mask is applied): with window=w a query sees "
                        "only the w most recent keys.",
                    ),
                ],
            )


@pytest.mark.points(2)
def test_tiled_lse_and_empty_rows(student, gen):
    """return_lse gives log Σ exp(scores); a query that sees no key gets zeros and -inf, no NaN"""
    q, k, v = randn(gen, 2, 7, 8), randn(gen, 2, 7, 8), randn(gen, 2, 7, 3)
    out, lse = student.tiled_attention(q, k, v, 3, 2, return_lse=True)
    check_close(out, F.scaled_dot_product_attention(q, k, v), what="output with return_lse=True", atol=ATOL)
    check_close(
        lse,
        oracle.logsumexp(q, k),
        what="log-sum-exp of each query's scaled scores (blocks 3 × 2)",
        atol=1e-5,
        hint="lse = m + log l with the final running max m and sum l (scores already scaled by 1/√d).",
    )
    # More queries than keys under the causal mask: the first T_q − T_k queries see nothing.
    T_q, T_k = 8, 5
    q, k, v = randn(gen, 2, T_q, 4), randn(gen, 2, T_k, 4), randn(gen, 2, T_k, 3)
    mask = oracle.window_mask(T_q, T_k, None)
    out, lse = student.tiled_attention(q, k, v, 3, 2, causal=True, return_lse=True)
    check(
        not torch.isnan(out).any(),
        "causal tiled_attention with T_q > T_k returned NaN for the queries that see no key.",
        f"a query with every key masked gets a zero output, never NaN ({MASKS}).",
    )
    check_close(out, oracle.attention(q, k, v, mask), what=f"causal output, T_q={T_q} > T_k={T_k}", atol=ATOL)
    check_close(lse, oracle.logsumexp(q, k, mask), what=f"causal lse, T_q={T_q} > T_k={T_k} (-inf rows)")


@pytest.mark.points(2)
def test_tiled_gradients(submission, gen):
    """Gradients through causal tiled attention equal PyTorch's"""
    q, k, v = randn(gen, 2, 9, 4), randn(gen, 2, 9, 4), randn(gen, 2, 9, 3)
    upstream = randn(gen, 2, 9, 3)
    got = submission.run(
        tiled_attention_grads,
        submission.module(),
        q,
        k,
        v,
        upstream,
        {"block_q": 4, "block_k": 3, "causal": True},
    )
    qq, kk, vv = (t.clone().requires_grad_(True) for t in (q, k, v))
    (F.scaled_dot_product_attention(qq, kk, vv, is_causal=True) * upstream).sum().backward()
    for name, g, e in zip("qkv", got, (qq.grad, kk.grad, vv.grad)):
        check(g is not None, f"no gradient reached {name}: is the graph cut (detach, .data, no_grad)?")
        check_close(
            g,
            e,
            what=f"d(out)/d{name} through causal tiled attention",
            atol=1e-5,
            rtol=1e-4,
            hint="avoid in-place edits of tensors autograd still needs (collect the blocks and torch.cat).",
        )


@pytest.mark.points(3)
def test_tiled_never_materialises_scores(student, submission, gen):
    """With small tiles no tensor of T_q · T_k entries is built, and no library softmax runs"""
    T, d = 64, 4
    q, k, v = randn(gen, 1, 1, T, d), randn(gen, 1, 1, T, d), randn(gen, 1, 1, T, d)
    student.tiled_attention(q[..., :4, :], k[..., :4, :], v[..., :4, :], 2, 2)  # the stub earns nothing
    for kwargs in ({}, {"causal": True}):
        facts = submission.run(profile_call, student, "tiled_attention", (q, k, v, 8, 8), kwargs)
        label = "causal " if kwargs else ""
        used = [op for op in facts["names"] if op in LIBRARY_OPS or op.startswith("aten._scaled_dot_product")]
        check(
            not used,
            f"tiled_attention ran PyTorch's own softmax or attention ({', '.join(used)}): the online "
            "softmax (running max and sum) is the point of the exercise.",
        )
        check(
            facts["largest"] < T * T // 2,
            f"{label}tiled_attention(T={T}, d={d}, blocks 8 × 8) built a tensor of {facts['largest']} "
            f"elements; the whole (T_q, T_k) score matrix has {T * T}. Tiling exists so that it never "
            "exists: scores, weights and masks are made one 8 × 8 tile at a time, so the extra memory "
            "is O(T · d), not O(T²).",
            "build each tile's mask from positions (arange of the tile's queries and keys), not by slicing "
            "a full causal_mask.",
        )
    facts = submission.run(profile_call, student, "online_softmax", (randn(gen, 3, 10), 4), {})
    used = [op for op in facts["names"] if op in LIBRARY_OPS]
    check(
        not used,
        f"online_softmax ran PyTorch's own softmax ({', '.join(used)}): build it from exp, max and sum.",
    )


@pytest.mark.points(2)
def test_tiled_skips_masked_tiles(student, submission, gen):
    """Causal and windowed tiled attention skip the tiles that are wholly masked (fewer products)"""
    T, d = 64, 4
    q, k, v = randn(gen, 1, T, d), randn(gen, 1, T, d), randn(gen, 1, T, d)
    student.tiled_attention(q[:, :4], k[:, :4], v[:, :4], 2, 2)  # the stub earns nothing
    full = submission.run(profile_call, student, "tiled_attention", (q, k, v, 8, 8), {})["matmul_flops"]
    check(full > 0, "tiled_attention did no matrix product: use q_tile @ k_tileᵀ and p @ v_tile.")
    causal = submission.run(profile_call, student, "tiled_attention", (q, k, v, 8, 8), {"causal": True})
    # 36 of the 64 tiles of an 8 × 8 grid touch the lower triangle: 56% of the work.
    check(
        causal["matmul_flops"] <= 0.7 * full,
        f"causal tiled_attention (T={T}, blocks 8 × 8) did {causal['matmul_flops'] / full:.0%} of the "
        "non-causal matrix products: tiles wholly above the diagonal (every key in the future of every "
        "query of the block) must be skipped, not computed and masked.",
        "a key tile whose first key comes after the block's last query has nothing to add.",
    )
    window = submission.run(profile_call, student, "tiled_attention", (q, k, v, 8, 8), {"window": 8})
    # With window 8 each query block needs at most 2 key tiles of 8: 15 of 64 tiles, 23%.
    check(
        window["matmul_flops"] <= 0.4 * full,
        f"tiled_attention with window=8 (T={T}, blocks 8 × 8) did {window['matmul_flops'] / full:.0%} of "
        "the full matrix products: tiles wholly older than the window must be skipped too; that is what "
        "makes a sliding window cost O(T · window) instead of O(T²).",
    )


@pytest.mark.points(1)
def test_tiled_leading_dims_and_dtype(student, gen):
    """Works on 2-D (T, d) inputs and keeps float64"""
    q, k, v = randn(gen, 5, 4), randn(gen, 7, 4), randn(gen, 7, 2)
    check_close(
        student.tiled_attention(q, k, v, 2, 3),
        F.scaled_dot_product_attention(q, k, v),
        what="tiled_attention on 2-D inputs",
        atol=ATOL,
        hint="use the axes -2 and -1 only; the leading axes are batch axes.",
    )
    q, k, v = (randn(gen, 2, 3, 6, 4, dtype=torch.float64) for _ in range(3))
    check_close(
        student.tiled_attention(q, k, v, 4, 4, causal=True),
        F.scaled_dot_product_attention(q, k, v, is_causal=True),
        what="causal tiled_attention in float64",
        atol=1e-10,
        hint="create the running tensors with q.new_zeros / new_full so they keep the input dtype.",
    )


# --------------------------------------------------------------------------- sliding window mask
@pytest.mark.points(3)
def test_sliding_window_mask(student, gen):
    """sliding_window_mask: w keys, itself included, bottom-right aligned, bool; w ≥ T_k is causal"""
    T = int(torch.randint(6, 10, (1,), generator=gen))
    cases = [(T, None, 3), (T, None, 1), (3, T, 2), (1, T, 4), (T, None, T), (T, None, T + 5), (4, T, 5)]
    for T_q, T_k, window in cases:
        got = student.sliding_window_mask(T_q, T_k, window=window)
        tk = T_q if T_k is None else T_k
        expected = oracle.window_mask(T_q, tk, window)
        top_left = torch.stack([torch.tensor([i - window < j <= i for j in range(tk)]) for i in range(T_q)])
        # Both ways (|i − j| < window): defined for square masks only.
        band = expected | expected.T if T_q == tk else torch.zeros(0)
        check_equal(
            got,
            expected,
            what=f"sliding_window_mask({T_q}, {T_k}, window={window})",
            hint="query i is at p = T_k − T_q + i and sees keys j with p − window < j ≤ p.",
            diagnose=[
                (
                    oracle.window_mask(T_q, tk, window + 1),
                    f"the window is off by one: with window={window} a query sees exactly {window} key(s), "
                    f"its own included (p − window < j ≤ p), not window + 1 ({MASKS}).",
                ),
                (
                    oracle.window_mask(T_q, tk, max(window - 1, 0) or None)
                    if window > 1
                    else torch.zeros(T_q, tk, dtype=torch.bool),
                    f"the window is off by one: with window={window} a query sees exactly {window} key(s), "
                    f"its own included (p − window < j ≤ p), not window − 1 ({MASKS}).",
                ),
                (
                    top_left,
                    f"the window is top-left aligned: with fewer queries than keys, query i sits at "
                    f"position T_k − T_q + i, as in causal_mask ({MASKS}).",
                ),
                (
                    ~expected,
                    f"the mask is inverted: True means *may attend* ({MASKS}).",
                ),
                (
                    band,
                    f"the window is not causal: it looks both ways; a sliding window here sees only the "
                    f"past and the query itself ({MASKS}).",
                ),
            ],
            example=Example(
                "sliding_window_mask(4, window=2)",
                torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]], dtype=torch.bool),
                lambda: student.sliding_window_mask(4, window=2),
            ),
        )


@pytest.mark.points(2)
def test_kv_cache_bytes(student, gen):
    """kv_cache_bytes: 2 (keys and values) · layers · batch · kv heads · d_head · cached positions · bytes"""
    cases = [
        # Llama 2 7B, multi-head: 32 layers, 32 kv heads of 128, 4096 tokens, float16: 2 GiB.
        dict(n_layers=32, n_kv_heads=32, d_head=128, seq_len=4096),
        # Grouped-query (8 kv heads) with a 4096-token window at 32768 tokens, batch 3, float32.
        dict(n_layers=32, n_kv_heads=8, d_head=128, seq_len=32768, batch=3, bytes_per_value=4, window=4096),
        # Multi-query, a window longer than the sequence (nothing dropped yet).
        dict(n_layers=5, n_kv_heads=1, d_head=64, seq_len=100, window=4096),
    ]
    n = int(torch.randint(2, 9, (1,), generator=gen))
    cases.append(dict(n_layers=n, n_kv_heads=3, d_head=10, seq_len=7 * n, batch=2, window=n))
    for kw in cases:
        cached = kw["seq_len"] if kw.get("window") is None else min(kw["seq_len"], kw["window"])
        expected = (
            2 * kw["n_layers"] * kw.get("batch", 1) * kw["n_kv_heads"] * kw["d_head"] * cached
        ) * kw.get("bytes_per_value", 2)
        args = ", ".join(f"{k}={v}" for k, v in kw.items())
        check_equal(
            student.kv_cache_bytes(**kw),
            expected,
            what=f"kv_cache_bytes({args})",
            hint="one key and one value vector of d_head numbers per layer, batch row, kv head and "
            "cached position; a window keeps only the last `window` positions.",
            diagnose=[
                (expected // 2, "only the keys are counted: the cache holds keys and values (a factor 2)."),
                (
                    expected * kw["seq_len"] // cached,
                    "the window is ignored: a sliding-window cache keeps only the last `window` positions.",
                ),
            ],
        )
