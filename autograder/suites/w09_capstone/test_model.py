"""Week 9 hidden suite: the Mini-GPT against a functional oracle built on PyTorch's own ops.

Weights are drawn at grading time in the documented state-dict layout and loaded into the
student's model; logits, loss and attention weights are recomputed here by `oracle.forward`.

What the model promises, and the edge each promise is tested at (test in brackets):

  * the documented state-dict keys and shapes, with and without biases and RoPE (state_dict_layout)
  * pre-LN blocks, causal attention scaled by 1/√d_head, heads re-assembled in order, exact GELU,
    a final LayerNorm, the tied head; positions from 0; T = block_size, T < block_size and T = 1
    (a single token); the mean loss over B·T positions, None without targets
    (forward_matches_oracle)
  * RoPE on interleaved pairs, q and k only, position 0 the identity (rope_model_matches_oracle,
    rope_convention)
  * a later token never changes an earlier logit (causality)
  * the head shares the embedding's Parameter (one tensor, counted once) and the exact parameter
    count; with tie_weights=False two Parameters, V·d more, and the logits read the head's own
    matrix (weight_tying_and_parameter_count)
  * attention maps: lower triangle, each row a softmax over the keys (attention_maps)
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from autograder.checks import check, check_close, check_equal, convention
from autograder.drivers.w09 import model_facts
from autograder.suites.w09_capstone import oracle
from autograder.suites.w09_capstone.common import expected_shapes, model_config, new_model, random_state

pytestmark = pytest.mark.w09

MASKS = convention("Masks and attention")
POSITIONS = convention("Positions")
BLOCKS = convention("Blocks")

# Largest |logits - oracle| over 20 seeds × (bias, rope) on these configurations (weights
# ~N(0, 0.3)): 2.6e-6; attention weights 1e-6.
ATOL = 1e-4


def _loaded(student, cfg, sd):
    model = new_model(student, cfg)
    model.load_state_dict(sd)
    model.eval()
    return model


def _bugs(sd, idx, n_heads, rope):
    """Logits of classic mistakes, so a match is named."""
    bugs = [
        (
            oracle.forward(sd, idx, n_heads, rope=rope, post_ln=True),
            "the blocks are post-LN (normalise after the residual add); the model is pre-LN: "
            f"x + attn(ln1(x)) ({BLOCKS}).",
        ),
        (
            oracle.forward(sd, idx, n_heads, rope=rope, causal=False),
            "attention is not causal: positions see the future (is_causal=True / a lower-triangular mask) "
            f"({MASKS}).",
        ),
        (
            oracle.forward(sd, idx, n_heads, rope=rope, scale=False),
            f"attention scores are not scaled by 1/√d_head ({MASKS}).",
        ),
        (
            oracle.forward(sd, idx, n_heads, rope=rope, heads_untransposed=True),
            "the heads were put back side by side without transposing: (B, h, T, d_head) must become "
            "(B, T, h, d_head) (transpose(1, 2)) before the view to (B, T, d), or the numbers are scrambled.",
        ),
    ]
    if not rope and idx.size(1) < sd["pos_emb.weight"].size(0):
        bugs.append(
            (
                oracle.forward(sd, idx, n_heads, first_position=1),
                "the position table is read from row 1: positions start at 1 instead of 0, so the first "
                f"token of a window must add pos_emb row 0 (torch.arange(T)) ({POSITIONS}).",
            )
        )
    if rope:
        bugs.append(
            (
                oracle.forward(sd, idx, n_heads, rope=True, half_split=True),
                "RoPE rotates the half-split pairs (x[i], x[i + d/2]) (the GPT-NeoX / Llama layout); the "
                f"course rotates interleaved pairs (x[2i], x[2i+1]) ({POSITIONS}).",
            )
        )
    return bugs


@pytest.mark.points(1)
def test_state_dict_layout(student, submission, gen):
    """The model's state-dict keys and shapes are the documented ones"""
    for bias, rope in ((True, False), (False, True)):
        cfg = model_config(gen, bias=bias, rope=rope)
        facts = submission.run(model_facts, new_model(student, cfg))
        expected = expected_shapes(
            cfg["vocab_size"], cfg["block_size"], cfg["n_layers"], cfg["d_model"], bias=bias, rope=rope
        )
        missing = sorted(set(expected) - set(facts["shapes"]))
        extra = sorted(set(facts["shapes"]) - set(expected))
        check(
            not missing,
            f"state dict (bias={bias}, rope={rope}) lacks {missing[:4]}",
            "keep the stub's attribute names.",
        )
        check(not extra, f"state dict (bias={bias}, rope={rope}) has unexpected keys {extra[:4]}")
        for key, shape in expected.items():
            check_equal(list(facts["shapes"][key]), shape, what=f"shape of {key}")


@pytest.mark.points(3)
def test_forward_matches_oracle(student, gen):
    """Logits and loss equal a functional transformer recomputed from the same weights"""
    cfg = model_config(gen, bias=True)
    sd = random_state(gen, cfg)
    idx = torch.randint(cfg["vocab_size"], (3, cfg["block_size"]), generator=gen)
    targets = torch.randint(cfg["vocab_size"], (3, cfg["block_size"]), generator=gen)
    model = _loaded(student, cfg, sd)
    # Shorter than block_size first (a position table read from the wrong row still runs there),
    # then a single token, then the full context.
    for T in (5, 1):
        short = idx[:, :T]
        logits, loss = model(short)
        check(loss is None, "model(idx) without targets should return (logits, None).")
        check_close(
            logits,
            oracle.forward(sd, short, cfg["n_heads"]),
            what=f"logits for T = {T} < block_size",
            atol=ATOL,
            rtol=ATOL,
            hint="pre-LN blocks, causal attention, exact GELU MLP, final LayerNorm, tied head; positions 0 … T - 1.",
            diagnose=lambda short=short: _bugs(sd, short, cfg["n_heads"], rope=False),
        )
    logits, loss = model(idx, targets)
    expected = oracle.forward(sd, idx, cfg["n_heads"])
    check_close(
        logits,
        expected,
        what="logits (B, T, V)",
        atol=ATOL,
        rtol=ATOL,
        hint="pre-LN blocks, causal attention, exact GELU MLP, final LayerNorm, tied head.",
        diagnose=lambda: _bugs(sd, idx, cfg["n_heads"], rope=False),
    )
    check_close(
        loss,
        F.cross_entropy(expected.flatten(0, 1), targets.flatten()),
        what="loss",
        atol=ATOL,
        rtol=ATOL,
        hint="mean cross-entropy over all B·T positions: flatten logits to (B·T, V) and targets to (B·T,).",
    )


@pytest.mark.points(2)
def test_rope_model_matches_oracle(student, gen):
    """With rope=True the logits equal the oracle's (interleaved rotary embeddings on q and k)"""
    cfg = model_config(gen, bias=False, rope=True)
    sd = random_state(gen, cfg)
    idx = torch.randint(cfg["vocab_size"], (2, cfg["block_size"]), generator=gen)
    logits, _ = _loaded(student, cfg, sd)(idx)
    check_close(
        logits,
        oracle.forward(sd, idx, cfg["n_heads"], rope=True),
        what="logits of the RoPE model",
        atol=ATOL,
        rtol=ATOL,
        hint="rotate q and k (not v) per head, pairs (2i, 2i+1), angle p·10000^(-2i/d_head), no position table.",
        diagnose=lambda: _bugs(sd, idx, cfg["n_heads"], rope=True),
    )


@pytest.mark.points(1)
def test_rope_convention(student, gen):
    """apply_rope matches the course anchor and the oracle's complex rotation"""
    cos, sin = student.rope_angles(2, 4)
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    anchor = torch.tensor([[1.0, 2.0, 3.0, 4.0], [-1.1426396637, 1.9220755965, 2.9598506679, 4.0297995017]])
    half = oracle.rope_complex(x, half_split=True)
    check_close(
        student.apply_rope(x, cos, sin),
        anchor,
        what="apply_rope([1, 2, 3, 4]) at positions 0 and 1 (d=4)",
        atol=1e-6,
        hint="position 0 is the identity; pairs (x[2i], x[2i+1]) turn by p·base^(-2i/d).",
        diagnose=[
            (
                half,
                "this is the half-split layout (rotate_half); the course rotates interleaved pairs "
                f"(x[2i], x[2i+1]) ({POSITIONS}).",
            ),
            (
                oracle.rope_complex(torch.cat([x[:1], x]))[1:],
                f"positions start at 1 instead of 0: position 0 must be the identity ({POSITIONS}).",
            ),
        ],
    )
    x = torch.randn(2, 3, 7, 8, generator=gen)
    cos, sin = student.rope_angles(7, 8)
    check_close(
        student.apply_rope(x, cos, sin), oracle.rope_complex(x), what="apply_rope on (2, 3, 7, 8)", atol=1e-5
    )


@pytest.mark.points(1)
def test_causality(student, gen):
    """Changing a later token never changes the logits of earlier positions"""
    cfg = model_config(gen, bias=True)
    model = _loaded(student, cfg, random_state(gen, cfg))
    idx = torch.randint(cfg["vocab_size"], (2, cfg["block_size"]), generator=gen)
    cut = cfg["block_size"] // 2
    changed = idx.clone()
    changed[:, cut:] = (changed[:, cut:] + 1) % cfg["vocab_size"]
    before, _ = model(idx)
    after, _ = model(changed)
    check_close(
        after[:, :cut],
        before[:, :cut],
        what=f"logits of positions < {cut} after changing tokens from position {cut} on",
        atol=1e-6,
        hint="earlier positions changed when only later tokens did: attention sees the future. Position t "
        f"may attend to positions ≤ t only: a causal mask (is_causal=True) ({MASKS}).",
    )


@pytest.mark.points(2)
def test_weight_tying_and_parameter_count(student, submission, gen):
    """The head is tied to the token embedding (untied with tie_weights=False) and the count is exact"""
    for bias, rope in ((True, False), (False, True)):
        cfg = model_config(gen, bias=bias, rope=rope)
        facts = submission.run(model_facts, new_model(student, cfg))
        check(
            facts["tied"],
            "the output head is not tied to the token embedding: lm_head.weight is not the same tensor as "
            f"tok_emb.weight, so the model learns two (V, d) matrices instead of one ({BLOCKS}).",
            "weight tying (tie_weights=True, the default): self.lm_head.weight = self.tok_emb.weight.",
        )
        expected = oracle.param_count(
            cfg["vocab_size"], cfg["block_size"], cfg["n_layers"], cfg["d_model"], bias=bias, rope=rope
        )
        check_equal(facts["num_params"], expected, what=f"parameter count (bias={bias}, rope={rope})")
    # Untied: the head is a Parameter of its own, V·d more, and the logits read it.
    cfg = model_config(gen, bias=False)
    V, d = cfg["vocab_size"], cfg["d_model"]
    untied = student.MiniGPT(student.GPTConfig(**cfg, tie_weights=False))
    facts = submission.run(model_facts, untied)
    check(
        not facts["tied"],
        "with tie_weights=False the head is still tied to the token embedding: give lm_head its own (V, d) "
        "matrix (tie only when config.tie_weights is true).",
    )
    expected = oracle.param_count(V, cfg["block_size"], cfg["n_layers"], d, bias=False, rope=False) + V * d
    check_equal(
        facts["num_params"],
        expected,
        what=f"parameter count with tie_weights=False (V·d = {V * d} more than tied)",
        hint="an untied head adds its own V·d; count each Parameter once.",
    )
    sd = random_state(gen, cfg)
    sd["lm_head.weight"] = torch.randn(V, d, generator=gen) * 0.3
    untied.load_state_dict(sd)
    untied.eval()
    idx = torch.randint(V, (2, 7), generator=gen)
    logits, _ = untied(idx)
    check_close(
        logits,
        oracle.forward(sd, idx, cfg["n_heads"], untied=True),
        what="logits of the untied model (its own lm_head.weight)",
        atol=ATOL,
        rtol=ATOL,
        hint="the head multiplies by lm_head.weight, which is the embedding only when tied.",
        diagnose=[
            (
                oracle.forward(sd, idx, cfg["n_heads"]),
                "with tie_weights=False the logits still come from the token embedding: the head must use "
                "its own lm_head.weight.",
            )
        ],
    )


@pytest.mark.points(1)
def test_attention_maps(student, gen):
    """attention_maps returns every layer's causal attention weights"""
    cfg = model_config(gen, bias=False)
    sd = random_state(gen, cfg)
    idx = torch.randint(cfg["vocab_size"], (2, 9), generator=gen)
    maps = _loaded(student, cfg, sd).attention_maps(idx)
    _, expected = oracle.forward(sd, idx, cfg["n_heads"], return_weights=True)
    check_equal(len(maps), len(expected), what="number of attention maps (one per layer)")
    for layer, (got, want) in enumerate(zip(maps, expected)):
        check_close(
            got,
            want,
            what=f"attention weights of layer {layer} (B, h, T, T)",
            atol=1e-5,
            hint="softmax over keys of q·k/√d_head with future keys masked, per head.",
            diagnose=lambda layer=layer: [
                (
                    oracle.forward(sd, idx, cfg["n_heads"], return_weights=True, mask_above=True)[1][layer],
                    "the mask's triangle is on the wrong side: each position attends to itself and the future "
                    f"(upper triangle, triu) instead of the past (lower triangle, tril) ({MASKS}).",
                ),
                (
                    oracle.forward(sd, idx, cfg["n_heads"], return_weights=True, softmax_over_queries=True)[
                        1
                    ][layer],
                    "each column sums to 1 instead of each row: the softmax ran over the queries (dim=-2); "
                    f"a query's weights over the keys sum to 1 (dim=-1) ({MASKS}).",
                ),
            ],
        )
