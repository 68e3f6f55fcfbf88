"""Week 4 hidden suite, part 1: LayerNorm, RMSNorm and the feed-forward network.

Oracles are PyTorch built-ins (F.layer_norm, F.rms_norm, F.gelu, F.silu, nn.Linear layout)
computed here on inputs drawn from the grading seed; the submission runs behind proxies.
"""

# What the week promises, and the test that holds each promise at its edge (both files).
#
# CONVENTIONS.md § Blocks, and the docstrings of solutions/w04_blocks.py:
# - LayerNorm: biased variance, eps inside the root      test_layernorm_matches_torch (d = 6, where
#   d and d − 1 differ by 20%); test_layernorm_tiny_variance (var ≪ eps, a constant row -> the
#   bias, not NaN); test_norm_edges (d = 1: var = 0 for every token, the output is the bias;
#   the eps argument is the one used); weight ones / bias zeros   test_layernorm_parameters
# - RMSNorm: no centring, eps inside, weight ones, no bias   test_rmsnorm_matches_torch (mean
#   square below eps too), test_rmsnorm_parameters, test_norm_edges (d = 1, a given eps)
# - norms over the last axis, built from tensor ops    test_layernorm_matches_torch (2-D and
#   3-D), test_norms_built_not_borrowed; gradients     test_norm_gradients
# - d_ff = 4·d_model for every activation, SwiGLU included (no 8/3 rule), d_model = 10 (not a
#   power of two); w3 only for SwiGLU; bias=False     test_ffn_width_and_parameters
# - exact GELU, tanh GELU, ReLU, SwiGLU with w1 the gate and w3 the up projection
#                                                     test_ffn_gelu_exact … test_ffn_swiglu
# - dropout: on the FFN output, each attention's output and the attention weights, training
#   only; p = 1 (degenerate) drops every sublayer     test_ffn_dropout_train_eval,
#   test_block_dropout_train_eval, test_dropout_one_drops_every_sublayer
# - pre-LN (default) / post-LN, residual per sublayer, norm1 before attention and norm2 before
#   the FFN, no final norm in a pre-LN block           test_pre_ln_* probes, test_post_ln_block
# - causal flag combined with the mask by &, diagonal kept; T = 1 (one token sees itself)
#                                                     test_block_causal_flag, test_single_token
# - RoPE on q and k after the projections, positions default 0 … T−1, explicit positions
#                                                     test_block_rope, test_block_rope_positions
# - decoder: causal self-attention with self_mask, cross-attention over memory (T ≠ S, and
#   T = 1 with S > 1), memory as it is, memory_mask    test_decoder_* , test_single_token
# - exact parameter counts (every norm × activation × bias, default and odd d_ff, decoder;
#   the modules hold as many)                          test_block_param_count,
#                                                     test_block_modules_have_counted_parameters

from __future__ import annotations

import ast

import pytest
import torch

from autograder.checks import Example, GradingFailure, check, check_close, check_equal, convention
from autograder.drivers.common import outputs_in_modes
from autograder.drivers.w04 import block_grads
from autograder.suites.w04_blocks import oracle

pytestmark = pytest.mark.w04
BLOCKS = convention("Blocks")

# Largest |reference − F.layer_norm| over 20 seeds (also for torch.var- and rsqrt-based
# variants): 1.4e-6 on these inputs, 1.0e-6 at tiny variance; RMSNorm vs F.rms_norm 4.8e-7.
NORM_ATOL = 1e-5


def randn(gen, *shape):
    return torch.randn(*shape, generator=gen)


def random_state(module, gen, *, norm_scale=0.3, bias_scale=0.5):
    """Random weights for every entry of a module's state dict, loaded into it; returns them.

    Norm weights scatter around 1, biases around 0, linear weights ~ N(0, 1/d_in)."""
    sd = {}
    for name, t in module.state_dict().items():
        if name.endswith("bias"):
            sd[name] = randn(gen, *t.shape) * bias_scale
        elif t.dim() == 1:
            sd[name] = 1 + randn(gen, *t.shape) * norm_scale
        else:
            sd[name] = randn(gen, *t.shape) / t.shape[-1] ** 0.5
    module.load_state_dict(sd)
    return sd


def tokens(gen, *shape, shift=2.0, scale=3.0):
    """Inputs with a per-token offset and scale, so that centring and scaling both matter."""
    *lead, d = shape
    return randn(gen, *shape) * (scale * torch.rand(*lead, 1, generator=gen) + 0.5) + shift * randn(
        gen, *lead, 1
    )


def layernorm_example(student) -> Example:
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    return Example(
        "LayerNorm(4) as initialised (weight 1, bias 0), x = [[1., 2., 3., 4.]] (mean 2.5, biased "
        "variance 1.25)",
        oracle.layer_norm(x, torch.ones(4), torch.zeros(4)),
        lambda: student.LayerNorm(4)(x),
    )


def rmsnorm_example(student) -> Example:
    x = torch.tensor([[3.0, 4.0]])
    return Example(
        "RMSNorm(2) as initialised (weight 1), x = [[3., 4.]] (mean of squares 12.5)",
        oracle.rms_norm(x, torch.ones(2)),
        lambda: student.RMSNorm(2)(x),
    )


# --------------------------------------------------------------------------- LayerNorm
@pytest.mark.points(1)
def test_layernorm_parameters(student):
    """LayerNorm(d) has weight (d,) = ones and bias (d,) = zeros, eps 1e-5"""
    ln = student.LayerNorm(7)
    sd = ln.state_dict()
    check(
        sorted(sd) == ["bias", "weight"],
        f"LayerNorm(7) has parameters {sorted(sd)}; expected ['bias', 'weight'].",
        "self.weight = nn.Parameter(torch.ones(d)); self.bias = nn.Parameter(torch.zeros(d)).",
    )
    check_equal(sd["weight"], torch.ones(7), what="LayerNorm(7).weight at initialisation")
    check_equal(sd["bias"], torch.zeros(7), what="LayerNorm(7).bias at initialisation")
    check(ln.eps == 1e-5, f"LayerNorm's default eps is {ln.eps!r}; expected 1e-5.")


@pytest.mark.points(3)
def test_layernorm_matches_torch(student, gen):
    """LayerNorm equals F.layer_norm (biased variance, last axis, affine) on 2-D and 3-D inputs"""
    d = 6  # small d: the biased and unbiased variances differ by a factor 6/5
    ln = student.LayerNorm(d)
    sd = random_state(ln, gen)
    for shape in ((3, 5, d), (4, d)):
        x = tokens(gen, *shape)
        check_close(
            ln(x),
            oracle.layer_norm(x, sd["weight"], sd["bias"]),
            what=f"LayerNorm({d}) on input of shape {shape}",
            atol=NORM_ATOL,
            hint="(x − mean) / sqrt(var + eps) · weight + bias, statistics over the last axis.",
            diagnose=oracle.layer_norm_bugs(x, sd["weight"], sd["bias"]),
            example=layernorm_example(student),
        )


@pytest.mark.points(2)
def test_layernorm_tiny_variance(student, gen):
    """At variance far below eps, eps inside the square root decides the output"""
    d = 8
    ln = student.LayerNorm(d)
    sd = random_state(ln, gen)
    # std ~ 1e-3, var ~ 1e-6 ≪ eps = 1e-5: sqrt(var + eps) ≈ sqrt(eps), while sqrt(var) + eps ≈ std.
    x = randn(gen, 4, d) * 1e-3 + 1e-2 * randn(gen, 4, 1)
    x[0] = 0.25  # a constant row: var = 0, the output must be the bias (finite, no NaN)
    out = ln(x)
    check(
        isinstance(out, torch.Tensor) and not torch.isnan(out).any(),
        "LayerNorm of a constant row returned NaN: the denominator must be sqrt(var + eps), never 0.",
    )
    check_close(
        out,
        oracle.layer_norm(x, sd["weight"], sd["bias"]),
        what="LayerNorm at variance ~1e-6 (below eps)",
        atol=NORM_ATOL,
        hint="eps = 1e-5 goes inside the square root: sqrt(var + eps).",
        diagnose=oracle.layer_norm_bugs(x, sd["weight"], sd["bias"]),
    )


# --------------------------------------------------------------------------- RMSNorm
@pytest.mark.points(1)
def test_rmsnorm_parameters(student):
    """RMSNorm(d) has a single weight (d,) = ones and no bias, eps 1e-5"""
    rn = student.RMSNorm(5)
    sd = rn.state_dict()
    if "bias" in sd:
        raise GradingFailure(
            f"RMSNorm(5) has a bias ({sorted(sd)}): RMSNorm rescales only, y = x / rms · weight, with "
            f"no mean subtraction and no bias ({BLOCKS})."
        )
    check(
        sorted(sd) == ["weight"],
        f"RMSNorm(5) has parameters {sorted(sd)}; expected only ['weight'].",
        "RMSNorm rescales only: no bias.",
    )
    check_equal(
        sd["weight"],
        torch.ones(5),
        what="RMSNorm(5).weight at initialisation",
        diagnose=[
            (
                torch.zeros(5),
                "the weight starts at zeros (Gemma's variant, which multiplies by 1 + weight); here "
                f"y = x / rms · weight, so the weight starts at ones and a fresh RMSNorm only rescales ({BLOCKS}).",
            )
        ],
    )
    check(rn.eps == 1e-5, f"RMSNorm's default eps is {rn.eps!r}; expected 1e-5.")


@pytest.mark.points(3)
def test_rmsnorm_matches_torch(student, gen):
    """RMSNorm equals F.rms_norm (eps inside the root, mean of squares over the last axis)"""
    d = 6
    rn = student.RMSNorm(d)
    sd = random_state(rn, gen)
    cases = [tokens(gen, 3, 5, d), randn(gen, 4, d) * 2e-3]  # the second: mean(x²) ~ 4e-6 < eps
    for x in cases:
        check_close(
            rn(x),
            oracle.rms_norm(x, sd["weight"]),
            what=f"RMSNorm({d}) on input of shape {tuple(x.shape)} (mean square ~{float(x.pow(2).mean()):.0e})",
            atol=NORM_ATOL,
            hint="x / sqrt(mean(x²) + eps) · weight over the last axis; no centring, no bias.",
            diagnose=oracle.rms_norm_bugs(x, sd["weight"]),
            example=rmsnorm_example(student),
        )


def _nan_at_d1(student) -> str:
    """Why LayerNorm(1) gave NaN, from a probe at d = 2 (x = [0, 2]: biased var 1, unbiased 2)."""
    got = student.LayerNorm(2)(torch.tensor([[0.0, 2.0]]))
    start = "LayerNorm(1) returned NaN. With one feature every token is its own mean and the variance is 0, "
    if isinstance(got, torch.Tensor) and got.shape == (1, 2):
        unbiased = [
            torch.tensor([[-1.0, 1.0]]) / (2 + 1e-5) ** 0.5,
            torch.tensor([[-1.0, 1.0]]) / (2**0.5 + 1e-5),
        ]
        if any(torch.allclose(got, u, atol=1e-4) for u in unbiased):
            return start + (
                "but the unbiased variance (torch.var / torch.std by default) divides by d − 1 = 0. "
                f"LayerNorm uses the biased variance (divide by d): the output is then the bias ({BLOCKS})."
            )
        if torch.allclose(got, torch.tensor([[-1.0, 1.0]]), atol=1e-7, rtol=0):
            return start + f"and without eps the division is 0 / 0: divide by sqrt(var + eps) ({BLOCKS})."
    return start + f"so the output must be the bias: divide by sqrt(var + eps), never by 0 ({BLOCKS})."


@pytest.mark.points(2)
def test_norm_edges(student, gen):
    """Norm edges: at d = 1 LayerNorm returns its bias (never NaN); a given eps is the one used"""
    ln = student.LayerNorm(1)
    sd = random_state(ln, gen)
    x = tokens(gen, 5, 1)
    out = ln(x)
    if isinstance(out, torch.Tensor) and torch.isnan(out).any():
        raise GradingFailure(_nan_at_d1(student))
    check_close(
        out,
        oracle.layer_norm(x, sd["weight"], sd["bias"]),
        what="LayerNorm(1) (one feature per token)",
        atol=NORM_ATOL,
        hint="with d = 1 each token equals its mean: var = 0, and the output is the bias.",
        diagnose=oracle.layer_norm_bugs(x, sd["weight"], sd["bias"]),
    )
    rn = student.RMSNorm(1)
    sd = random_state(rn, gen)
    check_close(
        rn(x),
        oracle.rms_norm(x, sd["weight"]),
        what="RMSNorm(1) (one feature per token)",
        atol=NORM_ATOL,
        hint="x / sqrt(x² + eps) · weight: about ±weight, the sign of x.",
        diagnose=oracle.rms_norm_bugs(x, sd["weight"]),
    )
    d, eps = 6, 0.1
    x = randn(gen, 4, d) * 0.3 + randn(gen, 4, 1)  # variance ~0.09, comparable with eps = 0.1
    for name in ("LayerNorm", "RMSNorm"):
        mod = getattr(student, name)(d, eps=eps)
        sd = random_state(mod, gen)
        if name == "LayerNorm":
            expected = oracle.layer_norm(x, sd["weight"], sd["bias"], eps)
            default = oracle.layer_norm(x, sd["weight"], sd["bias"])
            bugs = oracle.layer_norm_bugs(x, sd["weight"], sd["bias"], eps)
        else:
            expected = oracle.rms_norm(x, sd["weight"], eps)
            default = oracle.rms_norm(x, sd["weight"])
            bugs = oracle.rms_norm_bugs(x, sd["weight"], eps)
        check_close(
            mod(x),
            expected,
            what=f"{name}({d}, eps={eps})",
            atol=NORM_ATOL,
            hint="use self.eps, the value given to the constructor.",
            diagnose=[
                (
                    default,
                    f"the eps argument is ignored: your {name} uses 1e-5 whatever eps it is given. "
                    "Store it (self.eps = eps) and use self.eps in forward.",
                ),
                *bugs,
            ],
        )


FORBIDDEN = {"layer_norm", "rms_norm", "LayerNorm", "RMSNorm", "group_norm", "GroupNorm"}


@pytest.mark.points(1)
def test_norms_built_not_borrowed(submission, student, gen):
    """LayerNorm and RMSNorm are built from tensor operations, not F.layer_norm / nn.LayerNorm"""
    x = tokens(gen, 2, 6)
    check_close(
        student.LayerNorm(6)(x),
        oracle.layer_norm(x, torch.ones(6), torch.zeros(6)),
        what="LayerNorm (needed before its source is read)",
        atol=NORM_ATOL,
    )
    tree = ast.parse(submission.source())
    offences = []
    for cls in ast.walk(tree):
        if not (isinstance(cls, ast.ClassDef) and cls.name in ("LayerNorm", "RMSNorm")):
            continue
        for node in ast.walk(cls):
            if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN:
                offences.append(f"line {node.lineno} ({cls.name}): .{node.attr}")
    check(
        not offences,
        "this week asks you to build the norms yourself; found " + "; ".join(offences) + ".",
        "mean, variance and a square root are all you need.",
    )


# --------------------------------------------------------------------------- feed-forward
@pytest.mark.points(2)
def test_ffn_width_and_parameters(student):
    """FeedForward: d_ff defaults to 4·d_model; w1, w2 (and w3 for SwiGLU) with nn.Linear shapes"""
    d = 10
    cases = [
        (dict(), 40, False, True),
        (dict(d_ff=24), 24, False, True),
        (dict(activation="swiglu"), 40, True, True),
        (dict(d_ff=16, activation="relu", bias=False), 16, False, False),
    ]
    for kwargs, d_ff, has_w3, bias in cases:
        shapes = {k: tuple(v.shape) for k, v in student.FeedForward(d, **kwargs).state_dict().items()}
        expected = {"w1.weight": (d_ff, d), "w2.weight": (d, d_ff)}
        if has_w3:
            expected["w3.weight"] = (d_ff, d)
        if bias:
            expected.update({"w1.bias": (d_ff,), "w2.bias": (d,)})
            if has_w3:
                expected["w3.bias"] = (d_ff,)
        args = ", ".join([str(d)] + [f"{k}={v!r}" for k, v in kwargs.items()])
        if shapes == expected:
            continue
        width = shapes.get("w1.weight", (None,))[0]
        if "d_ff" not in kwargs and width == d:
            raise GradingFailure(
                f"FeedForward({args}): the hidden width is d_model ({d}); d_ff defaults to 4·d_model = "
                f"{4 * d}: the FFN expands, then projects back ({BLOCKS})."
            )
        if "d_ff" not in kwargs and has_w3 and width in oracle.llama_widths(d):
            raise GradingFailure(
                f"FeedForward({args}): the hidden width {width} follows Llama's 8/3·d_model rule for "
                f"SwiGLU; here d_ff defaults to 4·d_model = {4 * d} for every activation, SwiGLU "
                f"included (pass d_ff to shrink it) ({BLOCKS})."
            )
        check(
            False,
            f"FeedForward({args}) has parameters {shapes}; expected {expected}.",
            "d_ff = 4·d_model when not given; w1: d_model→d_ff, w2: d_ff→d_model, w3 (SwiGLU): d_model→d_ff.",
        )


FFN_EXAMPLE = {
    "gelu": "GELU([2, -3]) = [2·Φ(2), -3·Φ(-3)]",
    "gelu_tanh": "the tanh GELU of [2, -3]",
    "relu": "ReLU([2, -3]) = [2, 0]",
    "swiglu": "SiLU([2, -3]) ⊙ [2, 3], SiLU(z) = z·sigmoid(z)",
}


def ffn_example(student, activation: str) -> Example:
    """A 2-unit FFN without biases: w1 x = [x0, -x1], w2 and w3 the identity, x = [2, 3]."""
    sd = {"w1.weight": torch.tensor([[1.0, 0.0], [0.0, -1.0]]), "w2.weight": torch.eye(2)}
    if activation == "swiglu":
        sd["w3.weight"] = torch.eye(2)
    x = torch.tensor([2.0, 3.0])

    def got():
        ffn = student.FeedForward(2, 2, activation=activation, bias=False)
        ffn.load_state_dict(sd)
        return ffn(x)

    return Example(
        f"FeedForward(2, 2, activation={activation!r}, bias=False) with w1.weight = [[1., 0.], [0., -1.]], "
        + ("w2.weight = w3.weight = identity" if activation == "swiglu" else "w2.weight = identity")
        + f", x = [2., 3.] (the output is {FFN_EXAMPLE[activation]})",
        oracle.ffn(x, {f"f.{k}": v for k, v in sd.items()}, "f", activation),
        got,
    )


def _check_ffn(student, gen, activation: str) -> None:
    d, d_ff = 8, 24
    ffn = student.FeedForward(d, d_ff, activation=activation)
    sd = {f"ffn.{k}": v for k, v in random_state(ffn, gen).items()}
    x = randn(gen, 2, 5, d) * 1.5
    check_close(
        ffn(x),
        oracle.ffn(x, sd, "ffn", activation),
        what=f"FeedForward({d}, {d_ff}, activation={activation!r})",
        atol=1e-5,
        hint="gelu = exact erf GELU (F.gelu), gelu_tanh = F.gelu(…, approximate='tanh'), "
        "swiglu = w2(SiLU(w1 x) ⊙ w3 x).",
        diagnose=oracle.ffn_bugs(x, sd, "ffn", activation),
        example=ffn_example(student, activation),
    )


@pytest.mark.points(2)
def test_ffn_gelu_exact(student, gen):
    """FeedForward(activation='gelu') computes w2(GELU(w1 x)) with the exact, erf-based GELU"""
    _check_ffn(student, gen, "gelu")


@pytest.mark.points(1)
def test_ffn_gelu_tanh(student, gen):
    """FeedForward(activation='gelu_tanh') uses the tanh approximation of GELU"""
    _check_ffn(student, gen, "gelu_tanh")


@pytest.mark.points(1)
def test_ffn_relu(student, gen):
    """FeedForward(activation='relu') computes w2(ReLU(w1 x))"""
    _check_ffn(student, gen, "relu")


@pytest.mark.points(2)
def test_ffn_swiglu(student, gen):
    """FeedForward(activation='swiglu') computes w2(SiLU(w1 x) ⊙ w3 x)"""
    _check_ffn(student, gen, "swiglu")


@pytest.mark.points(1)
def test_ffn_dropout_train_eval(submission, gen):
    """FeedForward's dropout is active in training mode only"""
    ffn = submission.module().FeedForward(8, 32, dropout=0.5)
    sd = {f"ffn.{k}": v for k, v in random_state(ffn, gen).items()}
    x = randn(gen, 4, 6, 8)
    train, evals = submission.run(outputs_in_modes, ffn, x)
    expected = oracle.ffn(x, sd, "ffn", "gelu")
    check(
        torch.equal(evals[0], evals[1]),
        oracle.dropout_still_active("FeedForward(dropout=0.5)"),
    )
    check_close(
        evals[0], expected, what="FeedForward(dropout=0.5) in eval mode", hint="nn.Dropout is off in eval()."
    )
    check_close(evals[1], expected, what="a second call in eval mode")
    check(
        not torch.allclose(train[0], train[1]),
        "FeedForward(dropout=0.5) gave the same output twice in training mode: is dropout applied?",
        "apply self.dropout (an nn.Dropout) to the output.",
    )


# --------------------------------------------------------------------------- gradients
@pytest.mark.points(2)
def test_norm_gradients(submission, gen):
    """Gradients through LayerNorm and RMSNorm equal those of the PyTorch built-ins"""
    module = submission.module()
    d = 6
    for kind in ("layernorm", "rmsnorm"):
        mod = module.LayerNorm(d) if kind == "layernorm" else module.RMSNorm(d)
        sd = random_state(mod, gen)
        x, up = tokens(gen, 3, 4, d), randn(gen, 3, 4, d)
        dx, grads = submission.run(block_grads, mod, x, up)
        xx = x.clone().requires_grad_(True)
        params = {k: v.clone().requires_grad_(True) for k, v in sd.items()}
        out = (
            oracle.layer_norm(xx, params["weight"], params["bias"])
            if kind == "layernorm"
            else oracle.rms_norm(xx, params["weight"])
        )
        (out * up).sum().backward()
        name = "LayerNorm" if kind == "layernorm" else "RMSNorm"
        check(dx is not None, f"no gradient reached the input of {name}: is the graph cut (detach, .item())?")
        check_close(
            dx,
            xx.grad,
            what=f"{name}: d(out)/dx",
            atol=1e-4,
            hint="every statistic (mean, variance) must stay in the autograd graph: no .detach() or .item().",
        )
        for pname, p in params.items():
            check(grads.get(pname) is not None, f"no gradient reached {name}.{pname}.")
            check_close(grads[pname], p.grad, what=f"{name}: d(out)/d{pname}", atol=1e-4)
