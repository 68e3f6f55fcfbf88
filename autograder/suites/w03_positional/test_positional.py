"""Week 3 hidden suite: sinusoidal and learned positions, RoPE, ALiBi, and why order matters.

Expected values are closed forms computed here in float64 (RoPE also through complex
numbers: each interleaved pair is one complex number multiplied by e^{i·p·θ}), on inputs drawn
from the grading seed. Classic mistakes are recomputed here so a matching submission is told
which one it made, and which rule of course/CONVENTIONS.md § Positions it breaks.
"""

# What the week promises, and the test that holds each promise at its edge.
#
# CONVENTIONS.md § Positions (SPEC §6), and the docstrings of solutions/w03_positional.py:
# - sinusoidal, interleaved (sin at 2i, cos at 2i+1; not sines-first), exponent 2i/d, i from 0,
#   the base argument                                  test_sinusoidal_anchor (d = 4, SPEC anchor),
#                                                     test_sinusoidal_closed_form (random T, d; base)
# - positions counted from 0 (row 0 = [0, 1, 0, 1, …]); d = 2 (one pair, [sin p, cos p]);
#   T = 1 and T = 0                                     test_sinusoidal_anchor, test_sinusoidal_edges
# - learned: one trainable (max_len, d_model) parameter, lookups of any shape, offsets
#                                                     test_learned_embedding_lookup
# - learned: T = max_len works (max_len - 1 is the last valid index), an empty tensor of
#   positions gives (0, d), a 0-d position gives (d,), T = max_len + 1 raises an IndexError (not
#   clamped, not wrapped)                              test_learned_embedding_bounds
# - learned: N(0, 0.02²) init                          test_learned_embedding_init
# - rope_angles: (…, T, d/2) cos and sin, θ_i = base^(-2i/d), i from 0, batched positions
#                                                     test_rope_angles
# - RoPE: position 0 the identity, positions from 0, the SPEC anchor; rotation direction
#   [[cos, -sin], [sin, cos]] on (x[2i], x[2i+1])        test_rope_anchor_and_identity,
#                                                     test_rope_matches_complex_formulation
# - RoPE: interleaved layout; half-split recognised and named; a mixture of the two named
#                                                     test_rope_layout_is_interleaved, diagnoses
# - RoPE: a rotation (norms and pair lengths kept)    test_rope_preserves_norms
# - RoPE: the relative property (q_m·k_n depends on m - n only)   test_rope_relative_positions
# - RoPE: leading dims, offsets (start > 0, a KV cache), the last token alone at T - 1,
#   per-sequence positions, dtype kept                 test_rope_leading_dims_and_offsets
# - RoPE: odd d rejected with a clear error (ValueError), for rope_angles and apply_rope
#                                                     test_rope_odd_width_rejected
# - RoPE on q and k only: week 3's API has no place to get this wrong (apply_rope rotates what it
#   is given); week 4 holds it (test_block_rope names RoPE on the values)
# - ALiBi slopes 2^(-8h/n), h = 1 … n: 8 heads, 12 heads   test_alibi_slopes; 6 heads (not a
#   power of two), one head (2^-8)                     test_alibi_slopes_edges
# - ALiBi bias: -m·(i - j) for j ≤ i, 0 for future keys, bottom-right aligned (T_q < T_k,
#   T_q = 1), one head                                 test_alibi_bias, test_alibi_slopes_edges
# - each encoding breaks permutation equivariance      test_order_matters

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from autograder.checks import Example, check, check_close, check_equal, convention
from autograder.drivers.w03 import trainable_parameters
from autograder.isolation import SubmissionError, SubmissionTimeout

pytestmark = pytest.mark.w03
POSITIONS = convention("Positions")

# Tolerances (the reference's float32 max |error| against the float64 closed forms, ×10):
# sinusoidal, T ≤ 64, d ≤ 64: 1.9e-6 -> atol 2e-5. RoPE, positions ≤ 64, |x| ~ N(0, 1):
# 3.0e-6 -> atol 3e-5; q_m·k_n against q_{m+s}·k_{n+s} (d = 16, positions ≤ 64): 5.2e-6 -> 5e-5.
# (200 draws each.)
SIN_ATOL, ROPE_ATOL, DOT_ATOL = 2e-5, 3e-5, 5e-5


def randn(gen, *shape):
    return torch.randn(*shape, generator=gen)


def randint(gen, low, high):
    return int(torch.randint(low, high, (1,), generator=gen))


def outcome(call):
    """(value, None) when the submission's call returns, (None, error) when it raises.

    A stub's NotImplementedError and a timeout stay this test's failure as they are."""
    try:
        return call(), None
    except SubmissionTimeout:
        raise
    except SubmissionError as exc:
        if exc.exc_type == "NotImplementedError":
            raise
        return None, exc


# --------------------------------------------------------------------------- closed forms and mistakes
def sinusoid(T, d, base=10000.0, bug=None):
    """The interleaved table in float64, or a named mistake."""
    p = torch.arange(T, dtype=torch.float64)[:, None] + (1 if bug == "one_based" else 0)
    i = torch.arange(d // 2, dtype=torch.float64)
    exponent = {
        "i_over_d": i / d,
        "one_indexed": 2 * (i + 1) / d,
        "timescale": i / max(d // 2 - 1, 1),
    }.get(bug, 2 * i / d)
    angles = p / base**exponent  # (T, d/2)
    sin, cos = angles.sin(), angles.cos()
    if bug == "swapped":
        sin, cos = cos, sin
    if bug == "concatenated":
        return torch.cat([sin, cos], dim=-1).float()
    return torch.stack([sin, cos], dim=-1).flatten(-2).float()  # sin at 2i, cos at 2i+1


SIN_BUGS = {
    "swapped": f"sin and cos are swapped: even channels 2i hold sin, odd channels 2i+1 hold cos ({POSITIONS}).",
    "concatenated": "all sines come first and all cosines second ([sin…, cos…]); the course interleaves "
    f"them: sin at channel 2i, cos at 2i+1 ({POSITIONS}).",
    "one_based": "positions start at 1: the first token is at position 0, whose row is [0, 1, 0, 1, …] "
    f"(sin 0, cos 0) ({POSITIONS}).",
    "i_over_d": f"the frequencies use base^(i/d) instead of base^(2i/d): pair i's exponent is 2i/d ({POSITIONS}).",
    "one_indexed": "the frequencies are 1-indexed; pair i = 0 has frequency 1 (base^0), and pair i has "
    f"base^(-2i/d) ({POSITIONS}).",
    "timescale": "the exponents run from 0 to exactly 1 across the pairs, i/(d/2 - 1) (the tensor2tensor "
    "timescales), so your last pair has frequency 1/base; the course's exponent is 2i/d, whose last "
    f"pair stops one step short of 1 ({POSITIONS}).",
}


def rope_closed(x, positions, base=10000.0, bug=None):
    """The course's RoPE (through complex numbers), or a named mistake computed pair by pair."""
    if bug is None:
        return rope_complex(x, positions, base)
    d = x.size(-1)
    i = torch.arange(d // 2, dtype=torch.float64)
    exponent = {"i_over_d": i / d, "one_indexed": 2 * (i + 1) / d}.get(bug, 2 * i / d)
    theta = base ** (-exponent)
    angles = (positions.double() + (1 if bug == "one_based" else 0))[..., None] * theta  # (..., T, d/2)
    if bug == "sign":
        angles = -angles
    cos, sin = angles.cos(), angles.sin()
    xd = x.double()
    if bug == "swapped":  # rope_angles returns (sin, cos): the "rotation" uses the wrong functions
        cos, sin = sin, cos
    if bug in ("half_split", "half_interleaved"):  # channel i pairs with channel i + d/2
        first, second = xd[..., : d // 2], xd[..., d // 2 :]
    else:
        first, second = xd[..., 0::2], xd[..., 1::2]
    rotated = (first * cos - second * sin, first * sin + second * cos)
    if bug in ("half_split", "pairs_concatenated"):  # written back as [all firsts, all seconds]
        return torch.cat(rotated, -1).to(x.dtype)
    return torch.stack(rotated, -1).flatten(-2).to(x.dtype)  # pair i back at channels 2i, 2i+1


def rope_complex(x, positions, base=10000.0):
    """The course's RoPE as a complex multiplication: pair i is x[2i] + j·x[2i+1], times e^{j·p·θ_i}."""
    d = x.size(-1)
    theta = base ** (-2 * torch.arange(d // 2, dtype=torch.float64) / d)
    angles = positions.double()[..., None] * theta  # (..., T, d/2)
    pairs = torch.view_as_complex(x.double().reshape(*x.shape[:-1], d // 2, 2).contiguous())
    rotated = pairs * torch.polar(torch.ones_like(angles), angles)  # x · e^{j p θ}
    return torch.view_as_real(rotated).flatten(-2).to(x.dtype)


ROPE_BUGS = {
    "half_split": "you rotate the half-split pairs (x[i], x[i + d/2]) (GPT-NeoX / Hugging Face "
    "rotate_half layout); this course rotates interleaved pairs (x[2i], x[2i+1]). Same rotation, "
    f"channels permuted: see the notes and {POSITIONS}.",
    "half_interleaved": "the two RoPE layouts are mixed: you take each pair from the two halves "
    "(x[i], x[i + d/2]) but write the result back at the neighbouring channels (2i, 2i+1). Take "
    f"the pair from the neighbours (x[2i], x[2i+1]) too ({POSITIONS}).",
    "pairs_concatenated": "you rotate the right pairs (x[2i], x[2i+1]) but the results are "
    "concatenated as [all x'[2i]…, all x'[2i+1]…] instead of put back at channels 2i and 2i+1 "
    f"(stack the two on a new last axis, then flatten) ({POSITIONS}).",
    "sign": "the rotation goes the wrong way (clockwise): the matrix on the column (x[2i], x[2i+1]) is "
    "[[cos, -sin], [sin, cos]], so x'[2i] = x[2i]·cos − x[2i+1]·sin and "
    f"x'[2i+1] = x[2i]·sin + x[2i+1]·cos ({POSITIONS}).",
    "one_based": "position 0 is not the identity: your positions start at 1 (you rotate by (p + 1)·θ_i); "
    f"the first token is at position 0 and is left unchanged ({POSITIONS}).",
    "one_indexed": f"the frequencies are 1-indexed: θ_i = base^(-2i/d) with i starting at 0 (θ_0 = 1) ({POSITIONS}).",
    "i_over_d": f"θ_i = base^(-i/d) is missing the factor 2: θ_i = base^(-2i/d) ({POSITIONS}).",
    "swapped": f"cos and sin are swapped ({POSITIONS}).",
}


def rope_diagnoses(x, positions, bugs=tuple(ROPE_BUGS)):
    return [(rope_closed(x, positions, bug=b), ROPE_BUGS[b]) for b in bugs]


def slopes_closed(n):
    return torch.tensor([2.0 ** (-8.0 * h / n) for h in range(1, n + 1)])


def slopes_power_of_two_rule(n):
    """The interpolation of the ALiBi repository / BLOOM for n not a power of two."""
    closest = 2 ** math.floor(math.log2(n))
    base = [2.0 ** (-8.0 * h / closest) for h in range(1, closest + 1)]
    extra = [2.0 ** (-4.0 * h / closest) for h in range(1, 2 * closest + 1, 2)][: n - closest]
    return torch.tensor(base + extra)


def slope_diagnoses(n):
    """Classic slope mistakes for n heads (a candidate equal to the right slopes never fires)."""
    if n == 1:
        return [
            (
                torch.tensor([0.5]),
                "one head has slope 2^(-8·1/1) = 2^(-8) = 1/256, not 1/2: the rule 2^(-8h/n) depends on "
                f"the number of heads n ({POSITIONS}).",
            ),
            (torch.tensor([1.0]), SLOPE_BUGS["zero_based"]),
        ]
    return [
        (slopes_closed(n).flip(0), SLOPE_BUGS["reversed"]),
        (torch.tensor([2.0**-h for h in range(1, n + 1)]), SLOPE_BUGS["two_to_minus_h"]),
        (2.0 ** torch.linspace(-1.0, -8.0, n), SLOPE_BUGS["linspace"]),
        (torch.tensor([2.0 ** (-8.0 * h / n) for h in range(n)]), SLOPE_BUGS["zero_based"]),
        (slopes_power_of_two_rule(n), SLOPE_BUGS["bloom"]),
    ]


SLOPE_BUGS = {
    "reversed": "the slopes are in reverse order: head 1 has the steepest slope 2^(-8/n), the last head "
    f"the shallowest, 2^(-8) ({POSITIONS}).",
    "two_to_minus_h": f"the slopes are 2^(-h), right for 8 heads only: the exponent is -8h/n ({POSITIONS}).",
    "linspace": "your slopes run from 1/2 to 1/256 for every head count (right for 8 heads only): the "
    f"first slope is 2^(-8/n) and the ratio between heads is 2^(-8/n) ({POSITIONS}).",
    "zero_based": "the heads are counted from 0, so the first slope is 2^0 = 1: the slopes are "
    f"2^(-8h/n) for h = 1 … n ({POSITIONS}).",
    "bloom": "these are the slopes of the ALiBi repository / BLOOM interpolation for head counts that "
    "are not powers of two; the course uses the paper's geometric rule 2^(-8h/n) for every n "
    f"({POSITIONS}).",
}


def alibi_closed(n, T_q, T_k, bug=None):
    m = slopes_closed(n).double()[:, None, None]
    i = torch.arange(T_q, dtype=torch.float64)[:, None] + (0 if bug == "top_left" else T_k - T_q)
    j = torch.arange(T_k, dtype=torch.float64)[None, :]
    if bug == "symmetric":
        return (-m * (i - j).abs()).float()
    bias = -m * (i - j).clamp(min=0) + 0.0  # + 0.0: future keys read 0, not -0
    return (-bias if bug == "sign" else bias).float()


ALIBI_BUGS = {
    "sign": f"the bias has the wrong sign: distant keys must be *penalised*, -m·(i - j) ≤ 0 ({POSITIONS}).",
    "top_left": "the bias is aligned top-left; query i sits at absolute position T_k - T_q + i "
    f"(bottom-right, as causal_mask) ({POSITIONS}).",
    "symmetric": "future keys (j > i) are penalised by -m·|i - j|; this course sets their bias to 0 "
    f"(the causal mask hides them) ({POSITIONS}).",
}


# --------------------------------------------------------------------------- sinusoidal
@pytest.mark.points(2)
def test_sinusoidal_anchor(student):
    """sinusoidal_encoding(3, 4): row 0 is [0, 1, 0, 1], row 1 is [sin 1, cos 1, sin 0.01, cos 0.01]"""
    pe = student.sinusoidal_encoding(3, 4)
    expected = torch.tensor(
        [
            [0.0, 1.0, 0.0, 1.0],
            [0.8414709848, 0.5403023059, 0.0099998333, 0.9999500004],
            [math.sin(2), math.cos(2), math.sin(0.02), math.cos(0.02)],
        ]
    )
    check_close(
        pe,
        expected,
        what="sinusoidal_encoding(3, 4)",
        atol=1e-6,
        hint="PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d)); float32.",
        diagnose=[(sinusoid(3, 4, bug=b), msg) for b, msg in SIN_BUGS.items()],
    )


@pytest.mark.points(3)
def test_sinusoidal_closed_form(student, gen):
    """The whole table equals the closed form for random T and d, and for another base"""
    for d, base in ((2 * randint(gen, 4, 33), 10000.0), (16, 100.0)):
        T = randint(gen, 20, 65)
        check_close(
            student.sinusoidal_encoding(T, d, base=base),
            sinusoid(T, d, base),
            what=f"sinusoidal_encoding({T}, {d}, base={base:g})",
            atol=SIN_ATOL,
            hint="one frequency per pair of channels, base^(-2i/d), with the base you are given.",
            diagnose=[(sinusoid(T, d, base, bug=b), msg) for b, msg in SIN_BUGS.items()]
            + [(sinusoid(T, d), "the base argument is ignored (10000 is only the default).")],
            example=Example(
                f"sinusoidal_encoding(2, 4, base={base:g}) (frequencies 1 and {base:g}^(-1/2))",
                sinusoid(2, 4, base),
                lambda base=base: student.sinusoidal_encoding(2, 4, base=base),
            ),
        )


@pytest.mark.points(2)
def test_sinusoidal_edges(student, gen):
    """d = 2 (one pair: [sin p, cos p]), one position (row [0, 1, 0, 1, …]) and no position"""
    T = randint(gen, 5, 40)
    pe = student.sinusoidal_encoding(T, 2)
    check(
        not (isinstance(pe, torch.Tensor) and bool(torch.isnan(pe).any())),
        f"sinusoidal_encoding({T}, 2) contains NaN. With d = 2 there is one pair (i = 0), whose "
        "frequency is base^0 = 1: an exponent written as i/(d/2 - 1) divides 0 by 0 there. The "
        f"exponent of pair i is 2i/d ({POSITIONS}).",
    )
    check_close(
        pe,
        sinusoid(T, 2),
        what=f"sinusoidal_encoding({T}, 2)",
        atol=SIN_ATOL,
        hint="with d = 2 the table is [sin p, cos p] for p = 0 … T-1.",
        diagnose=[(sinusoid(T, 2, bug=b), msg) for b, msg in SIN_BUGS.items()],
        example=Example(
            "sinusoidal_encoding(2, 2)",
            sinusoid(2, 2),
            lambda: student.sinusoidal_encoding(2, 2),
        ),
    )
    d = 2 * randint(gen, 2, 9)
    check_close(
        student.sinusoidal_encoding(1, d),
        sinusoid(1, d),
        what=f"sinusoidal_encoding(1, {d})",
        atol=1e-7,
        hint="one position, p = 0: sin 0 = 0 at even channels, cos 0 = 1 at odd ones.",
        diagnose=[(sinusoid(1, d, bug=b), msg) for b, msg in SIN_BUGS.items()],
    )
    empty = student.sinusoidal_encoding(0, d)
    check_equal(
        tuple(getattr(empty, "shape", ())),
        (0, d),
        what=f"shape of sinusoidal_encoding(0, {d})",
        hint="no positions: a (0, d_model) table.",
    )


# --------------------------------------------------------------------------- learned
@pytest.mark.points(2)
def test_learned_embedding_lookup(submission, gen):
    """LearnedPositionalEmbedding returns row p of its (max_len, d_model) table for each position"""
    module = submission.module()
    max_len, d = 16, 8
    emb = module.LearnedPositionalEmbedding(max_len, d)
    params = submission.run(trainable_parameters, emb)
    if not params:
        stored = {k: tuple(v.shape) for k, v in emb.state_dict().items() if isinstance(v, torch.Tensor)}
        check(
            (max_len, d) not in stored.values(),
            f"LearnedPositionalEmbedding({max_len}, {d}) keeps its table as a buffer (register_buffer), "
            "not a parameter: the optimiser never sees it, so it is never trained. Wrap it in "
            "nn.Parameter.",
        )
    check(
        len(params) == 1 and [list(v[0]) for v in params.values()] == [[max_len, d]],
        f"LearnedPositionalEmbedding({max_len}, {d}) parameters are "
        f"{ {k: v[0] for k, v in params.items()} }; expected one ({max_len}, {d}) table.",
        "one nn.Parameter `weight` of shape (max_len, d_model).",
    )
    name = next(iter(params))
    check(params[name][1], f"{name} does not require grad: a learned table must be trainable.")
    table = randn(gen, max_len, d)
    emb.load_state_dict({name: table})
    positions = torch.randint(0, max_len, (2, 5), generator=gen)
    check_close(
        emb(positions),
        table[positions],
        what="embedding of a (2, 5) batch of positions",
        hint="index the table with the positions: weight[positions] -> (..., d_model).",
    )
    offset = randint(gen, 1, max_len - 3)
    check_close(
        emb(torch.arange(3) + offset),
        table[offset : offset + 3],
        what=f"embedding of positions {offset}…{offset + 2}",
    )


@pytest.mark.points(2)
def test_learned_embedding_bounds(submission, gen):
    """T = max_len works (position max_len − 1 is the last valid one); max_len + 1 raises an IndexError"""
    max_len, d = randint(gen, 5, 13), 4
    emb = submission.module().LearnedPositionalEmbedding(max_len, d)
    name = next(iter(emb.state_dict()))
    table = randn(gen, max_len, d)
    emb.load_state_dict({name: table})
    full, error = outcome(lambda: emb(torch.arange(max_len)))
    check(
        error is None,
        f"LearnedPositionalEmbedding({max_len}, {d}) raised on positions 0 … {max_len - 1} (T = max_len): "
        f"position {max_len - 1} = max_len - 1 is the last valid index of a table with max_len rows "
        f"(counted from 0); raise only for positions ≥ max_len ({POSITIONS}). It said: {error}",
    )
    check_close(full, table, what=f"embedding of positions 0 … {max_len - 1} (the whole table)")
    empty, error = outcome(lambda: emb(torch.zeros(0, dtype=torch.long)))
    check(
        error is None,
        "an empty tensor of positions raised; it should give an empty (0, d_model) result. (The "
        f"maximum of an empty tensor is an error: look before you take it.) It said: {error}",
    )
    check_equal(tuple(getattr(empty, "shape", ())), (0, d), what="shape of the embedding of no positions")
    p = randint(gen, 0, max_len)
    check_close(emb(torch.tensor(p)), table[p], what=f"embedding of the 0-d position tensor({p})")
    past = torch.arange(max_len + 1)
    got, error = outcome(lambda: emb(past))
    if error is None:
        last = got[-1] if isinstance(got, torch.Tensor) and got.shape == (max_len + 1, d) else None
        how = "were accepted"
        if last is not None and torch.equal(last, table[-1]):
            how = f"were clamped to the last row (position {max_len} got row {max_len - 1})"
        elif last is not None and torch.equal(last, table[0]):
            how = f"wrap around (position {max_len} got row 0)"
        check(
            False,
            f"positions 0 … {max_len} (T = max_len + 1) {how}: a learned table has no row for "
            f"position {max_len}, so it must raise an IndexError; it cannot extrapolate ({POSITIONS}).",
        )
    check(
        error.exc_type == "IndexError",
        f"positions 0 … {max_len} (T = max_len + 1) raised {error.exc_type or 'an error'}; the docstring "
        f"promises an IndexError naming the position and max_len ({POSITIONS}).",
    )


@pytest.mark.points(1)
def test_learned_embedding_init(submission):
    """The table is initialised from N(0, 0.02²), as GPT-2"""
    emb = submission.module().LearnedPositionalEmbedding(1024, 64)
    table = next(iter(emb.state_dict().values()))
    # 65,536 draws: the sample std has a standard error of 5.5e-5 and the mean of 7.8e-5.
    std, mean = float(table.std()), float(table.mean())
    check(
        not (0.9 < std < 1.1 and abs(mean) < 0.05),
        f"the initial table has std {std:.4f}: it is left at N(0, 1) (nn.Embedding's and "
        "torch.randn's default). GPT-2 initialises it from N(0, 0.02²), the scale of its token embeddings.",
    )
    check(
        0.019 < std < 0.021 and abs(mean) < 1e-3,
        f"the initial table has mean {mean:.4f} and std {std:.4f}; expected mean 0 and std 0.02.",
        "nn.init.normal_(weight, mean=0.0, std=0.02).",
    )


# --------------------------------------------------------------------------- RoPE
@pytest.mark.points(2)
def test_rope_angles(student, gen):
    """rope_angles gives cos/sin of p·θ_i, shape (..., T, d_head/2), θ_i = base^(-2i/d_head)"""
    d, T = 2 * randint(gen, 2, 9), randint(gen, 3, 9)
    positions = torch.arange(T)
    theta = 10000.0 ** (-torch.arange(d // 2, dtype=torch.float64) * 2 / d)
    angles = positions.double()[:, None] * theta
    got = student.rope_angles(d, positions)
    check(isinstance(got, tuple) and len(got) == 2, "rope_angles must return a pair (cos, sin).")
    cos, sin = got
    bad = [
        (torch.cos(angles * 10000.0 ** (-2 / d)).float(), ROPE_BUGS["one_indexed"]),
        (
            torch.cos(positions.double()[:, None] * 10000.0 ** (-torch.arange(d // 2) / d)).float(),
            ROPE_BUGS["i_over_d"],
        ),
        (torch.cos((positions.double()[:, None] + 1) * theta).float(), ROPE_BUGS["one_based"]),
        (torch.sin(angles).float(), f"cos and sin are swapped: return (cos, sin) ({POSITIONS})."),
    ]
    hint = "one angle per pair of channels: shape (..., T, d_head // 2)."
    check_close(
        cos,
        torch.cos(angles).float(),
        what=f"cos from rope_angles({d}, arange({T}))",
        atol=1e-6,
        hint=hint,
        diagnose=bad,
        example=Example(
            "rope_angles(4, [0, 1, 100])[0] (θ = [1, 0.01])",
            torch.tensor([[1.0, 1.0], [math.cos(1.0), math.cos(0.01)], [math.cos(100.0), math.cos(1.0)]]),
            lambda: student.rope_angles(4, torch.tensor([0, 1, 100]))[0],
        ),
    )
    check_close(
        sin, torch.sin(angles).float(), what=f"sin from rope_angles({d}, arange({T}))", atol=1e-6, hint=hint
    )
    batch = torch.stack([positions, positions + 3])  # (2, T)
    cos2, _ = student.rope_angles(d, batch)
    check_close(
        cos2,
        torch.cos(batch.double()[..., None] * theta).float(),
        what=f"cos from rope_angles({d}, positions of shape (2, {T}))",
        atol=1e-6,
        hint=hint,
    )


ROPE_ANCHOR = "x = [1, 2, 3, 4] at position 1 (pair (1, 2) turns by 1 rad, pair (3, 4) by 0.01 rad)"


def rope_anchor_example(student):
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    return Example(
        ROPE_ANCHOR,
        torch.tensor([[-1.1426396637, 1.9220755965, 2.9598506679, 4.0297995017]]),
        lambda: student.apply_rope(x, torch.tensor([1])),
    )


@pytest.mark.points(2)
def test_rope_anchor_and_identity(student):
    """apply_rope on [1, 2, 3, 4]: position 0 is the identity; position 1 gives the SPEC anchor"""
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    positions = torch.tensor([0, 1])
    expected = torch.tensor([[1.0, 2.0, 3.0, 4.0], [-1.1426396637, 1.9220755965, 2.9598506679, 4.0297995017]])
    check_close(
        student.apply_rope(x, positions),
        expected,
        what="apply_rope([1, 2, 3, 4]) at positions 0 and 1",
        atol=1e-6,
        hint="rotate pair (x[2i], x[2i+1]) by p·θ_i with θ_i = 10000^(-2i/d); θ_0 = 1.",
        diagnose=rope_diagnoses(x, positions),
    )


@pytest.mark.points(3)
def test_rope_matches_complex_formulation(student, gen):
    """apply_rope equals multiplying each pair, as a complex number, by e^{i·p·θ}"""
    x = randn(gen, 2, 3, 12, 16)
    positions = torch.arange(12)
    check_close(
        student.apply_rope(x, positions),
        rope_complex(x, positions),
        what="apply_rope on (B=2, h=3, T=12, d_head=16)",
        atol=ROPE_ATOL,
        hint="x'[2i] = x[2i]·cos(pθ_i) − x[2i+1]·sin(pθ_i), x'[2i+1] = x[2i]·sin(pθ_i) + x[2i+1]·cos(pθ_i).",
        diagnose=rope_diagnoses(x, positions),
        example=rope_anchor_example(student),
    )


@pytest.mark.points(1)
def test_rope_layout_is_interleaved(student, gen):
    """The course's layout: rope(x)[P] equals the half-split rope of x[P], P = evens then odds"""
    d = 8
    x = randn(gen, 5, d)
    positions = torch.arange(5) + randint(gen, 0, 20)
    P = torch.cat([torch.arange(0, d, 2), torch.arange(1, d, 2)])  # [0, 2, 4, 6, 1, 3, 5, 7]
    got = student.apply_rope(x, positions)
    check(
        not torch.allclose(got, rope_closed(x, positions, bug="half_split"), atol=ROPE_ATOL),
        "apply_rope uses the half-split layout: it pairs channel i with channel i + d/2 (GPT-NeoX / "
        "Hugging Face rotate_half). This course pairs neighbours (x[2i], x[2i+1]); the two differ by "
        f"the channel permutation P = [0, 2, 4, …, 1, 3, 5, …] ({POSITIONS}).",
    )
    check_close(
        got[..., P],
        rope_closed(x[..., P], positions, bug="half_split"),
        what="apply_rope(x)[..., P] against the half-split rotation of x[..., P]",
        atol=ROPE_ATOL,
        hint="pairs are neighbours (2i, 2i+1).",
        example=rope_anchor_example(student),
        diagnose=[(rope_closed(x, positions, bug=b)[..., P], ROPE_BUGS[b]) for b in ROPE_BUGS],
    )


def pair_lengths(t):
    """(..., d) -> (..., d/2): the length of each interleaved pair (x[2i], x[2i+1])."""
    return t.reshape(*t.shape[:-1], -1, 2).norm(dim=-1)


@pytest.mark.points(2)
def test_rope_preserves_norms(student, gen):
    """RoPE is a rotation: every pair keeps its length, and position 0 changes nothing"""
    x = randn(gen, 3, 10, 12)
    positions = torch.randint(0, 64, (10,), generator=gen)
    out = student.apply_rope(x, positions)
    check_close(
        out.norm(dim=-1),
        x.norm(dim=-1),
        what="norm of each rotated vector",
        atol=ROPE_ATOL,
        hint="a rotation keeps lengths: use cos and sin of the same angle within a pair.",
    )
    check_close(
        pair_lengths(out),
        pair_lengths(x),
        what="length of each rotated pair",
        atol=ROPE_ATOL,
        hint="a rotation mixes the two channels of a pair only, with cos and sin of the same angle.",
        diagnose=[
            (pair_lengths(rope_closed(x, positions, bug=b)), ROPE_BUGS[b])
            for b in ("half_split", "half_interleaved", "pairs_concatenated")
        ],
    )
    check_close(
        student.apply_rope(x, torch.zeros(10, dtype=torch.long)),
        x,
        what="apply_rope at position 0",
        atol=1e-7,
        hint="cos 0 = 1 and sin 0 = 0: position 0 must be the identity.",
        diagnose=[(rope_closed(x, torch.zeros(10), bug="one_based"), ROPE_BUGS["one_based"])],
    )


@pytest.mark.points(3)
def test_rope_relative_positions(student, gen):
    """q_m · k_n depends only on m − n: shifting both positions leaves every score unchanged"""
    d, T = 16, 8
    q, k = randn(gen, T, d), randn(gen, T, d)
    m = torch.randint(0, 32, (T,), generator=gen)
    n = torch.randint(0, 32, (T,), generator=gen)
    rq = student.apply_rope(q, m)
    scores = (rq * student.apply_rope(k, n)).sum(-1)  # (T,)
    shift = randint(gen, 1, 32)
    shifted = (student.apply_rope(q, m + shift) * student.apply_rope(k, n + shift)).sum(-1)
    if not torch.allclose(shifted.double(), scores.double(), atol=DOT_ATOL, rtol=1e-5):
        check(
            bool(torch.allclose(pair_lengths(rq).double(), pair_lengths(q).double(), atol=ROPE_ATOL)),
            f"scores q_m·k_n change when both positions shift by {shift}: they depend on the absolute "
            "positions, not only on m − n. Your map is not a rotation: it changes the length of the "
            "pairs (x[2i], x[2i+1]). Each pair must be multiplied by [[cos pθ_i, −sin pθ_i], "
            f"[sin pθ_i, cos pθ_i]] ({POSITIONS}).",
        )
    check_close(
        shifted,
        scores,
        what=f"scores q_m·k_n after shifting both positions by {shift}",
        atol=DOT_ATOL,
        hint="rotate q by its own position and k by its own, each pair by an angle proportional to the "
        "position; then q_m·k_n = q·R((n−m)θ)k.",
    )
    expected = (rope_complex(q, m) * rope_complex(k, n)).sum(-1).float()
    check_close(scores, expected, what="scores q_m·k_n", atol=DOT_ATOL, example=rope_anchor_example(student))


@pytest.mark.points(3)
def test_rope_leading_dims_and_offsets(student, gen):
    """Any leading dims, positions with an offset (KV cache), per-batch positions, dtype kept"""
    x = randn(gen, 6, 8)  # no batch dim
    check_close(
        student.apply_rope(x, torch.arange(6)),
        rope_complex(x, torch.arange(6)),
        what="apply_rope on a (T, d_head) input",
        atol=ROPE_ATOL,
        diagnose=rope_diagnoses(x, torch.arange(6)),
        example=rope_anchor_example(student),
    )
    x = randn(gen, 2, 2, 3, 5, 8)
    offset = randint(gen, 5, 40)
    positions = torch.arange(5) + offset
    check_close(
        student.apply_rope(x, positions),
        rope_complex(x, positions),
        what=f"apply_rope on (2, 2, 3, 5, 8) at positions {offset}…{offset + 4}",
        atol=ROPE_ATOL,
        hint="use the positions you are given (a KV cache passes arange(T) + offset), not arange(T).",
        diagnose=[
            (
                rope_complex(x, torch.arange(5)),
                "the positions argument is ignored: the rotation used 0…T−1 instead of the positions "
                f"given; p is each token's absolute position ({POSITIONS}).",
            )
        ],
    )
    full = randn(gen, 2, 4, 7, 8)
    check_close(
        student.apply_rope(full[:, :, -1:], torch.tensor([6])),
        student.apply_rope(full, torch.arange(7))[:, :, -1:],
        what="the last token rotated alone at position 6 against within the full sequence",
        atol=ROPE_ATOL,
        hint="a token's rotation depends on its own position only, not on T.",
    )
    per_batch = torch.stack([torch.arange(7), torch.arange(7) + 2])[:, None, :]  # (B, 1, T)
    check_close(
        student.apply_rope(full, per_batch),
        rope_complex(full, per_batch),
        what="apply_rope with per-sequence positions of shape (B, 1, T)",
        atol=ROPE_ATOL,
    )
    x64 = randn(gen, 3, 8).double()
    out64 = student.apply_rope(x64, torch.arange(3))
    check_equal(
        str(getattr(out64, "dtype", None)),
        "torch.float64",
        what="apply_rope dtype on float64 input",
        hint="return the input's dtype.",
    )


def _clear_odd_error(error) -> bool:
    """A ValueError (or an assertion) or a message about even/odd widths or pairs."""
    text = str(error).lower()
    return error.exc_type in ("ValueError", "AssertionError") or any(
        w in text for w in ("even", "odd", "pair")
    )


@pytest.mark.points(1)
def test_rope_odd_width_rejected(student, gen):
    """An odd d_head is rejected with a clear error, by rope_angles and by apply_rope"""
    student.rope_angles(4, torch.arange(2))  # a stub fails here
    d = 2 * randint(gen, 1, 5) + 1
    got, error = outcome(lambda: student.rope_angles(d, torch.arange(3)))
    shapes = [tuple(t.shape) for t in got] if isinstance(got, (tuple, list)) else type(got).__name__
    check(
        error is not None,
        f"rope_angles({d}, arange(3)) with an odd d_head = {d} returned {shapes} instead of raising: RoPE "
        "rotates pairs of channels, so an odd width leaves a channel without a partner. Raise a "
        f"ValueError that says d_head must be even ({POSITIONS}).",
    )
    check(
        _clear_odd_error(error),
        f"rope_angles({d}, …) with an odd d_head raised an error that does not say why: {error}. Check "
        f"that d_head is even and raise a ValueError that says so ({POSITIONS}).",
    )
    _, error = outcome(lambda: student.apply_rope(torch.ones(3, d), torch.arange(3)))
    check(
        error is not None and _clear_odd_error(error),
        f"apply_rope on x of shape (3, {d}) (odd d_head) "
        + (f"raised an error that does not say why: {error}." if error else "did not raise.")
        + f" An odd width must be rejected with a ValueError saying d_head must be even ({POSITIONS}).",
    )


# --------------------------------------------------------------------------- ALiBi
def slopes_example(student):
    return Example(
        "alibi_slopes(3) (2^(-8/3), 2^(-16/3), 2^(-8))", slopes_closed(3), lambda: student.alibi_slopes(3)
    )


def check_slopes(student, n: int) -> None:
    """alibi_slopes(n) against the closed form, with the named slope mistakes and a worked example."""
    check_close(
        student.alibi_slopes(n),
        slopes_closed(n),
        what=f"alibi_slopes({n})",
        atol=1e-7,
        rtol=1e-6,
        hint=f"m_h = 2^(-8h/n) with n = {n}, for h = 1 … {n}.",
        diagnose=slope_diagnoses(n),
        example=slopes_example(student),
    )


@pytest.mark.points(2)
def test_alibi_slopes(student):
    """ALiBi slopes 2^(-8h/n): 1/2 … 1/256 for 8 heads, the same geometric rule for 12"""
    for n in (8, 12):
        check_slopes(student, n)


@pytest.mark.points(2)
def test_alibi_slopes_edges(student, gen):
    """6 heads (not a power of two) and one head (slope 2^-8); the bias of a single head"""
    for n in (6, 1):
        check_slopes(student, n)
    T = randint(gen, 2, 6)
    check_close(
        student.alibi_bias(1, T, T),
        alibi_closed(1, T, T),
        what=f"alibi_bias(1, {T}, {T})",
        atol=1e-6,
        hint="shape (1, T_q, T_k) for one head; bias[0, i, j] = −(i − j)/256 for j ≤ i.",
        diagnose=[(alibi_closed(1, T, T, bug=b), msg) for b, msg in ALIBI_BUGS.items()],
        example=Example(
            "alibi_bias(1, 2, 2) (slope 1/256)", alibi_closed(1, 2, 2), lambda: student.alibi_bias(1, 2, 2)
        ),
    )


@pytest.mark.points(3)
def test_alibi_bias(student, gen):
    """alibi_bias is −m_h·(i − j) for past keys, 0 for future keys, bottom-right aligned"""
    n = int(torch.tensor([4, 6, 8])[randint(gen, 0, 3)])
    for T_q, T_k in ((6, 6), (2, 7), (1, 5)):
        check_close(
            student.alibi_bias(n, T_q, T_k),
            alibi_closed(n, T_q, T_k),
            what=f"alibi_bias({n}, {T_q}, {T_k})",
            atol=1e-6,
            hint="shape (n_heads, T_q, T_k); bias[h, i, j] = −m_h·(i − j) for j ≤ i, with query i at "
            "absolute position T_k − T_q + i.",
            diagnose=[(alibi_closed(n, T_q, T_k, bug=b), msg) for b, msg in ALIBI_BUGS.items()],
            example=Example(
                "alibi_bias(2, 2, 3) (slopes 1/16 and 1/256; queries at positions 1 and 2)",
                alibi_closed(2, 2, 3),
                lambda: student.alibi_bias(2, 2, 3),
            ),
        )


# --------------------------------------------------------------------------- order matters
def _attend(x, W, bias=None, rope=None):
    """Trusted single-head attention over (T, d) tokens; rope(q_or_k) rotates them."""
    q, k, v = x @ W[0], x @ W[1], x @ W[2]
    if rope is not None:
        q, k = rope(q), rope(k)
    return F.scaled_dot_product_attention(q[None], k[None], v[None], attn_mask=bias)[0]


@pytest.mark.points(2)
def test_order_matters(student, gen):
    """Without positions attention is permutation-equivariant; with each encoding a swap changes it"""
    T, d = 6, 8
    x = randn(gen, T, d)
    W = randn(gen, 3, d, d) / math.sqrt(d)
    a, b = sorted(torch.randperm(T, generator=gen)[:2].tolist())
    perm = torch.arange(T)
    perm[a], perm[b] = b, a
    plain = _attend(x, W)
    # Sanity: with no position information, swapping two tokens only swaps their outputs.
    check_close(_attend(x[perm], W), plain[perm], what="position-free attention (grader's own check)")
    pe = student.sinusoidal_encoding(T, d)
    pos = torch.arange(T)
    encodings = {
        "sinusoidal_encoding added to x": lambda z: _attend(z + pe, W),
        "apply_rope on q and k": lambda z: _attend(z, W, rope=lambda t: student.apply_rope(t, pos)),
        "alibi_bias on the scores": lambda z: _attend(z, W, bias=student.alibi_bias(8, T, T)[0]),
    }
    # With the reference, the smallest change over 500 draws is 0.031 (RoPE), 0.057 (sinusoidal),
    # 0.066 (ALiBi head 1): far above the 1e-4 that counts as "unchanged".
    for label, attend in encodings.items():
        out, swapped = attend(x), attend(x[perm])
        check(
            not torch.allclose(swapped, out[perm], atol=1e-4),
            f"with {label}, swapping tokens {a} and {b} only swapped their outputs: the model still "
            "cannot tell the order of tokens apart.",
            "the encoding must depend on the position p (not be constant or zero).",
        )
