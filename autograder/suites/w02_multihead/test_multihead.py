"""Week 2 hidden suite: head splitting, multi-head attention, masks, cross-attention, dropout,
parameter counts and grouped-query attention.

The main oracle is ``torch.nn.MultiheadAttention`` with the submission's weights copied in.
Its masks mean the opposite of ours (True = *ignore*), so every mask is passed to it inverted.
Classic mistakes are recomputed here (``mha_variant``) so a matching submission is told which
one it made. Inputs are drawn from the grading seed (``gen``).
"""

from __future__ import annotations

import ast
import math

import pytest
import torch
import torch.nn.functional as F

from autograder.checks import check, check_close, check_equal
from autograder.drivers.common import outputs_in_modes
from autograder.drivers.w02 import attention_module_grads

pytestmark = pytest.mark.w02

PROJ = ("q_proj", "k_proj", "v_proj", "out_proj")
# The reference's max |diff| against nn.MultiheadAttention: 7.2e-7 on outputs, 1.8e-7 on weights
# (200 masked draws, outputs up to |4|); composites get atol 1e-5 / rtol 1e-4 (about 10× that).
ATOL, RTOL = 1e-5, 1e-4


def randn(gen, *shape):
    return torch.randn(*shape, generator=gen)


def random_mask(gen, *shape):
    """Random boolean mask (True = may attend) with at least one True per query row."""
    mask = torch.rand(*shape, generator=gen) < 0.6
    mask[..., 0] |= ~mask.any(-1)
    return mask


def make_weights(gen, d_model, bias=True, d_kv=None):
    """A state dict in the course's naming, at the scale of a freshly initialised layer."""
    d_kv = d_model if d_kv is None else d_kv
    widths = {"q_proj": d_model, "k_proj": d_kv, "v_proj": d_kv, "out_proj": d_model}
    sd = {}
    for name in PROJ:
        sd[f"{name}.weight"] = randn(gen, widths[name], d_model) / math.sqrt(d_model)
        if bias:
            sd[f"{name}.bias"] = randn(gen, widths[name]) * 0.1
    return sd


def torch_mha(sd, d_model, n_heads):
    """nn.MultiheadAttention holding the same weights (q, k, v stacked into in_proj)."""
    bias = "q_proj.bias" in sd
    mha = torch.nn.MultiheadAttention(d_model, n_heads, bias=bias, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([sd[f"{n}.weight"] for n in PROJ[:3]]))
        mha.out_proj.weight.copy_(sd["out_proj.weight"])
        if bias:
            mha.in_proj_bias.copy_(torch.cat([sd[f"{n}.bias"] for n in PROJ[:3]]))
            mha.out_proj.bias.copy_(sd["out_proj.bias"])
    return mha.eval()


def torch_mask(mask, B, n_heads, T_q, T_k):
    """Our mask (True = may attend) as nn.MultiheadAttention's attn_mask (True = ignore)."""
    if mask.dim() == 2:
        return ~mask
    return ~mask.expand(B, n_heads, T_q, T_k).reshape(B * n_heads, T_q, T_k)


def oracle(sd, n_heads, x, context=None, mask=None):
    """(out, per-head weights) from nn.MultiheadAttention."""
    context = x if context is None else context
    B, T_q, d = x.shape
    mha = torch_mha(sd, d, n_heads)
    attn_mask = None if mask is None else torch_mask(mask, B, n_heads, T_q, context.size(1))
    with torch.no_grad():
        out, weights = mha(
            x, context, context, attn_mask=attn_mask, need_weights=True, average_attn_weights=False
        )
    return out, weights


# --------------------------------------------------------------------------- classic mistakes
def _linear(sd, name, x):
    bias = sd.get(f"{name}.bias")
    return F.linear(x, sd[f"{name}.weight"], bias)


def _split(x, h, how):
    B, T, d = x.shape
    if how == "no_transpose":  # view(B, h, T, d_head): rows of different tokens land in one head
        return x.reshape(B, h, T, d // h)
    if how == "strided":  # head j owns channels j, j + h, j + 2h, …
        return x.reshape(B, T, d // h, h).permute(0, 3, 1, 2)
    return x.reshape(B, T, h, d // h).transpose(1, 2)


def _merge(x, how):
    B, h, T, dh = x.shape
    if how == "no_transpose":
        return x.reshape(B, T, h * dh)
    return x.transpose(1, 2).reshape(B, T, h * dh)


def mha_variant(sd, n_heads, x, context=None, mask=None, *, bug):
    """Multi-head attention with one named mistake."""
    context = x if context is None else context
    if bug == "kv_from_x":
        context = x
    d = x.size(-1)
    split = bug if bug in ("no_transpose", "strided") else "ok"
    q = _split(_linear(sd, "q_proj", x), n_heads, split)
    k = _split(_linear(sd, "k_proj", context), n_heads, split)
    v = _split(_linear(sd, "v_proj", context), n_heads, split)
    scale = {"scale_d_model": math.sqrt(d), "no_scale": 1.0}.get(bug, math.sqrt(d // n_heads))
    scores = q @ k.transpose(-2, -1) / scale
    if mask is not None:
        scores = scores.masked_fill(mask if bug == "inverted_mask" else ~mask, float("-inf"))
    out = torch.softmax(scores, dim=-1).nan_to_num(0.0) @ v  # fully masked rows: zeros, as ours
    out = _merge(out, "no_transpose" if bug == "merge_no_transpose" else "ok")
    return out if bug == "no_out_proj" else _linear(sd, "out_proj", out)


BUG_NAMES = {
    "no_transpose": "split_heads reshapes to (B, h, T, d_head) without transposing: each 'head' mixes "
    "channels of different tokens. View as (B, T, h, d_head), then transpose(1, 2).",
    "strided": "head h takes every h-th channel; it must own the contiguous block h·d_head … (h+1)·d_head − 1.",
    "merge_no_transpose": "merge_heads reshapes (B, h, T, d_head) to (B, T, d_model) without transposing "
    "back first, which mixes tokens across heads.",
    "scale_d_model": "scores are scaled by 1/√d_model; each head's scale is 1/√d_head.",
    "no_scale": "scores are not scaled: divide by √d_head.",
    "no_out_proj": "the output projection out_proj is missing after merging the heads.",
    "inverted_mask": "the mask is inverted: in this course True means *may attend* "
    "(nn.MultiheadAttention's masks mean the opposite).",
    "kv_from_x": "keys and values come from x: in cross-attention they come from `context`.",
}


def diagnoses(sd, n_heads, x, context=None, mask=None, bugs=None):
    bugs = bugs or [b for b in BUG_NAMES if b != "inverted_mask" or mask is not None]
    return [(mha_variant(sd, n_heads, x, context, mask, bug=b), BUG_NAMES[b]) for b in bugs]


def load(module, sd, what="MultiHeadAttention"):
    """Checks the parameter names and shapes, then loads ``sd``."""
    got = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    want = {k: tuple(v.shape) for k, v in sd.items()}
    check(
        got == want,
        f"{what} state dict is {sorted(got.items())}; expected {sorted(want.items())}.",
        "nn.Linear submodules q_proj, k_proj, v_proj, out_proj (weights (d_out, d_in)); no other parameters.",
    )
    module.load_state_dict(sd)
    return module


# --------------------------------------------------------------------------- heads
@pytest.mark.points(2)
def test_split_heads_layout(student, gen):
    """split_heads gives (B, h, T, d_head) and head h owns channels h·d_head … (h+1)·d_head − 1"""
    B, T, h, dh = 2, 5, 4, 3
    x = randn(gen, B, T, h * dh)
    expected = torch.stack([x[..., j * dh : (j + 1) * dh] for j in range(h)], dim=1)
    check_close(
        student.split_heads(x, h),
        expected,
        what=f"split_heads(x of shape {(B, T, h * dh)}, n_heads={h})",
        hint="view(B, T, h, d_head).transpose(1, 2).",
        diagnose=[
            (x.reshape(B, h, T, dh), BUG_NAMES["no_transpose"]),
            (x.reshape(B, T, dh, h).permute(0, 3, 1, 2), BUG_NAMES["strided"]),
        ],
        atol=0,
        rtol=0,
    )


@pytest.mark.points(2)
def test_merge_heads_inverts_split(student, gen):
    """merge_heads is the exact inverse of split_heads, with any leading dims"""
    B, h, T, dh = 3, 2, 4, 5
    y = randn(gen, B, h, T, dh)
    expected = torch.cat([y[:, j] for j in range(h)], dim=-1)  # (B, T, h·d_head)
    check_close(
        student.merge_heads(y),
        expected,
        what=f"merge_heads(y of shape {(B, h, T, dh)})",
        hint="transpose(1, 2) back to (B, T, h, d_head), then reshape (contiguous!) to (B, T, d_model).",
        diagnose=[(y.reshape(B, T, h * dh), BUG_NAMES["merge_no_transpose"])],
        atol=0,
        rtol=0,
    )
    x = randn(gen, 2, 3, 6, 8)  # an extra leading dim
    check_close(
        student.merge_heads(student.split_heads(x, 4)),
        x,
        what="merge_heads(split_heads(x, 4)) for x of shape (2, 3, 6, 8)",
        hint="work on the last axes (-3, -2, -1) so any leading dims pass through.",
        atol=0,
        rtol=0,
    )


# --------------------------------------------------------------------------- attention
@pytest.mark.points(4)
def test_matches_torch_multihead_attention(submission, gen):
    """Equal to nn.MultiheadAttention (output and per-head weights) after copying weights"""
    module = submission.module()
    for d, h, bias in ((24, 4, True), (16, 2, False)):
        sd = make_weights(gen, d, bias)
        mha = load(module.MultiHeadAttention(d, h, bias=bias), sd)
        x = randn(gen, 3, 6, d)
        out, weights = mha(x, return_weights=True)
        expected, expected_w = oracle(sd, h, x)
        check_close(
            out,
            expected,
            what=f"MultiHeadAttention({d}, {h}, bias={bias}) output",
            atol=ATOL,
            rtol=RTOL,
            hint="project, split heads, attend per head with scale 1/√d_head, merge, project out.",
            diagnose=diagnoses(sd, h, x),
        )
        check_close(
            weights,
            expected_w,
            what="attention weights (B, h, T_q, T_k)",
            atol=ATOL,
            rtol=RTOL,
            hint="one row of weights per head and query; do not average over heads.",
        )


@pytest.mark.points(1)
def test_return_weights_flag(submission, gen):
    """forward returns a tensor by default and (out, weights) with return_weights=True"""
    mha = submission.module().MultiHeadAttention(8, 2)
    x = randn(gen, 2, 3, 8)
    plain = mha(x)
    check(
        isinstance(plain, torch.Tensor),
        f"MultiHeadAttention(x) returned {type(plain).__name__}; expected a tensor by default.",
    )
    both = mha(x, return_weights=True)
    check(
        isinstance(both, tuple) and len(both) == 2,
        "MultiHeadAttention(x, return_weights=True) must return (out, weights).",
    )
    check_close(both[0], plain, what="out with and without return_weights")
    check_equal(tuple(both[1].shape), (2, 2, 3, 3), what="weights shape (B, h, T_q, T_k)")


@pytest.mark.points(3)
def test_mask_broadcasting(submission, gen):
    """Masks of shape (T_q, T_k), (B, 1, T_q, T_k), (B, 1, 1, T_k) and (B, h, T_q, T_k) broadcast"""
    B, T, d, h = 2, 5, 16, 4
    sd = make_weights(gen, d)
    mha = load(submission.module().MultiHeadAttention(d, h), sd)
    x = randn(gen, B, T, d)
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    masks = {
        "(T_q, T_k) causal": torch.ones(T, T, dtype=torch.bool).tril(),
        "(B, 1, T_q, T_k)": random_mask(gen, B, 1, T, T),
        "(B, 1, 1, T_k) padding": (torch.arange(T)[None, :] < lengths[:, None])[:, None, None, :],
        "(B, h, T_q, T_k)": random_mask(gen, B, h, T, T),
    }
    for label, mask in masks.items():
        out, weights = mha(x, mask=mask, return_weights=True)
        expected, expected_w = oracle(sd, h, x, mask=mask)
        check_close(
            out,
            expected,
            what=f"output with a {label} mask",
            atol=ATOL,
            rtol=RTOL,
            hint="pass the mask unchanged to week 1's attention on (B, h, T_q, T_k) scores; "
            "True = may attend (nn.MultiheadAttention uses True = ignore).",
            diagnose=diagnoses(sd, h, x, mask=mask, bugs=["inverted_mask"]),
        )
        check_close(weights, expected_w, what=f"weights with a {label} mask", atol=ATOL, rtol=RTOL)
        check(
            bool((weights[~mask.expand(B, h, T, T)] == 0).all()),
            f"with a {label} mask, masked keys got non-zero attention weight.",
        )


@pytest.mark.points(3)
def test_cross_attention(submission, gen):
    """With context, queries come from x and keys/values from context (T_q ≠ T_k)"""
    B, T_q, T_k, d, h = 2, 3, 7, 16, 4
    sd = make_weights(gen, d)
    mha = load(submission.module().MultiHeadAttention(d, h), sd)
    x, context = randn(gen, B, T_q, d), randn(gen, B, T_k, d)
    out, weights = mha(x, context, return_weights=True)
    check_equal(tuple(out.shape), (B, T_q, d), what="cross-attention output shape (B, T_q, d_model)")
    check_equal(tuple(weights.shape), (B, h, T_q, T_k), what="cross-attention weights shape (B, h, T_q, T_k)")
    expected, _ = oracle(sd, h, x, context)
    check_close(out, expected, what="cross-attention output", atol=ATOL, rtol=RTOL)
    # Same lengths, so a submission that ignores context still runs: catch it by value.
    context = randn(gen, B, T_q, d)
    mask = random_mask(gen, B, 1, T_q, T_q)
    check_close(
        mha(x, context=context, mask=mask),
        oracle(sd, h, x, context, mask)[0],
        what="cross-attention output with T_q = T_k and a mask",
        atol=ATOL,
        rtol=RTOL,
        diagnose=diagnoses(sd, h, x, context, mask, bugs=["kv_from_x"]),
    )


@pytest.mark.points(2)
def test_causal_mask_keeps_the_future_out(submission, gen):
    """With causal_mask(T), changing later tokens leaves earlier outputs unchanged"""
    module = submission.module()
    mha = module.MultiHeadAttention(16, 4)
    T = 8
    t = int(torch.randint(2, T - 1, (1,), generator=gen))
    x = randn(gen, 2, T, 16)
    x2 = x.clone()
    x2[:, t:] = randn(gen, 2, T - t, 16)
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    a, b = mha(x, mask=mask), mha(x2, mask=mask)
    check_close(
        a[:, :t],
        b[:, :t],
        what=f"outputs before position {t} when tokens {t}… change, under a causal mask",
        hint="every head must see the same mask; do not mix tokens when splitting heads.",
    )


@pytest.mark.points(2)
def test_dropout_only_in_training(submission, gen):
    """Attention dropout changes outputs in train mode only; eval mode is deterministic and exact"""
    d, h = 16, 2
    sd = make_weights(gen, d)
    mha = load(submission.module().MultiHeadAttention(d, h, dropout=0.5), sd)
    x = randn(gen, 2, 6, d)
    train, evals = submission.run(outputs_in_modes, mha, x)
    expected, _ = oracle(sd, h, x)
    check_close(
        evals[0],
        expected,
        what="MultiHeadAttention(dropout=0.5) in eval mode",
        atol=ATOL,
        rtol=RTOL,
        hint="dropout must be off in eval mode: use nn.Dropout (it follows module.train()/eval()), "
        "or F.dropout(..., training=self.training).",
    )
    check(torch.equal(evals[0], evals[1]), "two eval-mode calls gave different outputs.")
    check(
        not torch.allclose(train[0], expected, atol=ATOL, rtol=RTOL),
        "MultiHeadAttention(dropout=0.5) in train mode gave the eval-mode output: dropout is never applied.",
        "apply nn.Dropout(p) to the attention weights in training mode.",
    )
    plain = load(submission.module().MultiHeadAttention(d, h, dropout=0.0), sd)
    train0, _ = submission.run(outputs_in_modes, plain, x, 1)
    check_close(train0[0], expected, what="dropout=0.0 in train mode", atol=ATOL, rtol=RTOL)


@pytest.mark.points(2)
def test_gradients_match_torch(submission, gen):
    """Gradients w.r.t. the input and the projection weights equal nn.MultiheadAttention's"""
    d, h = 12, 3
    sd = make_weights(gen, d)
    mha = load(submission.module().MultiHeadAttention(d, h), sd)
    x, upstream = randn(gen, 2, 5, d), randn(gen, 2, 5, d)
    gx, _, grads = submission.run(attention_module_grads, mha, x, None, upstream)
    ref = torch_mha(sd, d, h)
    xx = x.clone().requires_grad_(True)
    (ref(xx, xx, xx, need_weights=False)[0] * upstream).sum().backward()
    check(gx is not None, "no gradient reached the input: is the graph cut (detach, .data, numpy)?")
    check_close(gx, xx.grad, what="d(out)/dx", atol=1e-5, rtol=1e-4)
    expected = dict(zip(("q_proj", "k_proj", "v_proj"), ref.in_proj_weight.grad.chunk(3)))
    expected["out_proj"] = ref.out_proj.weight.grad
    for name in PROJ:
        g = grads.get(f"{name}.weight")
        check(g is not None, f"{name}.weight received no gradient.")
        check_close(g, expected[name], what=f"d(out)/d {name}.weight", atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------------------- parameter counts
@pytest.mark.points(2)
def test_mha_param_count_closed_form(student, gen):
    """mha_param_count: 1,050,624 for (512, 8), 1,048,576 without bias, 4d² + 4d in general"""
    check_equal(
        student.mha_param_count(512, 8),
        1_050_624,
        what="mha_param_count(512, 8)",
        hint="four d_model × d_model projections (q, k, v, out) plus four bias vectors.",
    )
    check_equal(
        student.mha_param_count(512, 8, bias=False), 1_048_576, what="mha_param_count(512, 8, bias=False)"
    )
    h = int(torch.randint(1, 9, (1,), generator=gen))
    d = h * int(torch.randint(1, 17, (1,), generator=gen))
    for bias in (True, False):
        check_equal(
            student.mha_param_count(d, h, bias=bias),
            4 * d * d + (4 * d if bias else 0),
            what=f"mha_param_count({d}, {h}, bias={bias})",
            hint="the heads split d_model between them: their number does not change the count.",
        )


@pytest.mark.points(1)
def test_mha_param_count_matches_modules(submission, gen):
    """mha_param_count agrees with MultiHeadAttention's parameters and nn.MultiheadAttention's"""
    module = submission.module()
    h = int(torch.randint(2, 6, (1,), generator=gen))
    d = h * int(torch.randint(2, 9, (1,), generator=gen))
    for bias in (True, False):
        own = sum(t.numel() for t in module.MultiHeadAttention(d, h, bias=bias).state_dict().values())
        ref = sum(p.numel() for p in torch.nn.MultiheadAttention(d, h, bias=bias).parameters())
        check_equal(own, ref, what=f"parameters of MultiHeadAttention({d}, {h}, bias={bias})")
        check_equal(
            module.mha_param_count(d, h, bias=bias),
            own,
            what=f"mha_param_count({d}, {h}, bias={bias}) against the module",
        )


# --------------------------------------------------------------------------- grouped-query attention
def gqa_oracle(sd, n_heads, n_kv, x, mask=None, mapping="interleave"):
    """Grouped-query attention built from F.scaled_dot_product_attention."""
    B, T, d = x.shape
    dh = d // n_heads
    q = _split(_linear(sd, "q_proj", x), n_heads, "ok")
    k = _split(_linear(sd, "k_proj", x), n_kv, "ok")
    v = _split(_linear(sd, "v_proj", x), n_kv, "ok")
    g = n_heads // n_kv
    index = torch.arange(n_heads) // g if mapping == "interleave" else torch.arange(n_heads) % n_kv
    k, v = k[:, index], v[:, index]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert out.shape[-1] == dh
    return _linear(sd, "out_proj", _merge(out, "ok"))


@pytest.mark.points(1)
def test_gqa_projection_shapes(submission):
    """GroupedQueryAttention(32, 8, 2): k_proj and v_proj are 32 → n_kv_heads·d_head = 8"""
    gqa = submission.module().GroupedQueryAttention(32, 8, 2)
    shapes = {k: tuple(v.shape) for k, v in gqa.state_dict().items() if k.endswith("weight")}
    want = {
        "q_proj.weight": (32, 32),
        "k_proj.weight": (8, 32),
        "v_proj.weight": (8, 32),
        "out_proj.weight": (32, 32),
    }
    check(
        shapes == want,
        f"GroupedQueryAttention(32, 8, 2) weights are {sorted(shapes.items())}; expected {sorted(want.items())}.",
        "keys and values have n_kv_heads heads of width d_head = d_model // n_heads.",
    )


@pytest.mark.points(3)
def test_gqa_head_mapping(submission, gen):
    """Query head i reads key/value head i // (n_heads // n_kv_heads); n_kv_heads = 1 is MQA"""
    module = submission.module()
    d, h = 32, 8
    for n_kv in (2, 4, 1):
        gqa = module.GroupedQueryAttention(d, h, n_kv)
        bias = any(k.endswith("bias") for k in gqa.state_dict())
        sd = make_weights(gen, d, bias, d_kv=n_kv * d // h)
        load(gqa, sd, f"GroupedQueryAttention({d}, {h}, {n_kv})")
        x = randn(gen, 2, 5, d)
        mask = torch.ones(5, 5, dtype=torch.bool).tril()
        diag = []
        if n_kv > 1:
            diag.append(
                (
                    gqa_oracle(sd, h, n_kv, x, mask, mapping="repeat"),
                    "query head i reads kv head i % n_kv_heads (kv heads tiled with .repeat / expand in the "
                    "wrong order); it must read head i // (n_heads // n_kv_heads): use repeat_interleave.",
                )
            )
        check_close(
            gqa(x, mask=mask),
            gqa_oracle(sd, h, n_kv, x, mask),
            what=f"GroupedQueryAttention({d}, {h}, n_kv_heads={n_kv}) with a causal mask",
            atol=ATOL,
            rtol=RTOL,
            hint="split k and v into n_kv_heads heads, then repeat each one n_heads // n_kv_heads "
            "times in place (repeat_interleave on the head axis).",
            diagnose=diag,
        )


@pytest.mark.points(2)
def test_gqa_equals_mha_when_kv_heads_equal_heads(submission, gen):
    """GroupedQueryAttention(d, h, h) equals nn.MultiheadAttention with the same weights"""
    d, h = 24, 4
    gqa = submission.module().GroupedQueryAttention(d, h, h)
    bias = any(k.endswith("bias") for k in gqa.state_dict())
    sd = make_weights(gen, d, bias)
    load(gqa, sd, "GroupedQueryAttention(24, 4, 4)")
    x = randn(gen, 2, 6, d)
    check_close(
        gqa(x),
        oracle(sd, h, x)[0],
        what="GroupedQueryAttention with n_kv_heads = n_heads",
        atol=ATOL,
        rtol=RTOL,
        hint="with one kv head per query head, GQA is plain multi-head attention.",
    )


# --------------------------------------------------------------------------- built, not borrowed
FORBIDDEN = {
    "MultiheadAttention": "nn.MultiheadAttention",
    "multi_head_attention_forward": "F.multi_head_attention_forward",
}


@pytest.mark.points(1)
def test_builds_multihead_attention_itself(submission, gen):
    """The week builds multi-head attention: no nn.MultiheadAttention inside"""
    d, h = 8, 2
    sd = make_weights(gen, d)
    mha = load(submission.module().MultiHeadAttention(d, h), sd)
    x = randn(gen, 1, 3, d)
    check_close(
        mha(x),
        oracle(sd, h, x)[0],
        what="MultiHeadAttention output (needed before its source is checked)",
        atol=ATOL,
        rtol=RTOL,
    )
    offences = []
    for node in ast.walk(ast.parse(submission.source())):
        if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN:
            offences.append(f"line {node.lineno}: {FORBIDDEN[node.attr]}")
        if isinstance(node, ast.ImportFrom) and any(a.name in FORBIDDEN for a in node.names):
            offences.append(f"line {node.lineno}: imports {', '.join(a.name for a in node.names)}")
    check(
        not offences,
        "this week asks you to build multi-head attention yourself; found " + "; ".join(offences) + ".",
    )
