"""Week 10 hidden suite, part 3: linear recurrences, sequential and parallel, and a gated layer.

The oracle is the recurrence itself, an explicit loop in float64; the layer is rebuilt from its
state dict with F.linear and torch.sigmoid.
"""

from __future__ import annotations

import pytest
import torch

from autograder.checks import Example, check, check_close, check_equal, convention
from autograder.drivers.w10 import profile_call
from autograder.suites.w10_variants import oracle

pytestmark = pytest.mark.w10

BLOCKS = convention("Blocks")
# Largest |parallel − float64 loop| of the reference at T ≤ 64 over 20 seeds: 7e-7.
ATOL = 1e-5


def randn(gen, *shape):
    return torch.randn(*shape, generator=gen)


def decays(gen, *shape, low=0.5):
    """a_t in (low, 1): products shrink slowly, so a late step still depends on early ones."""
    return low + (1 - low) * torch.rand(*shape, generator=gen)


def scan_bugs(a, b, h0):
    def bugs():
        found = [
            (
                oracle.scan(a, b, h0, bug="shifted"),
                f"the outputs are shifted by one step: return h_1 … h_T (the state after each step), "
                f"not h_0 … h_(T−1) ({BLOCKS}).",
            ),
            (
                oracle.scan(a, b, h0, bug="a_on_b"),
                f"a_t multiplies b_t too: the recurrence is h_t = a_t ⊙ h_(t−1) + b_t ({BLOCKS}).",
            ),
            (
                oracle.scan_swapped(a, b, h0),
                "the combine operator is applied in the wrong order: the earlier prefix (a₁, b₁) comes "
                "first, then (a₂, b₂), giving (a₂a₁, a₂b₁ + b₂).",
            ),
        ]
        if h0 is not None:
            found.insert(
                0,
                (
                    oracle.scan(a, b, h0, bug="no_h0"),
                    f"the initial state h0 is ignored: the first step is h_1 = a_1 ⊙ h0 + b_1 ({BLOCKS}).",
                ),
            )
        return found

    return bugs


TO_CHECK = ("linear_scan_sequential", "linear_scan_parallel")


@pytest.mark.points(2)
def test_scan_sequential_matches_loop(student, gen):
    """linear_scan_sequential equals the recurrence, with and without h0"""
    a, b, h0 = decays(gen, 2, 9, 3), randn(gen, 2, 9, 3), randn(gen, 2, 3)
    for init in (None, h0):
        check_close(
            student.linear_scan_sequential(a, b, init),
            oracle.scan(a, b, init),
            what=f"linear_scan_sequential (B=2, T=9, D=3, h0 {'given' if init is not None else 'None'})",
            atol=ATOL,
            hint="h = h0 (or zeros); for t in range(T): h = a[..., t, :] * h + b[..., t, :]; stack the h's.",
            diagnose=scan_bugs(a, b, init),
            example=Example(
                "a = [[[0.5], [0.5]]], b = [[[1.], [1.]]], h0 = [[2.]]",
                torch.tensor([[[2.0], [2.0]]]),
                lambda: student.linear_scan_sequential(
                    torch.full((1, 2, 1), 0.5), torch.ones(1, 2, 1), torch.full((1, 1), 2.0)
                ),
            ),
        )


@pytest.mark.points(3)
def test_scan_parallel_equals_sequential(student, gen):
    """linear_scan_parallel equals the recurrence for T = 1, 2, 5, 16, 37, with and without h0"""
    for T in (1, 2, 5, 16, 37):
        a, b, h0 = decays(gen, 2, T, 4), randn(gen, 2, T, 4), randn(gen, 2, 4)
        for init in (None, h0):
            check_close(
                student.linear_scan_parallel(a, b, init),
                oracle.scan(a, b, init),
                what=f"linear_scan_parallel (T={T}, h0 {'given' if init is not None else 'None'})",
                atol=ATOL,
                hint="Hillis–Steele: at offset 1, 2, 4, … < T, b[t] += a[t]·b[t − offset] and "
                "a[t] *= a[t − offset] for every t ≥ offset at once (from the values before this offset); "
                "fold h0 into the first step.",
                diagnose=scan_bugs(a, b, init),
            )


@pytest.mark.points(1)
def test_scan_parallel_is_stable(student, gen):
    """Fast decays over 64 steps (products underflow to 0): no NaN or inf, same values"""
    a = decays(gen, 2, 64, 3, low=0.0) * 0.05  # a_t ≤ 0.05: the product of 64 of them is below 1e-80
    b, h0 = randn(gen, 2, 64, 3), randn(gen, 2, 3)
    out = student.linear_scan_parallel(a, b, h0)
    check(
        bool(torch.isfinite(out).all()),
        "linear_scan_parallel returned NaN or inf when the decays a_t are small: dividing by cumulative "
        "products of a (cumprod/cumsum closed form) underflows to 0 and overflows after division.",
        "combine pairs (a, b) with the associative operator instead; it only ever multiplies.",
    )
    check_close(out, oracle.scan(a, b, h0), what="linear_scan_parallel with decays ≤ 0.05 (T=64)", atol=ATOL)


@pytest.mark.points(2)
def test_scan_parallel_is_logarithmic(student, submission, gen):
    """The parallel scan runs O(log T) rounds of tensor operations, not T steps"""
    student.linear_scan_parallel(decays(gen, 1, 4, 2), randn(gen, 1, 4, 2))  # the stub earns nothing
    ops = {}
    for T in (16, 256):
        a, b = decays(gen, 1, T, 2), randn(gen, 1, T, 2)
        ops[T] = submission.run(profile_call, student, "linear_scan_parallel", (a, b, randn(gen, 1, 2)), {})[
            "ops"
        ]
    # log₂: 4 rounds at T = 16, 8 at T = 256 (twice the operators); one step per token: 16 times more.
    check(
        ops[256] <= 3 * ops[16],
        f"linear_scan_parallel ran {ops[16]} tensor operations at T=16 and {ops[256]} at T=256 "
        f"({ops[256] / max(ops[16], 1):.1f}×): that grows like T, a loop over time steps. A parallel scan "
        "takes ⌈log₂ T⌉ rounds (4 and 8 here), each combining all positions at once.",
        "for offset in 1, 2, 4, …: combine every position t ≥ offset with position t − offset, in one "
        "tensor operation over the time axis.",
    )


@pytest.mark.points(1)
def test_scan_edges(student, gen):
    """T = 0 gives an empty result; extra leading axes work; h0 with T = 1 is one step"""
    for name in TO_CHECK:
        fn = getattr(student, name)
        empty = fn(torch.zeros(2, 0, 3), torch.zeros(2, 0, 3), randn(gen, 2, 3))
        check(
            isinstance(empty, torch.Tensor) and tuple(empty.shape) == (2, 0, 3),
            f"{name} with T=0 returned {tuple(empty.shape) if isinstance(empty, torch.Tensor) else empty!r}; "
            "expected an empty (2, 0, 3) tensor (no steps, no states).",
        )
        a, b, h0 = decays(gen, 2, 3, 5, 2), randn(gen, 2, 3, 5, 2), randn(gen, 2, 3, 2)
        check_close(fn(a, b, h0), oracle.scan(a, b, h0), what=f"{name} on (2, 3, T=5, D=2)", atol=ATOL)
        a, b, h0 = decays(gen, 4, 1, 3), randn(gen, 4, 1, 3), randn(gen, 4, 3)
        check_close(
            fn(a, b, h0),
            (a[:, 0] * h0 + b[:, 0]).unsqueeze(1),
            what=f"{name} with T=1",
            atol=1e-6,
            diagnose=scan_bugs(a, b, h0),
        )


# --------------------------------------------------------------------------- the layer
def layer_state(layer, gen):
    sd = {}
    for name, t in layer.state_dict().items():
        scale = 0.5 if name.endswith("bias") else 1 / t.shape[-1] ** 0.5
        sd[name] = randn(gen, *t.shape) * scale
    layer.load_state_dict(sd)
    return sd


@pytest.mark.points(3)
def test_recurrence_layer_matches_formula(submission, gen):
    """GatedLinearRecurrence equals its formulas, parallel and sequential, with and without h0"""
    module = submission.module()
    d_model, d_state = 6, 5
    layer = module.GatedLinearRecurrence(d_model, d_state)
    shapes = {n: tuple(t.shape) for n, t in layer.state_dict().items()}
    want = {
        "gate.weight": (d_state, d_model),
        "gate.bias": (d_state,),
        "in_proj.weight": (d_state, d_model),
        "in_proj.bias": (d_state,),
        "out_proj.weight": (d_model, d_state),
        "out_proj.bias": (d_model,),
    }
    check(
        shapes == want,
        f"GatedLinearRecurrence({d_model}, {d_state}) parameters {shapes}; expected {want}.",
        "gate and in_proj: nn.Linear(d_model, d_state); out_proj: nn.Linear(d_state, d_model).",
    )
    sd = layer_state(layer, gen)
    x, h0 = randn(gen, 2, 11, d_model), randn(gen, 2, d_state)
    for init in (None, h0):
        y_exp, h_exp = oracle.recurrence(sd, x, init)
        for parallel in (True, False):
            label = (
                f"GatedLinearRecurrence(parallel={parallel}, h0 {'given' if init is not None else 'None'})"
            )
            y, h_last = layer(x, init, parallel)
            check_close(
                y,
                y_exp,
                what=f"{label} output",
                atol=ATOL,
                hint="a = sigmoid(gate(x)); b = (1 − a) ⊙ in_proj(x); h = scan(a, b, h0); y = out_proj(h).",
                diagnose=lambda init=init: [
                    *(
                        []
                        if init is None
                        else [
                            (
                                oracle.recurrence(sd, x, None)[0],
                                "the initial state h0 is ignored: pass it to the scan, "
                                f"h_1 = a_1 ⊙ h0 + b_1 ({BLOCKS}).",
                            )
                        ]
                    ),
                    (
                        oracle.recurrence(sd, x, init, bug="no_sigmoid")[0],
                        "the decay is gate(x) itself: a = sigmoid(gate(x)) keeps every a_t in (0, 1), so the "
                        "state forgets instead of exploding.",
                    ),
                    (
                        oracle.recurrence(sd, x, init, bug="ungated")[0],
                        "the input is not gated: b = (1 − a) ⊙ in_proj(x), so a token writes as much as the "
                        "state forgets.",
                    ),
                ],
            )
            check_close(
                h_last, h_exp, what=f"{label} final state h_T", atol=ATOL, hint="return h[..., -1, :]."
            )


@pytest.mark.points(2)
def test_recurrence_streams_in_pieces(student, gen):
    """Running in two pieces, the second starting from the first's state, equals one run"""
    layer = student.GatedLinearRecurrence(4, 3)
    layer_state(layer, gen)
    x = randn(gen, 2, 13, 4)
    cut = int(torch.randint(1, 12, (1,), generator=gen))
    y_all, h_all = layer(x)
    y1, h1 = layer(x[:, :cut])
    y2, h2 = layer(x[:, cut:], h1)
    check_close(
        torch.cat([y1, y2], dim=1),
        y_all,
        what=f"outputs of two pieces (cut at {cut}) against one run",
        atol=ATOL,
        hint="the second call must start from the returned state: h0 enters the first step.",
    )
    check_close(h2, h_all, what="final state after two pieces", atol=ATOL)
    y0, h0 = layer(x[:, :0], h1)
    check_equal(tuple(y0.shape), (2, 0, 4), what="output shape of an empty input")
    check_close(h0, h1, what="state returned for an empty input (unchanged h0)", atol=0.0)
