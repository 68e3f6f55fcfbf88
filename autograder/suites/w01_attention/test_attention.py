"""Week 1 hidden suite: softmax, masks, scaled dot-product and additive attention, one head, and
the recurrent encoder that attention replaced.

Expected values come from PyTorch built-ins (F.scaled_dot_product_attention, nn.RNNCell, nn.RNN)
or closed forms computed here, on inputs drawn from the grading seed (`gen`). The submission only
ever runs behind `student` / `submission`. Classic mistakes are recomputed here, so a submission
that makes one is told which, in its own terms, with the rule of course/CONVENTIONS.md it breaks.

What this week promises, and the edge each promise is tested at (test in brackets):

Tensors and weights
  * float32 in, float32 out; float64 in, float64 out (softmax_matches_torch, sdpa_any_leading_dims)
  * attention works on the last two axes, any leading dims: none, one, three (sdpa_any_leading_dims,
    sdpa_matches_pytorch_4d_masked)
  * nn.Linear layout, no biases in the head and in additive attention (self_attention_head_matches_
    pytorch, additive_attention_parameters: the count for d_hidden = 6, so each bias is visible)
  * the RNN cell is nn.RNN's, W_ih (d_h, d_in) non-square, W_hh (d_h, d_h) not symmetric, both
    biases, a batch of one (rnn_cell_matches_torch); the encoder is batch-first, parameters named
    and initialised as nn.RNN's (rnn_encoder_parameters); T = 1, B = 1, h0 given and default, a
    sequence continued from a final state (rnn_encoder_matches_nn_rnn)
Masks and attention
  * softmax along any dim, stable at ±1e4 and after a shift, an all -inf slice gives zeros
    (softmax_matches_torch, softmax_is_stable, softmax_all_masked_row)
  * causal_mask: boolean, diagonal included, T = 1, bottom-right aligned for T_q = 1, 3, T_k and
    T_q = T_k = 1 (causal_mask_square, causal_mask_bottom_right, single_cached_query_sees_every_key)
  * padding_mask: lengths 0 and T, the first and last real position (padding_mask)
  * masks True = may attend, -inf before the softmax, broadcast (T_q, T_k) and (B, 1, T_k)
    (sdpa_matches_pytorch_4d_masked, sdpa_broadcasts_masks); a fully masked row is zero in
    attention and in additive attention (fully_masked_rows_are_zero, additive_attention_edges)
  * scale 1/√d_k with d_k = q.size(-1), d_v ≠ d_k, T_q ≠ T_k, T_k = 1 (sdpa_matches_pytorch_3d,
    sdpa_any_leading_dims); gradients (sdpa_gradients)
Docstrings
  * AdditiveAttention: T = 1 and B = 1, a fully masked row (additive_attention_edges)
  * SelfAttentionHead: causal combined with a passed mask, last_weights (head_masks_and_last_weights);
    the causal flag (causal_head_ignores_the_future)
  * attention_lookup: closed form, T = 1, no batch axis (attention_lookup_matches_closed_form); a
    query that matches one key strongly retrieves its value exactly (attention_lookup_retrieves_exactly)
"""

from __future__ import annotations

import ast
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder.checks import Example, GradingFailure, check, check_close, check_equal, convention
from autograder.drivers.w01 import attention_grads, library_ops
from autograder.isolation import SubmissionError, SubmissionTimeout

pytestmark = pytest.mark.w01

MASKS = convention("Masks and attention")
TENSORS = convention("Tensors and weights")
SCALE_HINT = "scores are q·k / √d_k, with d_k the last dimension of q."
LN3 = math.log(3.0)


def randn(gen, *shape, dtype=torch.float32):
    return torch.randn(*shape, generator=gen, dtype=dtype)


def random_mask(gen, *shape):
    """Random boolean mask with at least one True per query row."""
    mask = torch.rand(*shape, generator=gen) < 0.6
    mask[..., 0] |= ~mask.any(-1)
    return mask


def safe_softmax(scores, dim=-1):
    """The course's softmax: an all -inf slice gives zeros (torch's gives NaN)."""
    return torch.softmax(scores, dim=dim).nan_to_num(0.0)


def oracle_sdpa(q, k, v, mask=None):
    """Reference attention and weights (PyTorch's fused op for out, closed form for weights)."""
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return out, torch.softmax(scores, dim=-1)


def classic_bugs(q, k, v, mask=None):
    """Outputs of the classic mistakes, so a matching submission is told which one it made."""
    d, T_q = q.size(-1), q.size(-2)
    raw = q @ k.transpose(-2, -1)

    def attend(scores, m=mask, dim=-1):
        if m is not None:
            scores = scores.masked_fill(~m, float("-inf"))
        return safe_softmax(scores, dim=dim) @ v

    bugs = [
        (
            attend(raw),
            f"the scores are not scaled: they are √d_k too large; divide q kᵀ by √d_k ({MASKS}).",
        ),
        (attend(raw / d), f"the scores are scaled by 1/d_k instead of 1/√d_k ({MASKS})."),
        (
            attend(raw * math.sqrt(d)),
            f"the scores are multiplied by √d_k instead of divided by it ({MASKS}).",
        ),
        (
            attend(raw / math.sqrt(d), dim=-2),
            "the weights are normalised over the query axis instead of the keys: each row (one query) "
            "must sum to 1, softmax(dim=-1).",
        ),
    ]
    if T_q != d:
        bugs.append(
            (
                attend(raw / math.sqrt(T_q)),
                f"the scale uses the number of queries T_q = {T_q} instead of the width d_k = {d}: take "
                f"d_k = q.size(-1), counted from the end so that any leading axes work ({MASKS}).",
            )
        )
    if mask is not None:
        bugs.append(
            (
                attend(raw / math.sqrt(d), ~mask),
                f"the mask is inverted: True means *may attend*, so set the scores to -inf where the mask "
                f"is False ({MASKS}).",
            )
        )
        after = torch.softmax(raw / math.sqrt(d), dim=-1) * mask
        bugs.append(
            (
                after @ v,
                "the mask is applied after the softmax (weights × mask), so rows no longer sum to 1: set "
                f"the masked scores to -inf before the softmax ({MASKS}).",
            )
        )
    return bugs


def explain_crash_on_leading_axes(student, exc: SubmissionError, what: str) -> None:
    """A crash on inputs with two leading axes, where 3-D inputs work, is an axis counted from the
    front (transpose(1, 2), size(2)); say so, with the student's own traceback."""
    q = torch.ones(2, 3, 4)
    try:
        student.scaled_dot_product_attention(q, q, q)
    except SubmissionTimeout:
        raise
    except SubmissionError:
        return  # 3-D fails too: the plain traceback says more
    message = (
        f"{what}: 3-D inputs work but 4-D (B, h, T, d) inputs raise ({exc}): an axis is counted from "
        "the front (such as k.transpose(1, 2)); attention works on the last two axes only, "
        f"k.transpose(-2, -1) ({TENSORS})."
    )
    if exc.traceback:
        message += "\n\nYour code's traceback:\n" + exc.traceback.rstrip()
    raise GradingFailure(message) from None


# Hand-checkable attention: d_k = 4 (scale 1/2), scores [ln 3, 0], weights [3/4, 1/4].
HAND_Q = torch.tensor([[2 * LN3, 0.0, 0.0, 0.0]])
HAND_K = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
HAND_V = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
HAND_INPUTS = (
    "q = [[2·ln 3, 0, 0, 0]], k = [[1, 0, 0, 0], [0, 1, 0, 0]], v = [[1, 0], [0, 1]] (d_k = 4, so "
    "the scores are [ln 3, 0] after the scale 1/2)"
)


# --------------------------------------------------------------------------- softmax
def softmax_bugs(x, dim):
    shifted = torch.exp(x - x.amax(dim=dim, keepdim=True))
    bugs = [
        (
            shifted / shifted.sum(),
            "softmax is normalised over the whole tensor, not along `dim`: sum with dim=dim, keepdim=True.",
        )
    ]
    if dim not in (-1, x.dim() - 1):
        last_max = torch.exp(x - x.amax(dim=-1, keepdim=True))
        bugs += [
            (
                last_max / last_max.sum(dim=dim, keepdim=True),
                f"the maximum is subtracted along the last axis, not along `dim` = {dim}: a shift must be "
                "constant along the axis you normalise.",
            ),
            (
                shifted / shifted.sum(dim=-1, keepdim=True),
                f"softmax is normalised along the last axis whatever `dim` is (here {dim}).",
            ),
        ]
    return bugs


@pytest.mark.points(2)
def test_softmax_matches_torch(student, gen):
    """softmax equals torch.softmax along every dim, and keeps float64"""
    x = randn(gen, 3, 4, 5) * 3
    small = torch.tensor([[0.0, LN3], [0.0, 0.0]])
    for dim in (-1, 0, 1):
        check_close(
            student.softmax(x, dim=dim),
            torch.softmax(x, dim=dim),
            what=f"softmax(x of shape (3, 4, 5), dim={dim})",
            hint="normalise along `dim` only: exp(x - max) / sum(exp(x - max)) with keepdim=True.",
            diagnose=softmax_bugs(x, dim),
            example=Example(
                f"softmax([[0, ln 3], [0, 0]], dim={dim})",
                torch.softmax(small, dim=dim),
                lambda dim=dim: student.softmax(small, dim=dim),
            ),
        )
    x64 = x[0].double()
    out64 = student.softmax(x64)
    check(
        not isinstance(out64, torch.Tensor) or out64.dtype == torch.float64,
        f"softmax of a float64 input returned {getattr(out64, 'dtype', None)}: keep the input's dtype "
        f"(no .float() inside) ({TENSORS}).",
    )
    check_close(out64, torch.softmax(x64, dim=-1), what="softmax of a float64 (4, 5) input", atol=1e-12)


@pytest.mark.points(2)
def test_softmax_is_stable(student, gen):
    """softmax is exact at inputs of ±1e4 (max subtracted first)"""
    x = randn(gen, 4, 6) * 1e4
    out = student.softmax(x)
    check(
        not torch.isnan(out).any(),
        "softmax of inputs around ±1e4 contains NaN: exp overflowed to inf, and inf / inf is NaN; "
        f"subtract the maximum along `dim` before exponentiating ({MASKS}).",
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
    """An all -inf row (or column, along dim 0) gives zeros, not NaN"""
    x = torch.tensor([[0.0, 1.0, 2.0], [float("-inf")] * 3])
    for data, dim, what in ((x, -1, "an all -inf row"), (x.T, 0, "an all -inf column, dim=0")):
        out = student.softmax(data, dim=dim)
        check(
            not torch.isnan(out).any(),
            f"softmax of {what} returned NaN: a fully masked slice must give zeros. When the max is "
            f"-inf shift by 0 instead, and divide by 1 where the sum is 0 ({MASKS}).",
        )
        check_close(out, safe_softmax(data, dim=dim), what=f"softmax of {what}")


# --------------------------------------------------------------------------- masks
def _not_bool(value) -> bool:
    return isinstance(value, torch.Tensor) and value.dtype != torch.bool


@pytest.mark.points(1)
def test_causal_mask_square(student, gen):
    """causal_mask(T) is the lower triangle with the diagonal, dtype bool; causal_mask(1) is [[True]]"""
    T = int(torch.randint(4, 12, (1,), generator=gen))
    for size in (T, 1):
        mask = student.causal_mask(size)
        expected = torch.ones(size, size, dtype=torch.bool).tril()
        check(
            not _not_bool(mask),
            f"causal_mask({size}) has dtype {getattr(mask, 'dtype', None)}: a mask is boolean, True = may "
            f"attend; a 0/1 float mask is not inverted by ~ and not understood by masked_fill ({MASKS}).",
        )
        check_equal(
            mask,
            expected,
            what=f"causal_mask({size})",
            hint="True where key j <= query i; dtype torch.bool.",
            diagnose=[
                (
                    expected.tril(-1),
                    f"the diagonal is excluded: a token must attend to itself, j <= i ({MASKS}).",
                ),
                (
                    ~expected,
                    f"the mask is inverted: True must mean *may attend* (the past and the token itself), "
                    f"not the future to hide ({MASKS}).",
                ),
            ],
        )


@pytest.mark.points(2)
def test_causal_mask_bottom_right(student, gen):
    """causal_mask(T_q, T_k) with T_q < T_k is bottom-right aligned (T_q = 1, 3, T_k; and 1, 1)"""
    T_k = int(torch.randint(5, 10, (1,), generator=gen))
    for T_q, T_keys in ((1, T_k), (3, T_k), (T_k, T_k), (1, 1)):
        expected = torch.ones(T_q, T_keys, dtype=torch.bool).tril(T_keys - T_q)
        check_equal(
            student.causal_mask(T_q, T_keys),
            expected,
            what=f"causal_mask({T_q}, {T_keys})",
            hint="query i is at absolute position T_k - T_q + i.",
            diagnose=[
                (
                    torch.ones(T_q, T_keys, dtype=torch.bool).tril(),
                    f"the mask is top-left aligned: query i sits at position T_k - T_q + i, so a single "
                    f"cached query attends to every key ({MASKS}).",
                )
            ],
        )


@pytest.mark.points(1)
def test_padding_mask(student, gen):
    """padding_mask marks real tokens True, for lengths 0 and T too"""
    T = 9
    lengths = torch.cat([torch.tensor([0, T, 1]), torch.randint(0, T + 1, (3,), generator=gen)])
    positions = torch.arange(T)[None, :]
    expected = positions < lengths[:, None]
    check_equal(
        student.padding_mask(lengths, T),
        expected,
        what=f"padding_mask({lengths.tolist()}, {T})",
        hint="row b is True at positions < lengths[b].",
        diagnose=[
            (
                ~expected,
                f"the mask is inverted: True marks the real tokens (the keys that may be attended), "
                f"False the padding ({MASKS}).",
            ),
            (
                positions <= lengths[:, None],
                "one position too many is marked real: positions run from 0, so position lengths[b] is "
                "already padding; use < lengths[b].",
            ),
        ],
        example=Example(
            "padding_mask([0, 2], 3)",
            torch.tensor([[False, False, False], [True, True, False]]),
            lambda: student.padding_mask(torch.tensor([0, 2]), 3),
        ),
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
        example=Example(
            HAND_INPUTS,
            torch.tensor([[0.75, 0.25]]),
            lambda: student.scaled_dot_product_attention(HAND_Q, HAND_K, HAND_V)[0],
        ),
    )
    check_close(
        weights,
        expected_w,
        what="attention weights",
        hint="weights = softmax over keys of the scaled scores.",
        example=Example(
            HAND_INPUTS,
            torch.tensor([[0.75, 0.25]]),
            lambda: student.scaled_dot_product_attention(HAND_Q, HAND_K, HAND_V)[1],
        ),
    )


@pytest.mark.points(3)
def test_sdpa_matches_pytorch_4d_masked(student, gen):
    """Equal to PyTorch's with a random boolean mask on 4-D (B, h, T, d) inputs"""
    q, k, v = randn(gen, 2, 3, 6, 8), randn(gen, 2, 3, 6, 8), randn(gen, 2, 3, 6, 5)
    mask = random_mask(gen, 2, 3, 6, 6)
    what = "masked attention output (B=2, h=3, T=6, d_k=8)"
    try:
        out, weights = student.scaled_dot_product_attention(q, k, v, mask)
    except SubmissionTimeout:
        raise
    except SubmissionError as exc:
        explain_crash_on_leading_axes(student, exc, what)
        raise
    expected_out, expected_w = oracle_sdpa(q, k, v, mask)
    check_close(
        out,
        expected_out,
        what=what,
        hint="masked_fill(~mask, -inf) on the scores, before softmax; transpose only the last two axes of k.",
        diagnose=classic_bugs(q, k, v, mask),
    )
    check_close(weights, expected_w, what="masked attention weights")
    check(
        bool((weights[~mask] == 0).all()),
        f"masked positions must get exactly zero weight: -inf before the softmax ({MASKS}).",
    )


@pytest.mark.points(1)
def test_sdpa_any_leading_dims(student, gen):
    """Works with no batch dim, with three leading dims (keeping float64) and with a single key"""
    q, k, v = randn(gen, 4, 8), randn(gen, 6, 8), randn(gen, 6, 2)
    check_close(
        student.scaled_dot_product_attention(q, k, v)[0], oracle_sdpa(q, k, v)[0], what="2-D attention"
    )
    # One key: every weight is 1 and every output is that key's value.
    out, weights = student.scaled_dot_product_attention(q, k[:1], v[:1])
    check_close(weights, torch.ones(4, 1), what="weights over a single key (T_k = 1)")
    check_close(out, v[:1].expand(4, 2), what="output with a single key (T_k = 1)")
    q, k, v = (randn(gen, 2, 2, 3, 4, 8, dtype=torch.float64) for _ in range(3))
    out = student.scaled_dot_product_attention(q, k, v)[0]
    check(
        not isinstance(out, torch.Tensor) or out.dtype == torch.float64,
        f"attention on float64 inputs returned {getattr(out, 'dtype', None)}: keep the input's dtype "
        f"({TENSORS}).",
    )
    check_close(
        out,
        oracle_sdpa(q, k, v)[0],
        what="5-D float64 attention",
        atol=1e-10,
        hint="use -2/-1 axes (k.transpose(-2, -1)).",
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
        diagnose=lambda: classic_bugs(q, k, v, causal),
    )
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    pad = (torch.arange(T)[None, :] < lengths[:, None])[:, None, :]  # (B, 1, T)
    check_close(
        student.scaled_dot_product_attention(q, k, v, pad)[0],
        oracle_sdpa(q, k, v, pad)[0],
        what="attention with a (B, 1, T_k) padding mask",
        diagnose=lambda: classic_bugs(q, k, v, pad),
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
        "a fully masked query row produced NaN: softmax of an all -inf row must return zeros, never NaN "
        f"({MASKS}).",
    )
    check_close(
        weights[0, 1],
        torch.zeros(5),
        what="weights of a fully masked row",
        diagnose=[
            (
                torch.full((5,), 0.2),
                "a fully masked row got uniform weights instead of zeros: the masked scores were set to a "
                f"large finite number (such as -1e9) instead of -inf ({MASKS}).",
            )
        ],
    )
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
        "attention with scores around ±1e4 returned NaN or inf: exp overflowed; subtract the row max "
        f"inside softmax ({MASKS}).",
    )
    check_close(out, oracle_sdpa(q, k, v)[0], what="attention at large scores", atol=1e-4, rtol=1e-4)


@pytest.mark.points(2)
def test_sdpa_gradients(submission, gen):
    """Gradients with respect to q, k and v equal PyTorch's"""
    q, k, v = randn(gen, 2, 5, 8), randn(gen, 2, 5, 8), randn(gen, 2, 5, 4)
    upstream = randn(gen, 2, 5, 4)
    try:
        got = submission.run(attention_grads, submission.module(), q, k, v, upstream)
    except SubmissionTimeout:
        raise
    except SubmissionError as exc:
        if "inplace" not in str(exc):
            raise
        raise GradingFailure(
            "the backward pass failed: a tensor that autograd still needs was modified in place (such "
            "as exp /= total or x.masked_fill_); use out-of-place operations (exp / total).\n\n"
            f"{exc}\n\nYour code's traceback:\n{exc.traceback.rstrip()}"
        ) from None
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
        diagnose=[
            (
                oracle_sdpa(q[:, -1:], k, v, torch.ones(1, T, dtype=torch.bool).tril())[0],
                f"the one cached query sees only key 0: causal_mask(1, T_k) is top-left aligned; it must "
                f"be bottom-right, query i at position T_k - T_q + i ({MASKS}).",
            )
        ],
    )


# --------------------------------------------------------------------------- additive attention
@pytest.mark.points(2)
def test_additive_attention_parameters(submission):
    """AdditiveAttention(5, 7, 6) has d_hidden·(d_query + d_key + 1) = 78 parameters, no biases"""
    sd = submission.module().AdditiveAttention(5, 7, 6).state_dict()
    total = sum(t.numel() for t in sd.values())
    shapes = sorted(tuple(t.shape) for t in sd.values())
    biases = {name: t.numel() for name, t in sd.items() if t.dim() == 1}
    check(
        not biases,
        f"AdditiveAttention(5, 7, 6) has biases {sorted(biases)} ({sum(biases.values())} extra parameters; "
        "a bias on W_q or W_k adds d_hidden = 6 each, one on v adds 1): the course's version has no "
        "bias anywhere, nn.Linear(…, bias=False).",
    )
    check(
        total == 78,
        f"AdditiveAttention(5, 7, 6) has {total} parameters, expected 78 (shapes {shapes}).",
        "W_q (6×5), W_k (6×7) and v (1×6), all without bias.",
    )


def _additive_oracle(sd, query, keys, mask, bug=None):
    """Bahdanau attention computed here, or one of its classic mistakes."""
    by_shape = {tuple(t.shape): t for t in sd.values()}
    W_q, W_k, v = by_shape[(6, 5)], by_shape[(6, 7)], by_shape[(1, 6)]
    hidden = (query @ W_q.T)[:, None, :] + keys @ W_k.T  # (B, T, 6)
    scores = ((hidden if bug == "no_tanh" else torch.tanh(hidden)) @ v.T).squeeze(-1)  # (B, T)
    if mask is not None:
        if bug == "inverted":
            mask = ~mask
        scores = scores.masked_fill(~mask, -1e9 if bug == "finite" else float("-inf"))
    weights = safe_softmax(scores, dim=0 if bug == "batch_axis" else -1)
    return (weights[..., None] * keys).sum(1), weights


ADDITIVE_BUGS = {
    "no_tanh": "the scores miss the tanh: e_j = vᵀ tanh(W_q q + W_k k_j).",
    "inverted": f"the mask is inverted: True means *may attend* ({MASKS}).",
    "batch_axis": "the weights are normalised over the batch axis instead of over the T keys: softmax "
    "over the last axis.",
}


def _additive_module(submission, gen):
    module = submission.module().AdditiveAttention(5, 7, 6)
    sd = {name: randn(gen, *t.shape) for name, t in module.state_dict().items()}
    check(
        {tuple(t.shape) for t in sd.values()} >= {(6, 5), (6, 7), (1, 6)},
        "expected weights of shapes (6, 5), (6, 7) and (1, 6) for AdditiveAttention(5, 7, 6).",
    )
    module.load_state_dict(sd)
    return module, sd


@pytest.mark.points(3)
def test_additive_attention_forward(submission, gen):
    """Bahdanau scores vᵀ tanh(W_q q + W_k k_j), softmax over keys, context = Σ α_j k_j"""
    module, sd = _additive_module(submission, gen)
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
            diagnose=lambda m=m: [
                (_additive_oracle(sd, query, keys, m, bug)[1], text)
                for bug, text in ADDITIVE_BUGS.items()
                if m is not None or bug != "inverted"
            ],
        )
        check_close(context, expected_c, what=f"additive attention context {label}")


@pytest.mark.points(2)
def test_additive_attention_edges(submission, gen):
    """Additive attention with one key (T = 1), a batch of one, and a fully masked row"""
    module, sd = _additive_module(submission, gen)
    cases = [
        ("one key (B=2, T=1)", randn(gen, 2, 5), randn(gen, 2, 1, 7), None),
        ("a batch of one (B=1, T=3)", randn(gen, 1, 5), randn(gen, 1, 3, 7), None),
    ]
    mask = random_mask(gen, 3, 4)
    mask[1] = False  # query 1 may see no key at all
    cases.append(("a fully masked row (row 1)", randn(gen, 3, 5), randn(gen, 3, 4, 7), mask))
    for label, query, keys, m in cases:
        context, weights = module(query, keys, m) if m is not None else module(query, keys)
        expected_c, expected_w = _additive_oracle(sd, query, keys, m)
        check(
            not isinstance(weights, torch.Tensor) or weights.dim() == 2,
            f"additive attention with {label}: weights of shape {tuple(weights.shape)}, expected "
            f"{tuple(expected_w.shape)}: squeeze() without an axis also drops the length-one batch or "
            "key axis; squeeze(-1) drops only the last one.",
        )
        check(
            m is None or not torch.isnan(weights).any(),
            f"additive attention with {label} produced NaN: a fully masked row must get zero weights and a "
            f"zero context ({MASKS}).",
        )
        check_close(
            weights,
            expected_w,
            what=f"additive attention weights with {label}",
            diagnose=[
                (
                    _additive_oracle(sd, query, keys, m, "finite")[1],
                    "a fully masked row got uniform weights instead of zeros: the masked scores were set "
                    f"to a large finite number (such as -1e9) instead of -inf ({MASKS}).",
                )
            ]
            if m is not None
            else [],
        )
        check_close(context, expected_c, what=f"additive attention context with {label}")


# --------------------------------------------------------------------------- one head
def _head_weights(gen, d_model, d_head):
    return {
        f"{n}.weight": randn(gen, d_head, d_model) / math.sqrt(d_model) for n in ("query", "key", "value")
    }


def _load_head(head, sd):
    names = sorted(head.state_dict().keys())
    extra = [n for n in names if n.endswith(".bias")]
    check(
        not extra,
        f"SelfAttentionHead has biases ({', '.join(extra)}): its query, key and value projections are "
        "nn.Linear(d_model, d_head, bias=False).",
    )
    check(
        names == sorted(sd),
        f"SelfAttentionHead parameters are {names}; expected {sorted(sd)} (see the docstring).",
    )
    head.load_state_dict(sd)


@pytest.mark.points(3)
def test_self_attention_head_matches_pytorch(submission, gen):
    """SelfAttentionHead equals F.scaled_dot_product_attention on its own projections"""
    module = submission.module()
    for causal in (False, True):
        head = module.SelfAttentionHead(12, 4, causal=causal)
        sd = _head_weights(gen, 12, 4)
        _load_head(head, sd)
        x = randn(gen, 2, 6, 12)
        q, k, v = (x @ sd[f"{n}.weight"].T for n in ("query", "key", "value"))
        expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        check_close(
            head(x),
            expected,
            what=f"SelfAttentionHead(12, 4, causal={causal})",
            hint="q, k and v are three bias-free projections of the same x; causal=True adds causal_mask(T).",
        )


@pytest.mark.points(2)
def test_head_masks_and_last_weights(submission, gen):
    """A causal head combines its mask with a padding mask it is given, and keeps last_weights (B, T, T)"""
    head = submission.module().SelfAttentionHead(12, 4, causal=True)
    sd = _head_weights(gen, 12, 4)
    _load_head(head, sd)
    B, T = 3, 6
    x = randn(gen, B, T, 12)
    lengths = torch.tensor([T, 2, 4])
    pad = (torch.arange(T)[None, :] < lengths[:, None])[:, None, :]  # (B, 1, T)
    q, k, v = (x @ sd[f"{n}.weight"].T for n in ("query", "key", "value"))
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    expected, expected_w = oracle_sdpa(q, k, v, causal & pad)
    check_close(
        head(x, pad),
        expected,
        what="causal SelfAttentionHead with a (B, 1, T) padding mask",
        hint="with causal=True and a mask, a key must be both in the past and allowed: mask & causal.",
        diagnose=[
            (
                oracle_sdpa(q, k, v, causal)[0],
                "with causal=True your head drops the padding mask passed to forward: combine the two, "
                "mask & causal_mask(T).",
            ),
            (
                oracle_sdpa(q, k, v, pad)[0],
                "when a mask is passed, your head drops its causal mask: combine the two, mask & "
                "causal_mask(T).",
            ),
        ],
    )
    last = head.last_weights
    check(
        isinstance(last, torch.Tensor),
        f"head.last_weights is {'None' if last is None else type(last).__name__} after a call: keep the attention weights of the "
        "last forward pass there, (B, T, T).",
    )
    check_close(last, expected_w, what="head.last_weights after a call on (3, 6, 12)")


@pytest.mark.points(3)
def test_causal_head_ignores_the_future(submission, gen):
    """Changing later tokens leaves earlier outputs bit-identical; without causal they change"""
    module = submission.module()
    x = randn(gen, 2, 8, 12)
    t = int(torch.randint(2, 7, (1,), generator=gen))
    x2 = x.clone()
    x2[:, t:] = randn(gen, 2, 8 - t, 12)
    causal = module.SelfAttentionHead(12, 4, causal=True)
    plain = module.SelfAttentionHead(12, 4, causal=False)
    sd = {name: randn(gen, *w.shape) / math.sqrt(12) for name, w in causal.state_dict().items()}
    causal.load_state_dict(sd)
    plain.load_state_dict(sd)
    a, b = causal(x), causal(x2)
    if not torch.equal(a[:, :t], b[:, :t]) and torch.allclose(a, plain(x), atol=1e-6):
        raise GradingFailure(
            "your head with causal=True computes exactly what it computes with causal=False: the causal "
            "flag is ignored; with it, mask the scores with causal_mask(T) before the softmax."
        )
    check(
        torch.equal(a[:, :t], b[:, :t]),
        f"changing tokens {t}… changed the causal head's outputs at positions < {t}: the future leaks.",
        "mask with causal_mask(T) (True on and below the diagonal) before the softmax.",
    )
    c, d = plain(x), plain(x2)
    check(
        not torch.allclose(c[:, :t], d[:, :t]),
        "with causal=False the head ignored later tokens: it must attend to every position.",
    )


# --------------------------------------------------------------------------- before attention
def rnn_closed_form(x, h, w_ih, w_hh, b_ih, b_hh, bug=None):
    """One step of nn.RNN's tanh cell, or one of its classic mistakes."""
    w_hh = w_hh.T if bug == "w_hh_transposed" else w_hh
    pre = x @ w_ih.T + (0 if bug == "no_b_ih" else b_ih) + h @ w_hh.T + (0 if bug == "no_b_hh" else b_hh)
    return pre if bug == "no_tanh" else torch.tanh(pre)


RNN_CELL_BUGS = {
    "no_tanh": f"the tanh is missing: h_t = tanh(x_t W_ihᵀ + b_ih + h_prev W_hhᵀ + b_hh) ({TENSORS}).",
    "w_hh_transposed": "W_hh is used transposed: h_prev @ W_hh instead of h_prev @ W_hh.T (rows of "
    f"W_hh are the new state's units, nn.Linear layout) ({TENSORS}).",
    "no_b_ih": f"the input bias b_ih is missing: nn.RNN adds both biases, b_ih and b_hh ({TENSORS}).",
    "no_b_hh": f"the recurrent bias b_hh is missing: nn.RNN adds both biases, b_ih and b_hh ({TENSORS}).",
}


@pytest.mark.points(2)
def test_rnn_cell_matches_torch(student, gen):
    """rnn_cell equals nn.RNNCell (tanh) with d_in ≠ d_h, and on a batch of one"""
    d_in, d_h = 3, 5
    weights = {
        "weight_ih": randn(gen, d_h, d_in),
        "weight_hh": randn(gen, d_h, d_h) / 2,
        "bias_ih": randn(gen, d_h),
        "bias_hh": randn(gen, d_h),
    }
    cell = nn.RNNCell(d_in, d_h)
    cell.load_state_dict(weights)
    args = tuple(weights.values())
    x, h = randn(gen, 4, d_in), randn(gen, 4, d_h)
    hand = [
        torch.tensor([[1.0, 0.0]]),
        torch.tensor([[0.0, 1.0]]),
        torch.tensor([[1.0, 0.0], [0.0, 0.0]]),
        torch.tensor([[0.0, 0.5], [0.0, 0.0]]),
        torch.tensor([0.0, 0.25]),
        torch.tensor([0.0, 0.25]),
    ]
    for xs, hs, label in ((x, h, "B=4"), (x[:1], h[:1], "a batch of one")):
        with torch.no_grad():
            expected = cell(xs, hs)
        check_close(
            student.rnn_cell(xs, hs, *args),
            expected,
            what=f"rnn_cell, {label}, d_in={d_in}, d_h={d_h}",
            hint="h_t = tanh(x_t W_ihᵀ + b_ih + h_prev W_hhᵀ + b_hh).",
            diagnose=[(rnn_closed_form(xs, hs, *args, bug), text) for bug, text in RNN_CELL_BUGS.items()],
            example=Example(
                "x_t = [[1, 0]], h_prev = [[0, 1]], W_ih = [[1, 0], [0, 0]], W_hh = [[0, 0.5], [0, 0]], "
                "b_ih = b_hh = [0, 0.25] (pre-activation [1.5, 0.5])",
                torch.tanh(torch.tensor([[1.5, 0.5]])),
                lambda: student.rnn_cell(*hand),
            ),
        )


def _rnn_state_dict(d_in, d_h):
    return nn.RNN(d_in, d_h, batch_first=True).state_dict()


@pytest.mark.points(1)
def test_rnn_encoder_parameters(submission):
    """RNNEncoder has nn.RNN's parameter names and shapes, initialised uniform in ±1/√d_h"""
    d_in, d_h = 3, 16
    sd = submission.module().RNNEncoder(d_in, d_h).state_dict()
    expected = {name: tuple(t.shape) for name, t in _rnn_state_dict(d_in, d_h).items()}
    got = {name: tuple(t.shape) for name, t in sd.items()}
    check(
        got == expected,
        f"RNNEncoder({d_in}, {d_h}) parameters are {got}; expected nn.RNN's {expected} (names and "
        f"shapes, so that nn.RNN's state dict loads) ({TENSORS}).",
    )
    bound = 1 / math.sqrt(d_h)
    largest = max(float(t.abs().max()) for t in sd.values())
    check(
        largest <= bound,
        f"a fresh RNNEncoder({d_in}, {d_h}) has a parameter of size {largest:.3g}, outside "
        f"[-1/√d_h, 1/√d_h] = ±{bound:g}: initialise every parameter as nn.RNN does, uniform in that range.",
    )
    check(
        all(float(t.std()) > bound / 4 for t in sd.values()),
        f"a fresh RNNEncoder({d_in}, {d_h}) has a parameter that is (nearly) constant: initialise every "
        "parameter uniform in [-1/√d_h, 1/√d_h].",
    )


def _unrolled(cell, x, h):
    """States of nn.RNNCell run over x (B, T, d_in) from h, and those of the mistake that restarts
    every step from h (the state not carried)."""
    with torch.no_grad():
        states, state = [], h
        for t in range(x.size(1)):
            state = cell(x[:, t], state)
            states.append(state)
        stale = [cell(x[:, t], h) for t in range(x.size(1))]
    return torch.stack(states, 1), torch.stack(stale, 1)


@pytest.mark.points(3)
def test_rnn_encoder_matches_nn_rnn(submission, gen):
    """RNNEncoder equals nn.RNN(batch_first=True): default and given h0, T = 1, B = 1, a continued sequence"""
    d_in, d_h = 3, 5
    encoder = submission.module().RNNEncoder(d_in, d_h)
    sd = {name: randn(gen, *t.shape) / 2 for name, t in _rnn_state_dict(d_in, d_h).items()}
    names = sorted(encoder.state_dict().keys())
    check(names == sorted(sd), f"RNNEncoder parameters are {names}; expected nn.RNN's {sorted(sd)}.")
    encoder.load_state_dict(sd)
    rnn = nn.RNN(d_in, d_h, batch_first=True)
    rnn.load_state_dict(sd)
    cell = nn.RNNCell(d_in, d_h)
    cell.load_state_dict({name[:-3]: t for name, t in sd.items()})  # weight_ih_l0 -> weight_ih
    x, h0 = randn(gen, 2, 6, d_in), randn(gen, 2, d_h)
    cases = [
        ("B=2, T=6, h0 default", x, None),
        ("B=2, T=6, h0 given", x, h0),
        ("T=1", x[:, :1], h0),
        ("a batch of one", x[:1], None),
    ]
    for label, xs, h in cases:
        got_states, got_final = encoder(xs) if h is None else encoder(xs, h)
        start = torch.zeros(xs.size(0), d_h) if h is None else h
        with torch.no_grad():
            expected_states, expected_final = rnn(xs, start[None])
        B, T = xs.shape[:2]
        check(
            not (isinstance(got_states, torch.Tensor) and got_states.shape == (T, B, d_h) and T != B),
            f"RNNEncoder states ({label}) have shape {(T, B, d_h)}: time-major; the encoder is "
            f"batch-first, (B, T, d_h): stack the states along dim=1 ({TENSORS}).",
        )
        states, stale = _unrolled(cell, xs, start)
        diagnoses = [
            (
                stale,
                "the state is not carried: every step starts again from h0 instead of the state of "
                "the step before, h_t = cell(x_t, h_{t-1}).",
            )
        ]
        if h is not None:
            diagnoses.append(
                (
                    _unrolled(cell, xs, torch.zeros_like(h))[0],
                    "the h0 you were given is ignored: the encoder starts from zeros only when h0 is None.",
                )
            )
        check_close(
            got_states,
            expected_states,
            what=f"RNNEncoder states ({label})",
            hint="states[:, t] is the state after x[:, t]; each step starts from the state before.",
            diagnose=diagnoses,
            example=Example(
                "x = [[[1], [0]]] (B=1, T=2, d_in=1), d_h=1, W_ih = W_hh = [[1]], biases 0, no h0: "
                "states [tanh 1, tanh(tanh 1)]",
                torch.tensor([[[math.tanh(1.0)], [math.tanh(math.tanh(1.0))]]]),
                lambda: _tiny_encoder(submission)(torch.tensor([[[1.0], [0.0]]]))[0],
            ),
        )
        check_close(
            got_final,
            expected_final[0],
            what=f"RNNEncoder final state ({label})",
            hint="final is the state after the last step, states[:, -1], shape (B, d_h).",
        )
    # Continuing: the final state of the first part, passed as h0, carries the sequence on.
    _, first = encoder(x[:, :2])
    rest_states, rest_final = encoder(x[:, 2:], first)
    with torch.no_grad():
        whole, whole_final = rnn(x)
    check_close(
        rest_states,
        whole[:, 2:],
        what="states of x[:, 2:] started from the final state of x[:, :2]",
        hint="with h0 = final of the first part, the second call must continue where the first stopped.",
    )
    check_close(rest_final, whole_final[0], what="final state of the continued sequence")


def _tiny_encoder(submission):
    encoder = submission.module().RNNEncoder(1, 1)
    one, zero = torch.ones(1, 1), torch.zeros(1)
    encoder.load_state_dict(
        {"weight_ih_l0": one, "weight_hh_l0": one, "bias_ih_l0": zero, "bias_hh_l0": zero}
    )
    return encoder


def lookup_oracle(query, keys, values, bug=None):
    scores = (keys @ query.unsqueeze(-1)).squeeze(-1)  # (..., T)
    if bug != "no_scale":
        scores = scores / math.sqrt(query.size(-1))
    weights = torch.softmax(scores, dim=0 if bug == "batch_axis" else -1)
    return (weights.unsqueeze(-1) * values).sum(-2), weights


LOOKUP_BUGS = {
    "no_scale": f"the scores are not scaled: divide q·k_j by √d_k ({MASKS}).",
    "batch_axis": "the weights are normalised over the batch axis instead of over the T keys: softmax "
    "over the last axis.",
}


@pytest.mark.points(2)
def test_attention_lookup_matches_closed_form(student, gen):
    """attention_lookup is softmax(q Kᵀ/√d_k) V for one query; also with T = 1 and no batch axis"""
    query, keys, values = randn(gen, 3, 8), randn(gen, 3, 6, 8), randn(gen, 3, 6, 5)
    out, weights = student.attention_lookup(query, keys, values)
    expected = F.scaled_dot_product_attention(query[:, None], keys, values)[:, 0]
    check_close(
        weights,
        lookup_oracle(query, keys, values)[1],
        what="attention_lookup weights (B=3, T=6, d_k=8)",
        hint="weights = softmax over the T keys of q·k_j / √d_k.",
        diagnose=[(lookup_oracle(query, keys, values, bug)[1], text) for bug, text in LOOKUP_BUGS.items()],
        example=Example(
            "query = [2·ln 3, 0, 0, 0], keys = [[1, 0, 0, 0], [0, 1, 0, 0]], values = [[1, 0], [0, 1]] "
            "(d_k = 4: scores [ln 3, 0] after the scale 1/2)",
            torch.tensor([0.75, 0.25]),
            lambda: student.attention_lookup(HAND_Q[0], HAND_K, HAND_V)[1],
        ),
    )
    check_close(
        out,
        expected,
        what="attention_lookup output (B=3, T=6, d_v=5)",
        hint="the output is Σ_j α_j v_j, shape (B, d_v).",
    )
    one_out, one_weights = student.attention_lookup(query, keys[:, :1], values[:, :1])
    check_close(one_weights, torch.ones(3, 1), what="attention_lookup weights over a single key (T = 1)")
    check_close(one_out, values[:, 0], what="attention_lookup output with a single key (T = 1)")
    flat = student.attention_lookup(query[0], keys[0], values[0])[0]
    check_close(flat, expected[0], what="attention_lookup without a batch axis: query (d_k,), keys (T, d_k)")


@pytest.mark.points(1)
def test_attention_lookup_retrieves_exactly(student, gen):
    """A query that matches one key strongly (score 100) retrieves that key's value exactly"""
    T, d = 5, 8
    keys = torch.linalg.qr(randn(gen, d, T))[0].T.contiguous()  # (T, d): orthonormal rows
    values = randn(gen, T, 3)
    # Query b points along key b, scaled so that its score q·k_b / √d is 100 (the others are 0).
    query = 100 * math.sqrt(d) * keys  # (T, d): one lookup per key, batched
    out, weights = student.attention_lookup(query, keys.expand(T, T, d), values.expand(T, T, 3))
    check(
        not torch.isnan(out).any() and not torch.isnan(weights).any(),
        "attention_lookup of a query that matches one key strongly (score 100) produced NaN: exp(100) "
        f"overflows float32; subtract the maximum score first (the week's softmax does) ({MASKS}).",
    )
    check_close(
        weights, torch.eye(T), what="weights of a lookup whose query matches one key (score 100)", atol=1e-6
    )
    check_close(out, values, what="value retrieved by a query that matches one key", atol=1e-5)


# --------------------------------------------------------------------------- built, not borrowed
FORBIDDEN = {
    "scaled_dot_product_attention": "F.scaled_dot_product_attention",
    "softmax": "a library softmax (torch.softmax / F.softmax / Tensor.softmax)",
    "MultiheadAttention": "nn.MultiheadAttention",
    "multi_head_attention_forward": "F.multi_head_attention_forward",
    "RNN": "nn.RNN",
    "RNNCell": "nn.RNNCell",
    "rnn_tanh": "torch.rnn_tanh",
    "rnn_tanh_cell": "torch.rnn_tanh_cell",
}


# ATen operators that mean a library softmax or attention ran, whatever Python spelled it.
LIBRARY_OPS = {
    "aten._softmax": "a library softmax",
    "aten._safe_softmax": "a library softmax",
    "aten._log_softmax": "a library softmax",
    "aten._native_multi_head_attention": "library attention",
}


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
    kinds = sorted({LIBRARY_OPS.get(op, "library attention") for op in used})
    check(
        not used,
        f"your code ran {' and '.join(kinds)} ({', '.join(used)}): this week asks you to build softmax "
        "and attention from exp, sum and matrix products.",
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
