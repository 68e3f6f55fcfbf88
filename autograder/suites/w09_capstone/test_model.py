"""Week 9 hidden suite: the Mini-GPT against a functional oracle built on PyTorch's own ops.

Weights are drawn at grading time in the documented state-dict layout and loaded into the
student's model; logits, loss and attention weights are recomputed here by `oracle.forward`.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from autograder.checks import check, check_close, check_equal
from autograder.drivers.w09 import model_facts
from autograder.suites.w09_capstone import oracle
from autograder.suites.w09_capstone.common import expected_shapes, model_config, new_model, random_state

pytestmark = pytest.mark.w09

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
            "the blocks are post-LN (normalise after the residual add); the model is pre-LN: x + attn(ln1(x)).",
        ),
        (
            oracle.forward(sd, idx, n_heads, rope=rope, causal=False),
            "attention is not causal: positions see the future (is_causal=True / a lower-triangular mask).",
        ),
        (
            oracle.forward(sd, idx, n_heads, rope=rope, scale=False),
            "attention scores are not scaled by 1/√d_head.",
        ),
    ]
    if rope:
        bugs.append(
            (
                oracle.forward(sd, idx, n_heads, rope=True, half_split=True),
                "RoPE rotates the half-split pairs (x[i], x[i + d/2]) (the GPT-NeoX / Llama layout); the course rotates interleaved pairs (x[2i], x[2i+1]).",
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
    logits, loss = model(idx, targets)
    expected = oracle.forward(sd, idx, cfg["n_heads"])
    check_close(
        logits,
        expected,
        what="logits (B, T, V)",
        atol=ATOL,
        rtol=ATOL,
        hint="pre-LN blocks, causal attention, exact GELU MLP, final LayerNorm, tied head.",
        diagnose=_bugs(sd, idx, cfg["n_heads"], rope=False),
    )
    check_close(
        loss,
        F.cross_entropy(expected.flatten(0, 1), targets.flatten()),
        what="loss",
        atol=ATOL,
        rtol=ATOL,
        hint="mean cross-entropy over all B·T positions: flatten logits to (B·T, V) and targets to (B·T,).",
    )
    short = idx[:, :5]
    logits, loss = model(short)
    check(loss is None, "model(idx) without targets should return (logits, None).")
    check_close(
        logits,
        oracle.forward(sd, short, cfg["n_heads"]),
        what="logits for T < block_size",
        atol=ATOL,
        rtol=ATOL,
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
        diagnose=_bugs(sd, idx, cfg["n_heads"], rope=True),
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
        diagnose=[(half, "this is the half-split layout (rotate_half); the course pairs interleaved dims.")],
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
        hint="position t may attend to positions ≤ t only: a causal mask (is_causal=True).",
    )


@pytest.mark.points(2)
def test_weight_tying_and_parameter_count(student, submission, gen):
    """The head is tied to the token embedding and the parameter count is exact"""
    for bias, rope in ((True, False), (False, True)):
        cfg = model_config(gen, bias=bias, rope=rope)
        facts = submission.run(model_facts, new_model(student, cfg))
        check(
            facts["tied"],
            "lm_head.weight is not the same tensor as tok_emb.weight.",
            "weight tying: self.lm_head.weight = self.tok_emb.weight.",
        )
        expected = oracle.param_count(
            cfg["vocab_size"], cfg["block_size"], cfg["n_layers"], cfg["d_model"], bias=bias, rope=rope
        )
        check_equal(facts["num_params"], expected, what=f"parameter count (bias={bias}, rope={rope})")


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
        )
