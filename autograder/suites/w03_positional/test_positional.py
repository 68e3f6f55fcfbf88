"""Week 3 hidden suite: sinusoidal and learned positions, RoPE, ALiBi, and why order matters.

Expected values are closed forms computed here in float64 (RoPE also through complex
numbers: each interleaved pair is one complex number multiplied by e^{i·p·θ}), on inputs drawn
from the grading seed. Classic mistakes are recomputed here so a matching submission is told
which one it made.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from autograder.checks import check, check_close, check_equal
from autograder.drivers.w03 import trainable_parameters
from autograder.isolation import SubmissionError

pytestmark = pytest.mark.w03

# Tolerances (the reference's float32 max |error| against the float64 closed forms, ×10):
# sinusoidal, T ≤ 64, d ≤ 64: 1.9e-6 -> atol 2e-5. RoPE, positions ≤ 64, |x| ~ N(0, 1):
# 3.0e-6 -> atol 3e-5; q_m·k_n against q_{m+s}·k_{n+s} (d = 16, positions ≤ 64): 5.2e-6 -> 5e-5.
# (200 draws each.)
SIN_ATOL, ROPE_ATOL, DOT_ATOL = 2e-5, 3e-5, 5e-5


def randn(gen, *shape):
    return torch.randn(*shape, generator=gen)


def randint(gen, low, high):
    return int(torch.randint(low, high, (1,), generator=gen))


# --------------------------------------------------------------------------- closed forms and mistakes
def sinusoid(T, d, base=10000.0, bug=None):
    """The interleaved table in float64, or a named mistake."""
    p = torch.arange(T, dtype=torch.float64)[:, None]
    i = torch.arange(d // 2, dtype=torch.float64)
    exponent = {"i_over_d": i / d, "one_indexed": 2 * (i + 1) / d}.get(bug, 2 * i / d)
    angles = p / base**exponent  # (T, d/2)
    sin, cos = angles.sin(), angles.cos()
    if bug == "swapped":
        sin, cos = cos, sin
    if bug == "concatenated":
        return torch.cat([sin, cos], dim=-1).float()
    return torch.stack([sin, cos], dim=-1).flatten(-2).float()  # sin at 2i, cos at 2i+1


SIN_BUGS = {
    "swapped": "sin and cos are swapped: even channels 2i hold sin, odd channels 2i+1 hold cos.",
    "concatenated": "all sines come first and all cosines second ([sin…, cos…]); the course interleaves "
    "them: sin at channel 2i, cos at 2i+1.",
    "i_over_d": "the frequencies use base^(i/d) instead of base^(2i/d): pair i's exponent is 2i/d.",
    "one_indexed": "the frequencies are 1-indexed; pair i = 0 has frequency 1 (base^0).",
}


def rope_closed(x, positions, base=10000.0, bug=None):
    """Interleaved RoPE through complex multiplication in float64, or a named mistake."""
    d = x.size(-1)
    i = torch.arange(d // 2, dtype=torch.float64)
    exponent = {"i_over_d": i / d, "one_indexed": 2 * (i + 1) / d}.get(bug, 2 * i / d)
    theta = base ** (-exponent)
    angles = positions.double()[..., None] * theta  # (..., T, d/2)
    if bug == "sign":
        angles = -angles
    if bug == "swapped":  # rope_angles returns (sin, cos): the "rotation" uses the wrong functions
        cos, sin = angles.sin(), angles.cos()
        xe, xo = x.double()[..., 0::2], x.double()[..., 1::2]
        return torch.stack([xe * cos - xo * sin, xe * sin + xo * cos], -1).flatten(-2).to(x.dtype)
    if bug == "half_split":  # channel i pairs with channel i + d/2 (GPT-NeoX / HF rotate_half)
        x1, x2 = x.double()[..., : d // 2], x.double()[..., d // 2 :]
        cos, sin = angles.cos(), angles.sin()
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1).to(x.dtype)
    pairs = torch.view_as_complex(x.double().reshape(*x.shape[:-1], d // 2, 2).contiguous())
    rotated = pairs * torch.polar(torch.ones_like(angles), angles)  # x · e^{i p θ}
    return torch.view_as_real(rotated).flatten(-2).to(x.dtype)


ROPE_BUGS = {
    "half_split": "you rotate the half-split pairs (x[i], x[i + d/2]) (GPT-NeoX / Hugging Face "
    "rotate_half layout); this course rotates interleaved pairs (x[2i], x[2i+1]). Same rotation, "
    "channels permuted: see the notes.",
    "sign": "the rotation goes the wrong way: x'[2i] = x[2i]·cos − x[2i+1]·sin and "
    "x'[2i+1] = x[2i]·sin + x[2i+1]·cos.",
    "one_indexed": "the frequencies are 1-indexed: θ_i = base^(-2i/d) with i starting at 0 (θ_0 = 1).",
    "i_over_d": "θ_i = base^(-i/d) is missing the factor 2: θ_i = base^(-2i/d).",
    "swapped": "cos and sin are swapped.",
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


def alibi_closed(n, T_q, T_k, bug=None):
    m = slopes_closed(n).double()[:, None, None]
    i = torch.arange(T_q, dtype=torch.float64)[:, None] + (0 if bug == "top_left" else T_k - T_q)
    j = torch.arange(T_k, dtype=torch.float64)[None, :]
    if bug == "symmetric":
        return (-m * (i - j).abs()).float()
    bias = -m * (i - j).clamp(min=0)
    return (-bias if bug == "sign" else bias).float()


ALIBI_BUGS = {
    "sign": "the bias has the wrong sign: distant keys must be *penalised*, -m·(i - j) ≤ 0.",
    "top_left": "the bias is aligned top-left; query i sits at absolute position T_k - T_q + i "
    "(bottom-right, as causal_mask).",
    "symmetric": "future keys (j > i) are penalised by -m·|i - j|; this course sets their bias to 0 "
    "(the causal mask hides them).",
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
            hint="use the base argument; one frequency per pair of channels.",
            diagnose=[(sinusoid(T, d, base, bug=b), msg) for b, msg in SIN_BUGS.items()]
            + [(sinusoid(T, d), "the base argument is ignored (10000 is only the default).")],
        )


# --------------------------------------------------------------------------- learned
@pytest.mark.points(2)
def test_learned_embedding_lookup(submission, gen):
    """LearnedPositionalEmbedding returns row p of its (max_len, d_model) table for each position"""
    module = submission.module()
    max_len, d = 16, 8
    emb = module.LearnedPositionalEmbedding(max_len, d)
    params = submission.run(trainable_parameters, emb)
    check(
        len(params) == 1 and [list(v[0]) for v in params.values()] == [[max_len, d]],
        f"LearnedPositionalEmbedding({max_len}, {d}) parameters are "
        f"{ {k: v[0] for k, v in params.items()} }; expected one ({max_len}, {d}) table.",
        "one nn.Parameter `weight` of shape (max_len, d_model): a buffer would never be trained.",
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
    try:
        emb(torch.arange(max_len + 1))
    except SubmissionError:
        return
    check(
        False,
        f"positions up to {max_len} (>= max_len) were accepted: a learned table has no row "
        "for them, so it must raise (it cannot extrapolate).",
    )


@pytest.mark.points(1)
def test_learned_embedding_init(submission):
    """The table is initialised from N(0, 0.02²), as GPT-2"""
    emb = submission.module().LearnedPositionalEmbedding(1024, 64)
    table = next(iter(emb.state_dict().values()))
    # 65,536 draws: the sample std has a standard error of 5.5e-5 and the mean of 7.8e-5.
    std, mean = float(table.std()), float(table.mean())
    check(
        0.019 < std < 0.021 and abs(mean) < 1e-3,
        f"the initial table has mean {mean:.4f} and std {std:.4f}; expected mean 0 and std 0.02.",
        "nn.init.normal_(weight, mean=0.0, std=0.02); nn.Embedding's default N(0, 1) is far too large "
        "next to token embeddings of the same scale.",
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
        (torch.cos(angles * 10000.0 ** (-2 / d)).float(), "the frequencies are 1-indexed: θ_0 = base^0 = 1."),
        (
            torch.cos(positions.double()[:, None] * 10000.0 ** (-torch.arange(d // 2) / d)).float(),
            ROPE_BUGS["i_over_d"],
        ),
        (torch.sin(angles).float(), "cos and sin are swapped: return (cos, sin)."),
    ]
    hint = "one angle per pair of channels: shape (..., T, d_head // 2)."
    check_close(
        cos,
        torch.cos(angles).float(),
        what=f"cos from rope_angles({d}, arange({T}))",
        atol=1e-6,
        hint=hint,
        diagnose=bad,
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
        rope_closed(x, positions),
        what="apply_rope on (B=2, h=3, T=12, d_head=16)",
        atol=ROPE_ATOL,
        hint="x'[2i] = x[2i]·cos(pθ_i) − x[2i+1]·sin(pθ_i), x'[2i+1] = x[2i]·sin(pθ_i) + x[2i+1]·cos(pθ_i).",
        diagnose=rope_diagnoses(x, positions),
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
        "the channel permutation P = [0, 2, 4, …, 1, 3, 5, …].",
    )
    check_close(
        got[..., P],
        rope_closed(x[..., P], positions, bug="half_split"),
        what="apply_rope(x)[..., P] against the half-split rotation of x[..., P]",
        atol=ROPE_ATOL,
        hint="pairs are neighbours (2i, 2i+1).",
    )


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
    pair_norm = lambda t: t.reshape(*t.shape[:-1], -1, 2).norm(dim=-1)  # noqa: E731
    check_close(
        pair_norm(out),
        pair_norm(x),
        what="length of each rotated pair",
        atol=ROPE_ATOL,
        hint="a rotation mixes the two channels of a pair only, with cos and sin of the same angle.",
    )
    check_close(
        student.apply_rope(x, torch.zeros(10, dtype=torch.long)),
        x,
        what="apply_rope at position 0",
        atol=1e-7,
        hint="cos 0 = 1 and sin 0 = 0: position 0 must be the identity.",
    )


@pytest.mark.points(3)
def test_rope_relative_positions(student, gen):
    """q_m · k_n depends only on m − n: shifting both positions leaves every score unchanged"""
    d, T = 16, 8
    q, k = randn(gen, T, d), randn(gen, T, d)
    m = torch.randint(0, 32, (T,), generator=gen)
    n = torch.randint(0, 32, (T,), generator=gen)
    scores = (student.apply_rope(q, m) * student.apply_rope(k, n)).sum(-1)  # (T,)
    shift = randint(gen, 1, 32)
    shifted = (student.apply_rope(q, m + shift) * student.apply_rope(k, n + shift)).sum(-1)
    check_close(
        shifted,
        scores,
        what=f"scores q_m·k_n after shifting both positions by {shift}",
        atol=DOT_ATOL,
        hint="rotate q by its own position and k by its own; then q_m·k_n = q·R((n−m)θ)k.",
    )
    expected = (rope_closed(q, m) * rope_closed(k, n)).sum(-1).float()
    check_close(scores, expected, what="scores q_m·k_n", atol=DOT_ATOL)


@pytest.mark.points(3)
def test_rope_leading_dims_and_offsets(student, gen):
    """Any leading dims, positions with an offset (KV cache), per-batch positions, dtype kept"""
    x = randn(gen, 6, 8)  # no batch dim
    check_close(
        student.apply_rope(x, torch.arange(6)),
        rope_closed(x, torch.arange(6)),
        what="apply_rope on a (T, d_head) input",
        atol=ROPE_ATOL,
    )
    x = randn(gen, 2, 2, 3, 5, 8)
    offset = randint(gen, 5, 40)
    positions = torch.arange(5) + offset
    check_close(
        student.apply_rope(x, positions),
        rope_closed(x, positions),
        what=f"apply_rope on (2, 2, 3, 5, 8) at positions {offset}…{offset + 4}",
        atol=ROPE_ATOL,
        hint="use the positions you are given (a KV cache passes arange(T) + offset), not arange(T).",
        diagnose=[
            (
                rope_closed(x, torch.arange(5)),
                "the positions argument is ignored: the rotation used 0…T−1 instead of the positions given.",
            )
        ],
    )
    full = randn(gen, 2, 4, 7, 8)
    check_close(
        student.apply_rope(full[:, :, -1:], torch.tensor([6])),
        student.apply_rope(full, torch.arange(7))[:, :, -1:],
        what="the last token rotated alone at position 6 against within the full sequence",
        atol=ROPE_ATOL,
    )
    per_batch = torch.stack([torch.arange(7), torch.arange(7) + 2])[:, None, :]  # (B, 1, T)
    check_close(
        student.apply_rope(full, per_batch),
        rope_closed(full, per_batch),
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


# --------------------------------------------------------------------------- ALiBi
@pytest.mark.points(2)
def test_alibi_slopes(student):
    """ALiBi slopes 2^(-8h/n): 1/2 … 1/256 for 8 heads, the same geometric rule for 12"""
    check_close(
        student.alibi_slopes(8),
        torch.tensor([2.0**-h for h in range(1, 9)]),
        what="alibi_slopes(8)",
        atol=1e-7,
        rtol=1e-6,
        hint="m_h = 2^(-8h/n) for h = 1 … n.",
        diagnose=[
            (
                torch.tensor([2.0**-h for h in range(8, 0, -1)]),
                "the slopes are in reverse order: head 1 has the steepest slope 2^(-8/n).",
            )
        ],
    )
    check_close(
        student.alibi_slopes(12),
        slopes_closed(12),
        what="alibi_slopes(12)",
        atol=1e-7,
        rtol=1e-6,
        hint="m_h = 2^(-8h/n) with n = 12, for h = 1 … 12.",
        diagnose=[
            (
                slopes_power_of_two_rule(12),
                "these are the slopes of the ALiBi repository / BLOOM "
                "interpolation for head counts that are not powers of two; the course uses the paper's "
                "geometric rule 2^(-8h/n) for every n.",
            ),
            (torch.tensor([2.0**-h for h in range(1, 13)]), "the slopes are 2^(-h): the exponent is -8h/n."),
        ],
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
