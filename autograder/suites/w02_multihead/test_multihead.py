"""Week 2 hidden suite: head splitting, multi-head attention, masks, cross-attention, dropout,
parameter counts and grouped-query attention.

The main oracle is ``torch.nn.MultiheadAttention`` with the submission's weights copied in.
Its masks mean the opposite of ours (True = *ignore*), so every mask is passed to it inverted.
Classic mistakes are recomputed here (``mha_variant``) so a matching submission is told which
one it made. Inputs are drawn from the grading seed (``gen``).

What the week promises, and the test that holds each promise at its edge:

- head layout (CONVENTIONS § Masks and attention): head j owns the contiguous channels
  j·d_head … (j+1)·d_head − 1; merge_heads inverts split_heads with any leading dims
  (test_split_heads_layout, test_merge_heads_inverts_split);
- a head count that does not divide d_model raises ValueError naming both numbers, in
  split_heads, MultiHeadAttention and GroupedQueryAttention; channels are never dropped
  (test_heads_must_divide_d_model);
- scale 1/√d_head, per head; output projection in the nn.Linear layout (CONVENTIONS § Tensors and
  weights); one row of weights per head, not averaged (test_matches_torch_multihead_attention);
- one head, one token (T = 1, self- and cross-attention), batch of one: no size-1 axis squeezed
  away (test_one_head_and_one_token);
- masks: True = may attend, every documented shape broadcast per head (test_mask_broadcasting);
  a query with every key masked gets zero weights and a zero attention output, so the module
  returns out_proj's bias there, never NaN (test_fully_masked_query_gives_zero_weights);
- cross-attention: keys and values from ``context``, T_q ≠ T_k (test_cross_attention);
- dropout on the attention weights, in training only; returned weights are taken before dropout
  (test_dropout_only_in_training, test_dropout_acts_on_the_weights);
- gradients (test_gradients_match_torch); causality under a causal mask
  (test_causal_mask_keeps_the_future_out);
- parameter counts: the anchor 1,050,624 (CONVENTIONS § Blocks), bias=False, heads do not change
  the count (test_mha_param_count_closed_form, test_mha_param_count_matches_modules);
- grouped-query attention: k/v projections of width n_kv_heads·d_head; query head i reads kv head
  i // (n_heads // n_kv_heads) for n_kv_heads = 1 (MQA), 2, 4, and for group sizes 2 and 3 with
  3 and 2 kv heads (not powers of two); n_kv_heads = n_heads is MHA; cross-attention, masks and
  per-query-head weights as MHA (test_gqa_*).
"""

from __future__ import annotations

import ast
import math

import pytest
import torch
import torch.nn.functional as F

from autograder.checks import Example, GradingFailure, check, check_close, check_equal, convention, matches
from autograder.drivers.common import outputs_in_modes
from autograder.drivers.w02 import attention_module_grads
from autograder.isolation import SubmissionError

pytestmark = pytest.mark.w02

PROJ = ("q_proj", "k_proj", "v_proj", "out_proj")
# The reference's max |diff| against nn.MultiheadAttention: 7.2e-7 on outputs, 1.8e-7 on weights
# (200 masked draws, outputs up to |4|); composites get atol 1e-5 / rtol 1e-4 (about 10× that).
ATOL, RTOL = 1e-5, 1e-4
ATTENTION = convention("Masks and attention")
WEIGHTS = convention("Tensors and weights")
BLOCKS = convention("Blocks")


def randn(gen, *shape):
    return torch.randn(*shape, generator=gen)


def randint(gen, low, high):
    return int(torch.randint(low, high, (1,), generator=gen))


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
def _linear(sd, name, x, transposed=False):
    bias = sd.get(f"{name}.bias")
    if transposed:  # y = x @ W + b: the paper's x·W with an nn.Linear weight (d_out, d_in)
        return x @ sd[f"{name}.weight"] + (0 if bias is None else bias)
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
    if mask is not None and bug == "mask_after_softmax":
        weights = torch.softmax(scores, dim=-1) * mask
    else:
        if mask is not None:
            scores = scores.masked_fill(mask if bug == "inverted_mask" else ~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # fully masked rows: zeros, as ours
    out = _merge(weights @ v, "no_transpose" if bug == "merge_no_transpose" else "ok")
    if bug == "no_out_proj":
        return out
    return _linear(sd, "out_proj", out, transposed=bug == "out_proj_transposed")


BUG_NAMES = {
    "no_transpose": "split_heads reshapes to (B, h, T, d_head) without transposing: each 'head' mixes "
    "channels of different tokens. View as (B, T, h, d_head), then transpose(1, 2) "
    f"({ATTENTION}).",
    "strided": "head h takes every h-th channel (strided heads); it must own the contiguous block "
    f"h·d_head … (h+1)·d_head − 1 ({ATTENTION}).",
    "merge_no_transpose": "merge_heads reshapes (B, h, T, d_head) to (B, T, d_model) without transposing "
    f"back first, which mixes tokens across heads ({ATTENTION}).",
    "scale_d_model": "scores are scaled by 1/√d_model; each head's scale is 1/√d_head, the width of one "
    f"head ({ATTENTION}).",
    "no_scale": f"scores are not scaled: divide by √d_head ({ATTENTION}).",
    "no_out_proj": "the output projection out_proj is missing after merging the heads.",
    "out_proj_transposed": "out_proj's weight is applied transposed (merged @ W instead of merged @ W.T): "
    f"an nn.Linear weight is (d_out, d_in) and y = x @ W.T + b; call self.out_proj(merged) ({WEIGHTS}).",
    "inverted_mask": "the mask is inverted: in this course True means *may attend* "
    f"(nn.MultiheadAttention's masks mean the opposite) ({ATTENTION}).",
    "mask_after_softmax": "the mask is applied after the softmax (weights multiplied by the mask), so the "
    f"rows no longer sum to 1: set masked scores to -inf before the softmax ({ATTENTION}).",
    "kv_from_x": "keys and values come from x: in cross-attention they come from `context`.",
}


def diagnoses(sd, n_heads, x, context=None, mask=None, bugs=None):
    bugs = bugs or [
        b for b in BUG_NAMES if b not in ("inverted_mask", "mask_after_softmax") or mask is not None
    ]
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


def check_attention_shape(actual, expected, *, what, n_heads):
    """Names a head axis averaged away or a size-1 axis squeezed away before comparing values."""
    if not isinstance(actual, torch.Tensor) or actual.shape == expected.shape:
        return
    if actual.dim() == expected.dim() - 1 and actual.shape == expected.shape[:1] + expected.shape[2:]:
        if n_heads > 1 and matches(actual, expected.mean(1), ATOL, RTOL):
            raise GradingFailure(
                f"{what}: shape {tuple(actual.shape)}; the weights were averaged over heads "
                "(nn.MultiheadAttention's default): return one (T_q, T_k) map per head, (B, h, T_q, T_k)."
            )
    if actual.numel() == expected.numel() and actual.shape == torch.Size(s for s in expected.shape if s != 1):
        raise GradingFailure(
            f"{what}: shape {tuple(actual.shape)}, expected {tuple(expected.shape)}: a size-1 axis was "
            "squeezed away. With one head, one query or a batch of one the axes stay: (B, h, T_q, T_k) for "
            f"weights, (B, T_q, d_model) for outputs. Do not call .squeeze() ({ATTENTION})."
        )


def mha_example(module):
    """A case to check on paper: every score 0 (uniform weights), v = x, out_proj a channel shift."""
    shift = torch.roll(torch.eye(4), 1, dims=1)  # W[i, i+1] = 1, so y_i = v_{i+1}
    sd = {"q_proj.weight": torch.zeros(4, 4), "k_proj.weight": torch.zeros(4, 4)}
    sd |= {"v_proj.weight": torch.eye(4), "out_proj.weight": shift}
    x = torch.tensor([[[1.0, 0.0, 2.0, 0.0], [3.0, 0.0, 0.0, 4.0]]])
    return Example(
        inputs="MultiHeadAttention(4, 2, bias=False) with q_proj.weight = k_proj.weight = 0 (every score "
        "is 0), v_proj.weight = I, out_proj.weight[i, (i+1) % 4] = 1 (so out_i = v_{i+1}), "
        "x = [[[1, 0, 2, 0], [3, 0, 0, 4]]]",
        expected=torch.tensor([[[0.0, 1.0, 2.0, 2.0], [0.0, 1.0, 2.0, 2.0]]]),
        got=lambda: load(module.MultiHeadAttention(4, 2, bias=False), sd)(x),
    )


def mask_example(module):
    """One head, identity weights, the second key masked: each query copies the first value."""
    sd = {f"{n}.weight": torch.eye(2) for n in PROJ}
    x = torch.tensor([[[1.0, 2.0], [5.0, -1.0]]])
    mask = torch.tensor([[True, False], [True, False]])
    return Example(
        inputs="MultiHeadAttention(2, 1, bias=False) with every weight = I, x = [[[1, 2], [5, -1]]], "
        "mask = [[True, False], [True, False]] (True = may attend)",
        expected=torch.tensor([[[1.0, 2.0], [1.0, 2.0]]]),
        got=lambda: load(module.MultiHeadAttention(2, 1, bias=False), sd)(x, mask=mask),
    )


def gqa_example(module):
    """4 query heads of width 1, 2 kv heads reading channels 0 and 1; uniform weights."""

    def run():
        gqa = module.GroupedQueryAttention(4, 4, 2)
        sd = {k: torch.zeros(v.shape) for k, v in gqa.state_dict().items()}
        sd["v_proj.weight"] = torch.eye(2, 4)
        sd["out_proj.weight"] = torch.eye(4)
        gqa.load_state_dict(sd)
        return gqa(torch.tensor([[[1.0, 2.0, 0.0, 0.0], [3.0, 6.0, 0.0, 0.0]]]))

    return Example(
        inputs="GroupedQueryAttention(4, n_heads=4, n_kv_heads=2), every weight and bias 0 except "
        "v_proj.weight = [[1, 0, 0, 0], [0, 1, 0, 0]] (kv head 0 reads channel 0, kv head 1 channel 1) "
        "and out_proj.weight = I, x = [[[1, 2, 0, 0], [3, 6, 0, 0]]] (uniform weights: each head "
        "averages its values)",
        expected=torch.tensor([[[2.0, 2.0, 4.0, 4.0], [2.0, 2.0, 4.0, 4.0]]]),
        got=run,
    )


# --------------------------------------------------------------------------- heads
@pytest.mark.points(2)
def test_split_heads_layout(student, gen):
    """split_heads gives (B, h, T, d_head) and head h owns channels h·d_head … (h+1)·d_head − 1"""
    B, T, h, dh = 2, 5, 4, 3
    x = randn(gen, B, T, h * dh)
    expected = torch.stack([x[..., j * dh : (j + 1) * dh] for j in range(h)], dim=1)
    small = torch.arange(8.0).view(1, 2, 4)
    check_close(
        student.split_heads(x, h),
        expected,
        what=f"split_heads(x of shape {(B, T, h * dh)}, n_heads={h})",
        hint="view(B, T, h, d_head).transpose(1, 2).",
        diagnose=[
            (x.reshape(B, h, T, dh), BUG_NAMES["no_transpose"]),
            (x.reshape(B, T, dh, h).permute(0, 3, 1, 2), BUG_NAMES["strided"]),
        ],
        example=Example(
            "split_heads(x = [[[0, 1, 2, 3], [4, 5, 6, 7]]], n_heads=2)",
            torch.tensor([[[[0.0, 1.0], [4.0, 5.0]], [[2.0, 3.0], [6.0, 7.0]]]]),
            lambda: student.split_heads(small, 2),
        ),
        atol=0,
        rtol=0,
    )


@pytest.mark.points(2)
def test_merge_heads_inverts_split(student, gen):
    """merge_heads is the exact inverse of split_heads, with any leading dims"""
    B, h, T, dh = 3, 2, 4, 5
    y = randn(gen, B, h, T, dh)
    expected = torch.cat([y[:, j] for j in range(h)], dim=-1)  # (B, T, h·d_head)
    small = torch.arange(8.0).view(1, 2, 2, 2)
    check_close(
        student.merge_heads(y),
        expected,
        what=f"merge_heads(y of shape {(B, h, T, dh)})",
        hint="transpose(1, 2) back to (B, T, h, d_head), then reshape (contiguous!) to (B, T, d_model).",
        diagnose=[(y.reshape(B, T, h * dh), BUG_NAMES["merge_no_transpose"])],
        example=Example(
            "merge_heads(y = [[[[0, 1], [2, 3]], [[4, 5], [6, 7]]]]) (2 heads, 2 tokens, d_head 2)",
            torch.tensor([[[0.0, 1.0, 4.0, 5.0], [2.0, 3.0, 6.0, 7.0]]]),
            lambda: student.merge_heads(small),
        ),
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


def _must_raise(call, what: str, d: int, h: int, name_numbers: bool = True) -> None:
    """``call()`` must raise ValueError (whose message names d_model and n_heads)."""
    try:
        got = call()
    except SubmissionError as exc:
        check(
            exc.exc_type == "ValueError",
            f"{what} raised {exc.exc_type or 'an error'} instead of ValueError. Check d_model % n_heads "
            f"first and raise ValueError saying that n_heads does not divide d_model ({ATTENTION}).",
        )
        check(
            not name_numbers or (str(d) in str(exc) and str(h) in str(exc)),
            f"{what} raised ValueError, but its message does not name both numbers (d_model={d}, n_heads={h}).",
        )
        return
    shape = f" of shape {tuple(got.shape)}" if isinstance(got, torch.Tensor) else ""
    raise GradingFailure(
        f"{what} returned a result{shape} instead of raising ValueError: {d} channels cannot be split "
        f"into {h} equal heads, and a silent split drops or mixes channels. Raise ValueError ({ATTENTION})."
    )


@pytest.mark.points(1)
def test_heads_must_divide_d_model(submission, student, gen):
    """A head count that does not divide d_model raises ValueError naming both numbers"""
    h = randint(gen, 3, 6)
    d = h * randint(gen, 2, 4) + 1  # one channel too many: d_model // n_heads would drop it
    x = randn(gen, 2, 3, d)
    _must_raise(lambda: student.split_heads(x, h), f"split_heads(x with d_model={d}, n_heads={h})", d, h)
    module = submission.module()
    _must_raise(lambda: module.MultiHeadAttention(d, h), f"MultiHeadAttention({d}, {h})", d, h)
    gqa = f"GroupedQueryAttention({d}, {h}, 1)"
    _must_raise(lambda: module.GroupedQueryAttention(d, h, 1), gqa, d, h, name_numbers=False)
    try:
        module.GroupedQueryAttention(4 * h, h, 2 if h % 2 else 3)
    except SubmissionError as exc:
        check(
            exc.exc_type == "ValueError", f"an n_kv_heads that does not divide n_heads raised {exc.exc_type}."
        )
    else:
        raise GradingFailure(
            f"GroupedQueryAttention({4 * h}, n_heads={h}, n_kv_heads={2 if h % 2 else 3}) was accepted: "
            "n_kv_heads must divide n_heads (each kv head serves the same number of query heads)."
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
            diagnose=lambda sd=sd, h=h, x=x: diagnoses(sd, h, x),
            example=mha_example(module),
        )
        check_attention_shape(weights, expected_w, what="attention weights (B, h, T_q, T_k)", n_heads=h)
        check_close(
            weights,
            expected_w,
            what="attention weights (B, h, T_q, T_k)",
            atol=ATOL,
            rtol=RTOL,
            hint="one row of weights per head and query, the softmax of that head's scaled scores.",
        )


@pytest.mark.points(2)
def test_one_head_and_one_token(submission, gen):
    """One head, one token (T = 1) and a batch of one keep every axis: (B, h, T_q, T_k) weights"""
    module = submission.module()
    cases = (  # (label, d_model, n_heads, B, T_q, T_k or None for self-attention)
        ("one head", 8, 1, 2, 5, None),
        ("one token", 12, 3, 2, 1, None),
        ("one query, four keys (a decoding step)", 12, 3, 2, 1, 4),
        ("a batch of one", 12, 3, 1, 4, None),
    )
    for label, d, h, B, T_q, T_k in cases:
        sd = make_weights(gen, d)
        mha = load(module.MultiHeadAttention(d, h), sd)
        x = randn(gen, B, T_q, d)
        context = None if T_k is None else randn(gen, B, T_k, d)
        out, weights = mha(x, context, return_weights=True)
        expected, expected_w = oracle(sd, h, x, context)
        what = f"MultiHeadAttention({d}, {h}) with {label}: x {tuple(x.shape)}"
        what += "" if context is None else f", context {tuple(context.shape)}"
        check_attention_shape(out, expected, what=f"{what}: output", n_heads=h)
        check_attention_shape(weights, expected_w, what=f"{what}: weights", n_heads=h)
        check_close(
            out,
            expected,
            what=f"{what}: output",
            atol=ATOL,
            rtol=RTOL,
            hint="nothing changes at size 1: the same code path, every axis kept.",
            diagnose=lambda sd=sd, h=h, x=x, c=context: diagnoses(sd, h, x, c),
        )
        check_close(weights, expected_w, what=f"{what}: weights", atol=ATOL, rtol=RTOL)


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
    module = submission.module()
    sd = make_weights(gen, d)
    mha = load(module.MultiHeadAttention(d, h), sd)
    x = randn(gen, B, T, d)
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    masks = {
        "(T_q, T_k) causal": torch.ones(T, T, dtype=torch.bool).tril(),
        "(B, 1, T_q, T_k)": random_mask(gen, B, 1, T, T),
        "(B, 1, 1, T_k) padding": (torch.arange(T)[None, :] < lengths[:, None])[:, None, None, :],
        "(B, h, T_q, T_k) (a different mask per head)": random_mask(gen, B, h, T, T),
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
            diagnose=lambda m=mask: diagnoses(sd, h, x, mask=m, bugs=["inverted_mask", "mask_after_softmax"]),
            example=mask_example(module),
        )
        check_close(weights, expected_w, what=f"weights with a {label} mask", atol=ATOL, rtol=RTOL)
        check(
            bool((weights[~mask.expand(B, h, T, T)] == 0).all()),
            f"with a {label} mask, masked keys got non-zero attention weight.",
        )


@pytest.mark.points(2)
def test_fully_masked_query_gives_zero_weights(submission, gen):
    """A query with every key masked gets zero weights and a zero attention output, never NaN"""
    B, T, d, h = 2, 5, 12, 3
    sd = make_weights(gen, d)
    mha = load(submission.module().MultiHeadAttention(d, h), sd)
    x = randn(gen, B, T, d)
    mask = random_mask(gen, B, 1, T, T)
    row = randint(gen, 0, T)
    mask[0, 0, row] = False  # batch 0, query `row`: a padding query that may see nothing
    out, weights = mha(x, mask=mask, return_weights=True)
    what = f"MultiHeadAttention({d}, {h}) with query {row} of batch 0 fully masked"
    check(
        isinstance(out, torch.Tensor) and not bool(torch.isnan(out).any()),
        f"{what}: the output holds NaN. A query whose every key is masked must get all-zero weights and "
        f"a zero attention output, never NaN ({ATTENTION}): softmax over a row of -inf is 0/0.",
        "week 1's scaled_dot_product_attention already returns zeros there; reuse it, or shift a fully "
        "masked row by 0 and divide by 1.",
    )
    visible = mask.clone()
    visible[0, 0, row] = True  # nn.MultiheadAttention gives NaN for the empty row: fill it by hand
    expected, expected_w = oracle(sd, h, x, mask=visible)
    expected[0, row] = sd["out_proj.bias"]  # zero attention output, then out_proj adds its bias
    expected_w[0, :, row] = 0.0
    check_close(
        weights,
        expected_w,
        what=f"{what}: weights",
        atol=ATOL,
        rtol=RTOL,
        hint=f"the fully masked row's weights are all 0 ({ATTENTION}).",
    )
    check_close(
        out,
        expected,
        what=f"{what}: output",
        atol=ATOL,
        rtol=RTOL,
        hint="the fully masked query's attention output is 0, so the module returns out_proj's bias there.",
    )


@pytest.mark.points(3)
def test_cross_attention(submission, gen):
    """With context, queries come from x and keys/values from context (T_q ≠ T_k)"""
    B, T_q, T_k, d, h = 2, 3, 7, 16, 4
    sd = make_weights(gen, d)
    mha = load(submission.module().MultiHeadAttention(d, h), sd)
    # Same lengths first, so a submission that ignores context still runs: name it by value.
    x, context = randn(gen, B, T_q, d), randn(gen, B, T_q, d)
    mask = random_mask(gen, B, 1, T_q, T_q)
    check_close(
        mha(x, context=context, mask=mask),
        oracle(sd, h, x, context, mask)[0],
        what="cross-attention output with T_q = T_k and a mask",
        atol=ATOL,
        rtol=RTOL,
        diagnose=lambda: diagnoses(sd, h, x, context, mask, bugs=["kv_from_x"]),
    )
    context = randn(gen, B, T_k, d)
    out, weights = mha(x, context, return_weights=True)
    check_equal(tuple(out.shape), (B, T_q, d), what="cross-attention output shape (B, T_q, d_model)")
    check_equal(tuple(weights.shape), (B, h, T_q, T_k), what="cross-attention weights shape (B, h, T_q, T_k)")
    expected, _ = oracle(sd, h, x, context)
    check_close(out, expected, what="cross-attention output", atol=ATOL, rtol=RTOL)


@pytest.mark.points(2)
def test_causal_mask_keeps_the_future_out(submission, gen):
    """With causal_mask(T), changing later tokens leaves earlier outputs unchanged"""
    module = submission.module()
    mha = module.MultiHeadAttention(16, 4)
    T = 8
    t = randint(gen, 2, T - 1)
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
    check(
        torch.equal(evals[0], evals[1]),
        "two eval-mode calls of MultiHeadAttention(dropout=0.5) gave different outputs: dropout is still "
        "active in eval mode. nn.Dropout follows module.train()/eval(); F.dropout(w, p) needs "
        "training=self.training.",
    )
    check_close(
        evals[0],
        expected,
        what="MultiHeadAttention(dropout=0.5) in eval mode",
        atol=ATOL,
        rtol=RTOL,
        hint="dropout must be off in eval mode, and the module otherwise the same as with dropout=0.",
    )
    check(
        not torch.allclose(train[0], expected, atol=ATOL, rtol=RTOL),
        "MultiHeadAttention(dropout=0.5) in train mode gave the eval-mode output: dropout is never applied.",
        "apply self.attn_dropout (nn.Dropout(p)) to the attention weights in training mode.",
    )
    plain = load(submission.module().MultiHeadAttention(d, h, dropout=0.0), sd)
    train0, _ = submission.run(outputs_in_modes, plain, x, 1)
    check_close(train0[0], expected, what="dropout=0.0 in train mode", atol=ATOL, rtol=RTOL)


@pytest.mark.points(1)
def test_dropout_acts_on_the_weights(submission, gen):
    """In training, dropout acts on the attention weights (not the output); returned weights are before dropout"""
    d, h, p = 16, 2, 0.5
    sd = make_weights(gen, d)
    mha = load(submission.module().MultiHeadAttention(d, h, dropout=p), sd)
    x = randn(gen, 2, 6, d)
    expected, expected_w = oracle(sd, h, x)
    mha.train()
    out, weights = mha(x, return_weights=True)
    mha.eval()
    dropped_out = expected * (out != 0) / (1 - p)
    check(
        not matches(out, dropped_out, ATOL, RTOL),
        "in training mode the module's output is the eval-mode output with elements zeroed and the rest "
        "scaled by 1/(1-p): dropout acts on the output. This week's attn_dropout acts on the attention "
        "weights, before they multiply the values: out = dropout(weights) @ v.",
    )
    dropped_w = expected_w * (weights != 0) / (1 - p)
    check_close(
        weights,
        expected_w,
        what="weights returned with return_weights=True in training mode (dropout=0.5)",
        atol=ATOL,
        rtol=RTOL,
        hint="return the softmax weights before dropout; dropout only changes what multiplies v.",
        diagnose=[
            (
                dropped_w,
                "the weights you return went through dropout (entries zeroed, the rest scaled by 1/(1-p)): "
                "return them before dropout, as the docstring says; only the product with v uses the "
                "dropped weights.",
            )
        ],
    )


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
def count_diagnoses(d, h, bias):
    """What the classic miscounts give for MultiHeadAttention(d, h, bias)."""
    per = d * d + (d if bias else 0)
    return [
        (
            3 * per,
            f"that counts three projections (q, k, v): out_proj is a fourth d_model × d_model layer ({BLOCKS}).",
        ),
        (
            4 * h * per,
            "that gives every head its own d_model × d_model projections: the heads split d_model between "
            f"them, so their number does not change the count ({BLOCKS}).",
        ),
        (
            4 * (d * d + d),
            f"that counts the four bias vectors although bias=False ({BLOCKS}).",
        ),
        (4 * d * d, f"that forgets the four bias vectors (d_model each) of bias=True ({BLOCKS})."),
    ]


@pytest.mark.points(2)
def test_mha_param_count_closed_form(student, gen):
    """mha_param_count: 1,050,624 for (512, 8), 1,048,576 without bias, 4d² + 4d in general"""
    h = randint(gen, 1, 9)
    d = h * randint(gen, 1, 17)
    for dd, hh, bias in ((512, 8, True), (512, 8, False), (d, h, True), (d, h, False), (d, 1, True)):
        right = 4 * dd * dd + (4 * dd if bias else 0)
        check_equal(
            student.mha_param_count(dd, hh, bias=bias),
            right,
            what=f"mha_param_count({dd}, {hh}, bias={bias})",
            hint="four d_model × d_model projections (q, k, v, out) plus, with bias, four bias vectors.",
            diagnose=[(c, m) for c, m in count_diagnoses(dd, hh, bias) if c != right],
        )


@pytest.mark.points(1)
def test_mha_param_count_matches_modules(submission, gen):
    """mha_param_count agrees with MultiHeadAttention's parameters and nn.MultiheadAttention's"""
    module = submission.module()
    h = randint(gen, 2, 6)
    d = h * randint(gen, 2, 9)
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
def gqa_oracle(sd, n_heads, n_kv, x, mask=None, mapping="interleave", context=None):
    """(output, weights) of grouped-query attention built from F.scaled_dot_product_attention."""
    context = x if context is None else context
    q = _split(_linear(sd, "q_proj", x), n_heads, "ok")
    k = _split(_linear(sd, "k_proj", context), n_kv, "ok")
    v = _split(_linear(sd, "v_proj", context), n_kv, "ok")
    g = n_heads // n_kv
    index = torch.arange(n_heads) // g if mapping == "interleave" else torch.arange(n_heads) % n_kv
    k, v = k[:, index], v[:, index]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return _linear(sd, "out_proj", _merge(out, "ok")), torch.softmax(scores, dim=-1)


REPEAT_ORDER = (
    "query head i reads kv head i % n_kv_heads (kv heads tiled in the wrong order, with .repeat or "
    "expand): it must read head i // (n_heads // n_kv_heads), consecutive query heads sharing one kv "
    f"head; use repeat_interleave on the head axis ({ATTENTION})."
)


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
    if shapes.get("k_proj.weight") == (32, 32) and shapes.get("v_proj.weight") == (32, 32):
        raise GradingFailure(
            "GroupedQueryAttention(32, 8, 2) has k_proj and v_proj at full width d_model = 32: with "
            "n_kv_heads = 2 they produce n_kv_heads·d_head = 2·4 = 8 channels (that is what shrinks the "
            "KV cache)."
        )
    check(
        shapes == want,
        f"GroupedQueryAttention(32, 8, 2) weights are {sorted(shapes.items())}; expected {sorted(want.items())}.",
        "keys and values have n_kv_heads heads of width d_head = d_model // n_heads.",
    )


@pytest.mark.points(3)
def test_gqa_head_mapping(submission, gen):
    """Query head i reads kv head i // (n_heads // n_kv_heads), for 1 (MQA), 2, 3 and 4 kv heads"""
    module = submission.module()
    # (d_model, n_heads, n_kv_heads): groups of 4, 2, 8 (MQA), and 2 and 3 with 3 and 2 kv heads.
    for d, h, n_kv in ((32, 8, 2), (32, 8, 4), (32, 8, 1), (24, 6, 3), (24, 6, 2)):
        gqa = module.GroupedQueryAttention(d, h, n_kv)
        bias = any(k.endswith("bias") for k in gqa.state_dict())
        sd = make_weights(gen, d, bias, d_kv=n_kv * d // h)
        load(gqa, sd, f"GroupedQueryAttention({d}, {h}, {n_kv})")
        x = randn(gen, 2, 5, d)
        mask = torch.ones(5, 5, dtype=torch.bool).tril()
        diag = []
        if n_kv > 1:
            diag.append((gqa_oracle(sd, h, n_kv, x, mask, mapping="repeat")[0], REPEAT_ORDER))
        check_close(
            gqa(x, mask=mask),
            gqa_oracle(sd, h, n_kv, x, mask)[0],
            what=f"GroupedQueryAttention({d}, {h}, n_kv_heads={n_kv}) with a causal mask",
            atol=ATOL,
            rtol=RTOL,
            hint="split k and v into n_kv_heads heads, then repeat each one n_heads // n_kv_heads "
            "times in place (repeat_interleave on the head axis).",
            diagnose=diag,
            example=gqa_example(module),
        )


@pytest.mark.points(2)
def test_gqa_cross_attention_and_weights(submission, gen):
    """GroupedQueryAttention with context and a padding mask returns (B, n_heads, T_q, T_k) weights"""
    module = submission.module()
    B, T_q, T_k, d, h, n_kv = 2, 3, 6, 24, 6, 2
    gqa = module.GroupedQueryAttention(d, h, n_kv)
    bias = any(k.endswith("bias") for k in gqa.state_dict())
    sd = make_weights(gen, d, bias, d_kv=n_kv * d // h)
    load(gqa, sd, f"GroupedQueryAttention({d}, {h}, {n_kv})")
    x, same = randn(gen, B, T_q, d), randn(gen, B, T_q, d)
    check_close(
        gqa(x, same),
        gqa_oracle(sd, h, n_kv, x, context=same)[0],
        what=f"GroupedQueryAttention({d}, {h}, {n_kv})(x, context) with T_q = T_k",
        atol=ATOL,
        rtol=RTOL,
        hint="queries come from x, keys and values from context, as in MultiHeadAttention.",
        diagnose=[(gqa_oracle(sd, h, n_kv, x)[0], BUG_NAMES["kv_from_x"])],
    )
    context = randn(gen, B, T_k, d)
    lengths = torch.randint(1, T_k + 1, (B,), generator=gen)
    mask = (torch.arange(T_k)[None, :] < lengths[:, None])[:, None, None, :]  # (B, 1, 1, T_k)
    out, weights = gqa(x, context, mask=mask, return_weights=True)
    expected, expected_w = gqa_oracle(sd, h, n_kv, x, mask, context=context)
    check_attention_shape(weights, expected_w, what="GQA weights (B, n_heads, T_q, T_k)", n_heads=h)
    check_close(
        weights,
        expected_w,
        what=f"GroupedQueryAttention({d}, {h}, {n_kv}) weights with context and a padding mask",
        atol=ATOL,
        rtol=RTOL,
        hint="one map per *query* head: (B, n_heads, T_q, T_k).",
    )
    check_close(out, expected, what="GQA cross-attention output with a padding mask", atol=ATOL, rtol=RTOL)


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
