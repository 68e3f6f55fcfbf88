"""Week 1 hidden suite: scaled dot-product attention, masks, additive attention, one head.

Expected values come from PyTorch built-ins or closed forms computed here, on inputs drawn
from the grading seed (`gen`). The submission only ever runs behind `student` / `submission`.
"""

from __future__ import annotations

import ast
import math

import pytest
import torch
import torch.nn.functional as F

from autograder.checks import GradingFailure, check, check_close, check_equal
from autograder.drivers.w01 import attention_grads, library_ops

pytestmark = pytest.mark.w01

SCALE_HINT = "scores are q·k / √d_k, with d_k the last dimension of q."


def randn(gen, *shape, dtype=torch.float32):
    return torch.randn(*shape, generator=gen, dtype=dtype)


def random_mask(gen, *shape):
    """Random boolean mask with at least one True per query row."""
    mask = torch.rand(*shape, generator=gen) < 0.6
    mask[..., 0] |= ~mask.any(-1)
    return mask


def oracle_sdpa(q, k, v, mask=None):
    """Reference attention and weights (PyTorch's fused op for out, closed form for weights)."""
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return out, torch.softmax(scores, dim=-1)


def classic_bugs(q, k, v, mask=None):
    """Outputs of the classic mistakes, so a matching submission is told which one it made."""
    d = q.size(-1)
    raw = q @ k.transpose(-2, -1)

    def attend(scores, m=mask, dim=-1):
        if m is not None:
            scores = scores.masked_fill(~m, float("-inf"))
        return torch.softmax(scores, dim=dim) @ v

    bugs = [
        (attend(raw), "scores are √d_k too large: did you scale by 1/√d_k?"),
        (attend(raw / d), "scores are scaled by 1/d_k; the scale is 1/√d_k."),
        (attend(raw * math.sqrt(d)), "scores are multiplied by √d_k instead of divided by it."),
        (
            attend(raw / math.sqrt(d), dim=-2),
            "weights sum over the query axis, not the key axis: softmax(dim=-1).",
        ),
    ]
    if mask is not None:
        bugs.append((attend(raw / math.sqrt(d), ~mask), "the mask is inverted: True means *may attend*."))
        after = torch.softmax(raw / math.sqrt(d), dim=-1) * mask
        bugs.append(
            (after @ v, "the mask is applied after softmax, so rows no longer sum to 1: mask the scores.")
        )
    return bugs


# --------------------------------------------------------------------------- softmax
@pytest.mark.points(2)
def test_softmax_matches_torch(student, gen):
    """softmax equals torch.softmax on random inputs along every dim"""
    x = randn(gen, 3, 4, 5) * 3
    for dim in (-1, 0, 1):
        check_close(
            student.softmax(x, dim=dim),
            torch.softmax(x, dim=dim),
            what=f"softmax(x of shape (3, 4, 5), dim={dim})",
            hint="normalise along `dim` only: exp(x - max) / sum(exp(x - max)) with keepdim=True.",
        )


@pytest.mark.points(2)
def test_softmax_is_stable(student, gen):
    """softmax is exact at inputs of ±1e4 (max subtracted first)"""
    x = randn(gen, 4, 6) * 1e4
    out = student.softmax(x)
    check(
        not torch.isnan(out).any(),
        "softmax of inputs around ±1e4 contains NaN.",
        "exp overflows: subtract the row maximum before exponentiating.",
    )
    check_close(out, torch.softmax(x, dim=-1), what="softmax at ±1e4", atol=1e-6)
    check_close(
        student.softmax(x[:1, :] + 100.0),
        torch.softmax(x[:1, :], dim=-1),
        what="softmax(x + 100)",
        atol=1e-6,
        hint="softmax is shift-invariant; subtracting the max makes that exact.",
    )


@pytest.mark.points(1)
def test_softmax_all_masked_row(student):
    """An all -inf row gives zeros, not NaN"""
    x = torch.tensor([[0.0, 1.0, 2.0], [float("-inf")] * 3])
    out = student.softmax(x)
    check(
        not torch.isnan(out).any(),
        "softmax of an all -inf row returned NaN.",
        "when the max is -inf, shift by 0 instead, and divide by 1 where the sum is 0.",
    )
    check_close(out[1], torch.zeros(3), what="softmax of an all -inf row")


# --------------------------------------------------------------------------- masks
@pytest.mark.points(1)
def test_causal_mask_square(student, gen):
    """causal_mask(T) is the lower triangle with the diagonal, dtype bool"""
    T = int(torch.randint(4, 12, (1,), generator=gen))
    mask = student.causal_mask(T)
    expected = torch.ones(T, T, dtype=torch.bool).tril()
    diagnose = "the diagonal is excluded: a token must attend to itself (j <= i)."
    if (
        isinstance(mask, torch.Tensor)
        and mask.shape == expected.shape
        and torch.equal(mask, expected.tril(-1))
    ):
        raise GradingFailure(f"causal_mask({T}): {diagnose}")
    if isinstance(mask, torch.Tensor) and mask.shape == expected.shape and torch.equal(mask, ~expected):
        raise GradingFailure(f"causal_mask({T}): inverted: True must mean *may attend*.")
    check_equal(
        mask, expected, what=f"causal_mask({T})", hint="True where key j <= query i; dtype torch.bool."
    )


@pytest.mark.points(2)
def test_causal_mask_bottom_right(student, gen):
    """causal_mask(T_q, T_k) with T_q < T_k is bottom-right aligned"""
    T_k = int(torch.randint(5, 10, (1,), generator=gen))
    for T_q in (1, 3, T_k):
        mask = student.causal_mask(T_q, T_k)
        expected = torch.ones(T_q, T_k, dtype=torch.bool).tril(T_k - T_q)
        if (
            T_q < T_k
            and isinstance(mask, torch.Tensor)
            and torch.equal(mask, torch.ones(T_q, T_k, dtype=torch.bool).tril())
        ):
            raise GradingFailure(
                f"causal_mask({T_q}, {T_k}) is top-left aligned: query i sits at position T_k - T_q + i, "
                "so a single cached query attends to every key."
            )
        check_equal(
            mask,
            expected,
            what=f"causal_mask({T_q}, {T_k})",
            hint="query i is at absolute position T_k - T_q + i.",
        )


@pytest.mark.points(1)
def test_padding_mask(student, gen):
    """padding_mask marks real tokens True"""
    lengths = torch.randint(0, 9, (5,), generator=gen)
    expected = torch.arange(9)[None, :] < lengths[:, None]
    check_equal(
        student.padding_mask(lengths, 9),
        expected,
        what=f"padding_mask({lengths.tolist()}, 9)",
        hint="row b is True at positions < lengths[b].",
    )


# --------------------------------------------------------------------------- attention
@pytest.mark.points(3)
def test_sdpa_matches_pytorch_3d(student, gen):
    """Output and weights equal PyTorch's on random 3-D inputs"""
    q, k, v = randn(gen, 2, 5, 16), randn(gen, 2, 7, 16), randn(gen, 2, 7, 3)
    out, weights = student.scaled_dot_product_attention(q, k, v)
    expected_out, expected_w = oracle_sdpa(q, k, v)
    check_close(
        out,
        expected_out,
        what="attention output (B=2, T_q=5, T_k=7, d_k=16)",
        hint=SCALE_HINT,
        diagnose=classic_bugs(q, k, v),
    )
    check_close(
        weights,
        expected_w,
        what="attention weights",
        hint="weights = softmax over keys of the scaled scores.",
    )


@pytest.mark.points(3)
def test_sdpa_matches_pytorch_4d_masked(student, gen):
    """Equal to PyTorch's with a random boolean mask on 4-D (B, h, T, d) inputs"""
    q, k, v = randn(gen, 2, 3, 6, 8), randn(gen, 2, 3, 6, 8), randn(gen, 2, 3, 6, 5)
    mask = random_mask(gen, 2, 3, 6, 6)
    out, weights = student.scaled_dot_product_attention(q, k, v, mask)
    expected_out, expected_w = oracle_sdpa(q, k, v, mask)
    check_close(
        out,
        expected_out,
        what="masked attention output (B=2, h=3, T=6, d_k=8)",
        hint="masked_fill(~mask, -inf) on the scores, before softmax; transpose only the last two axes of k.",
        diagnose=classic_bugs(q, k, v, mask),
    )
    check_close(weights, expected_w, what="masked attention weights")
    check(bool((weights[~mask] == 0).all()), "masked positions must get exactly zero weight.")


@pytest.mark.points(1)
def test_sdpa_any_leading_dims(student, gen):
    """Works with no batch dim and with three leading dims; keeps float64"""
    q, k, v = randn(gen, 4, 8), randn(gen, 6, 8), randn(gen, 6, 2)
    check_close(
        student.scaled_dot_product_attention(q, k, v)[0], oracle_sdpa(q, k, v)[0], what="2-D attention"
    )
    q, k, v = (randn(gen, 2, 2, 3, 4, 8, dtype=torch.float64) for _ in range(3))
    check_close(
        student.scaled_dot_product_attention(q, k, v)[0],
        oracle_sdpa(q, k, v)[0],
        what="5-D float64 attention",
        atol=1e-10,
        hint="use -2/-1 axes (k.transpose(-2, -1)) and keep the input dtype.",
    )


@pytest.mark.points(2)
def test_sdpa_broadcasts_masks(student, gen):
    """A (T_q, T_k) mask and a (B, 1, T_k) padding mask broadcast over the batch"""
    B, T = 3, 6
    q, k, v = randn(gen, B, T, 8), randn(gen, B, T, 8), randn(gen, B, T, 4)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    check_close(
        student.scaled_dot_product_attention(q, k, v, causal)[0],
        oracle_sdpa(q, k, v, causal)[0],
        what="attention with a (T, T) causal mask",
    )
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    pad = (torch.arange(T)[None, :] < lengths[:, None])[:, None, :]  # (B, 1, T)
    check_close(
        student.scaled_dot_product_attention(q, k, v, pad)[0],
        oracle_sdpa(q, k, v, pad)[0],
        what="attention with a (B, 1, T_k) padding mask",
    )


@pytest.mark.points(2)
def test_fully_masked_rows_are_zero(student, gen):
    """A query with every key masked gets zero weights and zero output, never NaN"""
    q, k, v = randn(gen, 2, 4, 8), randn(gen, 2, 5, 8), randn(gen, 2, 5, 3)
    mask = random_mask(gen, 2, 4, 5)
    mask[0, 1] = False
    mask[1, 3] = False
    out, weights = student.scaled_dot_product_attention(q, k, v, mask)
    check(
        not torch.isnan(out).any() and not torch.isnan(weights).any(),
        "a fully masked query row produced NaN.",
        "softmax of an all -inf row must return zeros.",
    )
    check_close(weights[0, 1], torch.zeros(5), what="weights of a fully masked row")
    check_close(out[1, 3], torch.zeros(3), what="output of a fully masked row")
    keep = torch.ones(2, 4, dtype=torch.bool)
    keep[0, 1] = keep[1, 3] = False
    check_close(out[keep], oracle_sdpa(q, k, v, mask)[0][keep], what="output of the other rows")


@pytest.mark.points(2)
def test_sdpa_stable_at_large_scores(student, gen):
    """No NaN or inf when scores reach ±1e4"""
    q, k, v = randn(gen, 2, 5, 4) * 100, randn(gen, 2, 5, 4) * 100, randn(gen, 2, 5, 3)
    out, weights = student.scaled_dot_product_attention(q, k, v)
    check(
        bool(torch.isfinite(out).all()),
        "attention with scores around ±1e4 returned NaN or inf.",
        "subtract the row max inside softmax.",
    )
    check_close(out, oracle_sdpa(q, k, v)[0], what="attention at large scores", atol=1e-4, rtol=1e-4)


@pytest.mark.points(2)
def test_sdpa_gradients(submission, gen):
    """Gradients with respect to q, k and v equal PyTorch's"""
    q, k, v = randn(gen, 2, 5, 8), randn(gen, 2, 5, 8), randn(gen, 2, 5, 4)
    upstream = randn(gen, 2, 5, 4)
    got = submission.run(attention_grads, submission.module(), q, k, v, upstream)
    qq, kk, vv = (t.clone().requires_grad_(True) for t in (q, k, v))
    (F.scaled_dot_product_attention(qq, kk, vv) * upstream).sum().backward()
    for name, g, e in zip("qkv", got, (qq.grad, kk.grad, vv.grad)):
        check(g is not None, f"no gradient reached {name}: is the graph cut (detach, .data, numpy)?")
        check_close(
            g,
            e,
            what=f"d(out)/d{name}",
            atol=1e-5,
            rtol=1e-4,
            hint="avoid in-place edits of tensors autograd needs.",
        )


@pytest.mark.points(2)
def test_single_cached_query_sees_every_key(student, gen):
    """With causal_mask(1, T_k) the last query attends to all keys (KV-cache decoding)"""
    T = 7
    q, k, v = randn(gen, 2, T, 8), randn(gen, 2, T, 8), randn(gen, 2, T, 4)
    full, _ = oracle_sdpa(q, k, v, torch.ones(T, T, dtype=torch.bool).tril())
    mask = student.causal_mask(1, T)
    out, _ = student.scaled_dot_product_attention(q[:, -1:], k, v, mask)
    check_close(
        out,
        full[:, -1:],
        what="last query's output with causal_mask(1, T_k)",
        hint="bottom-right alignment: the one query is at position T_k - 1.",
    )


# --------------------------------------------------------------------------- modules
@pytest.mark.points(2)
def test_additive_attention_parameters(submission):
    """AdditiveAttention(5, 7, 6) has d_hidden·(d_query + d_key + 1) = 78 parameters, no biases"""
    sd = submission.module().AdditiveAttention(5, 7, 6).state_dict()
    total = sum(t.numel() for t in sd.values())
    shapes = sorted(tuple(t.shape) for t in sd.values())
    check(
        total == 78,
        f"AdditiveAttention(5, 7, 6) has {total} parameters, expected 78 (shapes {shapes}).",
        "W_q (6×5), W_k (6×7) and v (1×6), all without bias.",
    )


def _additive_oracle(sd, query, keys, mask):
    by_shape = {tuple(t.shape): t for t in sd.values()}
    W_q, W_k, v = by_shape[(6, 5)], by_shape[(6, 7)], by_shape[(1, 6)]
    scores = (torch.tanh((query @ W_q.T)[:, None, :] + keys @ W_k.T) @ v.T).squeeze(-1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return (weights[..., None] * keys).sum(1), weights


@pytest.mark.points(3)
def test_additive_attention_forward(submission, gen):
    """Bahdanau scores vᵀ tanh(W_q q + W_k k_j), softmax over keys, context = Σ α_j k_j"""
    module = submission.module().AdditiveAttention(5, 7, 6)
    sd = {name: randn(gen, *t.shape) for name, t in module.state_dict().items()}
    check(
        {tuple(t.shape) for t in sd.values()} >= {(6, 5), (6, 7), (1, 6)},
        "expected weights of shapes (6, 5), (6, 7) and (1, 6) for AdditiveAttention(5, 7, 6).",
    )
    module.load_state_dict(sd)
    query, keys = randn(gen, 3, 5), randn(gen, 3, 4, 7)
    mask = random_mask(gen, 3, 4)
    for m in (None, mask):
        context, weights = module(query, keys, m) if m is not None else module(query, keys)
        expected_c, expected_w = _additive_oracle(sd, query, keys, m)
        label = "with a mask" if m is not None else "without a mask"
        check_close(
            weights,
            expected_w,
            what=f"additive attention weights {label}",
            hint="e_j = vᵀ tanh(W_q q + W_k k_j); softmax over the T keys; masked keys get -inf.",
        )
        check_close(context, expected_c, what=f"additive attention context {label}")


def _head_weights(gen, d_model, d_head):
    return {
        f"{n}.weight": randn(gen, d_head, d_model) / math.sqrt(d_model) for n in ("query", "key", "value")
    }


@pytest.mark.points(3)
def test_self_attention_head_matches_pytorch(submission, gen):
    """SelfAttentionHead equals F.scaled_dot_product_attention on its own projections"""
    module = submission.module()
    for causal in (False, True):
        head = module.SelfAttentionHead(12, 4, causal=causal)
        sd = _head_weights(gen, 12, 4)
        names = sorted(head.state_dict().keys())
        check(
            names == sorted(sd),
            f"SelfAttentionHead parameters are {names}; expected {sorted(sd)} (see the docstring).",
        )
        head.load_state_dict(sd)
        x = randn(gen, 2, 6, 12)
        q, k, v = (x @ sd[f"{n}.weight"].T for n in ("query", "key", "value"))
        expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        check_close(
            head(x),
            expected,
            what=f"SelfAttentionHead(12, 4, causal={causal})",
            hint="q, k and v are three bias-free projections of the same x; causal=True adds causal_mask(T).",
        )


@pytest.mark.points(3)
def test_causal_head_ignores_the_future(submission, gen):
    """Changing later tokens leaves earlier outputs bit-identical; without causal they change"""
    module = submission.module()
    x = randn(gen, 2, 8, 12)
    t = int(torch.randint(2, 7, (1,), generator=gen))
    x2 = x.clone()
    x2[:, t:] = randn(gen, 2, 8 - t, 12)
    causal = module.SelfAttentionHead(12, 4, causal=True)
    a, b = causal(x), causal(x2)
    check(
        torch.equal(a[:, :t], b[:, :t]),
        f"changing tokens {t}… changed the causal head's outputs at positions < {t}: the future leaks.",
        "mask with causal_mask(T) (True on and below the diagonal) before the softmax.",
    )
    plain = module.SelfAttentionHead(12, 4, causal=False)
    c, d = plain(x), plain(x2)
    check(
        not torch.allclose(c[:, :t], d[:, :t]),
        "with causal=False the head ignored later tokens: it must attend to every position.",
    )


# --------------------------------------------------------------------------- built, not borrowed
FORBIDDEN = {
    "scaled_dot_product_attention": "F.scaled_dot_product_attention",
    "softmax": "a library softmax (torch.softmax / F.softmax / Tensor.softmax)",
    "MultiheadAttention": "nn.MultiheadAttention",
    "multi_head_attention_forward": "F.multi_head_attention_forward",
}


# ATen operators that mean a library softmax or attention ran, whatever Python spelled it.
LIBRARY_OPS = (
    "aten._softmax",
    "aten._safe_softmax",
    "aten._log_softmax",
    "aten._native_multi_head_attention",
)


@pytest.mark.points(2)
def test_builds_softmax_and_attention_itself(submission, student, gen):
    """The week builds softmax and attention: no library attention or softmax call"""
    q = randn(gen, 2, 3, 4)
    # Only code that exists is checked: the untouched stub earns nothing here.
    student.softmax(q)
    student.scaled_dot_product_attention(q, q, q)
    # Behaviour first: the operators the functions reach at PyTorch's dispatcher, which sees a
    # library softmax however it was looked up. (Code that switches the recorder off on purpose
    # is beyond what any test can see; the source check below names the line for the rest.)
    mask = torch.ones(3, 3, dtype=torch.bool).tril()
    calls = [
        ("softmax", (q,)),
        ("scaled_dot_product_attention", (q, q, q)),
        ("scaled_dot_product_attention", (q, q, q, mask)),
    ]
    ops = submission.run(library_ops, student, calls)
    used = [op for op in ops if op in LIBRARY_OPS or op.startswith("aten._scaled_dot_product")]
    check(
        not used,
        f"your softmax / attention ran PyTorch's own ({', '.join(used)}): this week asks you to build "
        "them from exp, sum and matrix products.",
    )
    tree = ast.parse(submission.source())
    offences = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in FORBIDDEN
            and not (isinstance(node.func.value, ast.Name) and node.func.value.id == "self")  # own method
        ):
            offences.append(f"line {node.lineno}: {FORBIDDEN[node.func.attr]}")
        if isinstance(node, ast.ImportFrom) and any(a.name in FORBIDDEN for a in node.names):
            offences.append(f"line {node.lineno}: imports {', '.join(a.name for a in node.names)}")
    check(not offences, "this week asks you to build these yourself; found " + "; ".join(offences) + ".")
