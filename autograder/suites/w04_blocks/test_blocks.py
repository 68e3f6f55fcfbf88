"""Week 4 hidden suite, part 2: TransformerBlock, DecoderBlock and block_param_count.

The block's wiring is identified by *probing*: with chosen weights (a sublayer silenced by
zeroing its last projection) the output has a closed form that differs between pre-LN and
post-LN, with and without each residual, with and without the output projection, so a
miswired block is named rather than just failed. Oracles (``oracle.py``) rebuild every
block from PyTorch built-ins; parameter counts come from PyTorch's own modules.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from autograder.checks import Example, GradingFailure, check, check_close, check_equal, convention
from autograder.drivers.common import outputs_in_modes
from autograder.drivers.w04 import block_grads, train_output
from autograder.suites.w04_blocks import oracle

pytestmark = pytest.mark.w04
BLOCKS = convention("Blocks")

D, H = 16, 4  # d_model and heads of the blocks under test (d_head = 4)
# Largest |reference − oracle| over 20 seeds on these blocks: 1.9e-6 (pre-LN), 1.2e-6 (post-LN),
# 1.6e-6 (decoder), 1.2e-6 (RoPE); gradients 6.4e-6. Composites are checked at 1e-4 abs + rel.
ATOL = 1e-4


def randn(gen, *shape):
    return torch.randn(*shape, generator=gen)


def random_state(module, gen, silence=()):
    """Draws every tensor of the module's state dict (norm weights ~ 1 ± 0.3, biases ~ 0.5·N,
    linear weights ~ N(0, 1/d_in)), zeroes the linears named in ``silence``, loads them."""
    sd = {}
    for name, t in module.state_dict().items():
        if name.endswith("bias"):
            sd[name] = randn(gen, *t.shape) * 0.5
        elif t.dim() == 1:
            sd[name] = 1 + randn(gen, *t.shape) * 0.3
        else:
            sd[name] = randn(gen, *t.shape) / t.shape[-1] ** 0.5
        if name.rsplit(".", 1)[0] in silence:
            sd[name] = torch.zeros_like(sd[name])
    module.load_state_dict(sd)
    return sd


def expected_keys(prefixes_norm, attn, ffn_names, norm="layernorm", bias=True):
    keys = set()
    for n in prefixes_norm:
        keys.add(f"{n}.weight")
        if norm == "layernorm" and bias:
            keys.add(f"{n}.bias")
    for a in attn:
        for p in ("q_proj", "k_proj", "v_proj", "out_proj"):
            keys.update({f"{a}.{p}.weight"} | ({f"{a}.{p}.bias"} if bias else set()))
    for f in ffn_names:
        keys.update({f"ffn.{f}.weight"} | ({f"ffn.{f}.bias"} if bias else set()))
    return keys


def check_names(module, expected: set, what: str) -> None:
    names = set(module.state_dict().keys())
    missing, extra = sorted(expected - names), sorted(names - expected)
    check(
        not missing and not extra,
        f"{what}: state-dict keys differ from the documented ones; missing {missing}, unexpected {extra}.",
        "keep the submodule names of the docstring: norm1, attn (q_proj, k_proj, v_proj, out_proj), "
        "norm2, ffn (w1, w2, w3 for SwiGLU); the decoder has self_attn, cross_attn and norm3.",
    )


def padding(gen, B, T):
    """(B, 1, 1, T) key mask, True at real tokens, every row keeping at least its first token."""
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    lengths[0] = T - 1 if T > 1 else 1
    return (torch.arange(T)[None, :] < lengths[:, None])[:, None, None, :]


def example_state(names, biases):
    """d_model = d_ff = 2: every weight and bias 0, norm weights 1, and ``biases`` where given."""
    sd = {}
    for name in names:
        if name.startswith("norm"):
            sd[name] = torch.ones(2) if name.endswith("weight") else torch.zeros(2)
        else:
            sd[name] = torch.zeros(2, 2) if name.endswith("weight") else torch.zeros(2)
    sd.update(biases)
    return sd


def load_and_call(module, sd, *args):
    module.load_state_dict(sd)
    return module(*args)


EX_X = torch.tensor([[[1.0, 3.0]]])  # (B, T, d_model) = (1, 1, 2)


def block_example(student, norm_first: bool = True) -> Example:
    """TransformerBlock(2, 1, d_ff=2): each sublayer outputs its last bias, checkable by hand."""
    names = expected_keys(("norm1", "norm2"), ("attn",), ("w1", "w2"))
    biases = {"attn.out_proj.bias": torch.tensor([1.0, 0.0]), "ffn.w2.bias": torch.tensor([0.0, 1.0])}
    sd = example_state(names, biases)
    form = "pre-LN: x + [1, 0] + [0, 1]" if norm_first else "post-LN: norm2(norm1(x + [1, 0]) + [0, 1])"
    return Example(
        f"TransformerBlock(2, 1, d_ff=2, norm_first={norm_first}) with every weight and bias 0 except the "
        "norm weights (1), attn.out_proj.bias = [1., 0.] and ffn.w2.bias = [0., 1.] (each sublayer then "
        f"outputs that bias), x = [[[1., 3.]]]; {form}",
        oracle.block(sd, EX_X, n_heads=1, norm_first=norm_first),
        lambda: load_and_call(student.TransformerBlock(2, 1, d_ff=2, norm_first=norm_first), sd, EX_X),
    )


def decoder_example(student) -> Example:
    names = expected_keys(("norm1", "norm2", "norm3"), ("self_attn", "cross_attn"), ("w1", "w2"))
    biases = {
        "self_attn.out_proj.bias": torch.tensor([1.0, 0.0]),
        "cross_attn.out_proj.bias": torch.tensor([0.0, 1.0]),
        "ffn.w2.bias": torch.tensor([1.0, 1.0]),
    }
    sd = example_state(names, biases)
    memory = torch.tensor([[[5.0, -5.0], [2.0, 2.0]]])
    return Example(
        "DecoderBlock(2, 1, d_ff=2) with every weight and bias 0 except the norm weights (1), "
        "self_attn.out_proj.bias = [1., 0.], cross_attn.out_proj.bias = [0., 1.], ffn.w2.bias = [1., 1.], "
        "x = [[[1., 3.]]], memory = [[[5., -5.], [2., 2.]]]: x + [1, 0] + [0, 1] + [1, 1]",
        oracle.decoder(sd, EX_X, memory, n_heads=1),
        lambda: load_and_call(student.DecoderBlock(2, 1, d_ff=2), sd, EX_X, memory),
    )


# --------------------------------------------------------------------------- structure
@pytest.mark.points(1)
def test_block_state_dict_names(student):
    """TransformerBlock's parameters have the documented names (norm1, attn.*, norm2, ffn.*)"""
    check_names(
        student.TransformerBlock(D, H),
        expected_keys(("norm1", "norm2"), ("attn",), ("w1", "w2")),
        "TransformerBlock(16, 4)",
    )
    check_names(
        student.TransformerBlock(D, H, norm="rmsnorm", activation="swiglu"),
        expected_keys(("norm1", "norm2"), ("attn",), ("w1", "w2", "w3"), norm="rmsnorm"),
        "TransformerBlock(16, 4, norm='rmsnorm', activation='swiglu')",
    )


@pytest.mark.points(2)
def test_pre_ln_silenced_block_is_identity(student, gen):
    """Pre-LN probe: with both sublayers silenced (last projections zero) the block returns x"""
    blk = student.TransformerBlock(D, H)
    sd = random_state(blk, gen, silence=("attn.out_proj", "ffn.w2"))
    x = randn(gen, 2, 6, D) * 2 + 1
    normalised = oracle.norm("layernorm", oracle.norm("layernorm", x, sd, "norm1"), sd, "norm2")
    once = oracle.norm("layernorm", x, sd, "norm2")
    check_close(
        blk(x),
        x,
        what="pre-LN block whose attention and FFN output zero",
        atol=1e-6,
        hint="pre-LN: x = x + attn(norm1(x)); x = x + ffn(norm2(x)); the residual stream is never normalised.",
        diagnose=[
            (
                normalised,
                "the output went through norm1 and norm2 although both sublayers add zero: the "
                "residual stream is normalised (post-LN, or x = norm(x) inside a pre-LN block) "
                f"({BLOCKS}).",
            ),
            (once, oracle.BLOCK_BUGS["final_norm"]),
            (
                torch.zeros_like(x),
                f"the output is zero: the residual connections (x + …) are missing ({BLOCKS}).",
            ),
        ],
    )


@pytest.mark.points(2)
def test_pre_ln_attention_sublayer(student, gen):
    """Pre-LN probe with the FFN silenced: output = x + out_proj(attention(norm1(x)))"""
    blk = student.TransformerBlock(D, H)
    sd = random_state(blk, gen, silence=("ffn.w2",))
    x = randn(gen, 2, 6, D) * 2 + 1
    kwargs = dict(n_heads=H)
    check_close(
        blk(x),
        oracle.block(sd, x, **kwargs),
        what="pre-LN block with the FFN silenced (attention sublayer alone)",
        atol=ATOL,
        rtol=ATOL,
        hint="x + attn(norm1(x)), with attn ending in out_proj.",
        diagnose=oracle.block_bugs(
            sd, x, ["no_attn_residual", "no_out_proj", "post_ln", "norm_stream", "final_norm"], **kwargs
        ),
    )


@pytest.mark.points(2)
def test_pre_ln_ffn_sublayer(student, gen):
    """Pre-LN probe with attention silenced: output = x + ffn(norm2(x))"""
    blk = student.TransformerBlock(D, H)
    sd = random_state(blk, gen, silence=("attn.out_proj",))
    x = randn(gen, 2, 6, D) * 2 + 1
    kwargs = dict(n_heads=H)
    check_close(
        blk(x),
        oracle.block(sd, x, **kwargs),
        what="pre-LN block with attention silenced (FFN sublayer alone)",
        atol=ATOL,
        rtol=ATOL,
        hint="x + ffn(norm2(x)).",
        diagnose=oracle.block_bugs(
            sd,
            x,
            ["no_ffn_residual", "one_norm", "no_out_proj", "post_ln", "norm_stream", "final_norm"],
            **kwargs,
        ),
    )


ALL_BLOCK_BUGS = [
    "post_ln",
    "no_attn_residual",
    "no_ffn_residual",
    "no_out_proj",
    "norm_stream",
    "one_norm",
    "ffn_first",
    "parallel",
    "final_norm",
]


@pytest.mark.points(3)
def test_pre_ln_block_matches_oracle(student, gen):
    """Pre-LN block with random weights and a padding mask equals the oracle (LayerNorm/GELU and RMSNorm/SwiGLU)"""
    for norm, activation in (("layernorm", "gelu"), ("rmsnorm", "swiglu")):
        blk = student.TransformerBlock(D, H, d_ff=24, norm=norm, activation=activation)
        sd = random_state(blk, gen)
        x, mask = randn(gen, 3, 7, D) * 2, padding(gen, 3, 7)
        kwargs = dict(n_heads=H, norm_kind=norm, activation=activation, mask=mask)
        check_close(
            blk(x, mask=mask),
            oracle.block(sd, x, **kwargs),
            what=f"pre-LN TransformerBlock(norm={norm!r}, activation={activation!r}) with a (B, 1, 1, T) mask",
            atol=ATOL,
            rtol=ATOL,
            hint="x = x + attn(norm1(x), mask); x = x + ffn(norm2(x)).",
            diagnose=oracle.block_bugs(sd, x, ALL_BLOCK_BUGS, **kwargs),
            example=block_example(student),
        )


@pytest.mark.points(3)
def test_post_ln_block(student, gen):
    """Post-LN (norm_first=False): x = norm1(x + attn(x)); x = norm2(x + ffn(x)), probed then full"""
    blk = student.TransformerBlock(D, H, norm_first=False)
    sd = random_state(blk, gen, silence=("attn.out_proj", "ffn.w2"))
    x = randn(gen, 2, 6, D) * 2 + 1
    check_close(
        blk(x),
        oracle.block(sd, x, n_heads=H, norm_first=False),
        what="post-LN block whose attention and FFN output zero (should be norm2(norm1(x)))",
        atol=ATOL,
        rtol=ATOL,
        hint="post-LN normalises after each residual sum.",
        diagnose=[(x, oracle.BLOCK_BUGS["pre_ln"])],
        example=block_example(student, norm_first=False),
    )
    for norm in ("layernorm", "rmsnorm"):
        blk = student.TransformerBlock(D, H, norm_first=False, norm=norm)
        sd = random_state(blk, gen)
        x = randn(gen, 2, 6, D) * 2 + 1
        kwargs = dict(n_heads=H, norm_kind=norm, norm_first=False)
        check_close(
            blk(x),
            oracle.block(sd, x, **kwargs),
            what=f"post-LN TransformerBlock(norm={norm!r}) with random weights",
            atol=ATOL,
            rtol=ATOL,
            hint="x = norm1(x + attn(x)); x = norm2(x + ffn(x)).",
            diagnose=oracle.block_bugs(
                sd, x, ["pre_ln", "no_attn_residual", "no_ffn_residual", "no_out_proj", "one_norm"], **kwargs
            ),
        )


# --------------------------------------------------------------------------- options
@pytest.mark.points(2)
def test_block_causal_flag(student, gen):
    """causal=True: later tokens never change earlier outputs, combined with a padding mask"""
    T = 8
    blk = student.TransformerBlock(D, H, causal=True)
    sd = random_state(blk, gen)
    x, mask = randn(gen, 3, T, D), padding(gen, 3, T)
    kwargs = dict(n_heads=H, causal_flag=True, mask=mask)
    check_close(
        blk(x, mask=mask),
        oracle.block(sd, x, **kwargs),
        what="causal TransformerBlock with a (B, 1, 1, T) padding mask",
        atol=ATOL,
        rtol=ATOL,
        hint="combine the masks: mask & causal_mask(T) (True = may attend).",
        diagnose=oracle.block_bugs(sd, x, [*oracle.MASK_BUGS, *ALL_BLOCK_BUGS], **kwargs),
    )
    t = int(torch.randint(2, T - 1, (1,), generator=gen))
    x2 = x.clone()
    x2[:, t:] = randn(gen, 3, T - t, D)
    a, b = blk(x), blk(x2)
    check_close(
        b[:, :t],
        a[:, :t],
        what=f"causal block outputs at positions < {t} after changing tokens {t}…",
        atol=1e-6,
        hint="with causal=True position i may only attend to positions ≤ i: the block is not causal "
        f"({convention('Masks and attention')}).",
    )
    plain = student.TransformerBlock(D, H, causal=False)
    random_state(plain, gen)
    check(
        not torch.allclose(plain(x)[:, :t], plain(x2)[:, :t]),
        "with causal=False earlier outputs ignored later tokens: attention must see every position.",
    )


@pytest.mark.points(3)
def test_block_rope(student, gen):
    """rope=True rotates queries and keys (interleaved RoPE, positions 0…T−1) after their projections"""
    blk = student.TransformerBlock(D, H, causal=True, rope=True)
    sd = random_state(blk, gen)
    x = randn(gen, 2, 7, D)
    kwargs = dict(n_heads=H, causal_flag=True, rope=True)
    check_close(
        blk(x),
        oracle.block(sd, x, **kwargs),
        what="TransformerBlock(rope=True, causal=True)",
        atol=ATOL,
        rtol=ATOL,
        hint="q = apply_rope(split_heads(q_proj(x)), positions), the same for k; v is not rotated.",
        diagnose=oracle.block_bugs(
            sd, x, ["rope_ignored", "rope_on_v", "rope_on_input", "rope_k_only", *ALL_BLOCK_BUGS], **kwargs
        ),
    )


@pytest.mark.points(2)
def test_block_rope_positions(student, gen):
    """positions reach RoPE; shifting every position by a constant leaves the output unchanged"""
    T = 7
    blk = student.TransformerBlock(D, H, rope=True)
    sd = random_state(blk, gen)
    x = randn(gen, 2, T, D)
    positions = torch.sort(torch.randperm(20, generator=gen)[:T]).values  # gaps between tokens
    kwargs = dict(n_heads=H, rope=True)
    out = blk(x, positions=positions)
    check_close(
        out,
        oracle.block(sd, x, positions=positions, **kwargs),
        what="TransformerBlock(rope=True) with explicit positions (with gaps)",
        atol=ATOL,
        rtol=ATOL,
        hint="forward(x, mask=None, positions=None): rotate q and k by the given positions.",
        diagnose=[
            (oracle.block(sd, x, **kwargs), "the positions argument is ignored (0 … T−1 used instead).")
        ]
        + oracle.block_bugs(sd, x, ALL_BLOCK_BUGS, positions=positions, **kwargs),
    )
    check_close(
        blk(x, positions=positions + 11),
        out,
        what="RoPE block output after shifting every position by 11",
        atol=ATOL,
        rtol=ATOL,
        hint="RoPE scores depend on m − n only; a constant shift must not change anything.",
    )


@pytest.mark.points(2)
def test_block_dropout_train_eval(submission, gen):
    """dropout is active in training mode only; eval mode is deterministic and exact"""
    blk = submission.module().TransformerBlock(D, H, dropout=0.5)
    sd = random_state(blk, gen)
    x = randn(gen, 2, 6, D)
    train, evals = submission.run(outputs_in_modes, blk, x)
    expected = oracle.block(sd, x, n_heads=H)
    check(torch.equal(evals[0], evals[1]), oracle.dropout_still_active("TransformerBlock(dropout=0.5)"))
    check_close(
        evals[0],
        expected,
        what="TransformerBlock(dropout=0.5) in eval mode",
        atol=ATOL,
        rtol=ATOL,
        hint="use nn.Dropout modules (off in eval()), never F.dropout(training=True).",
        diagnose=oracle.block_bugs(sd, x, ALL_BLOCK_BUGS, n_heads=H),
    )
    check_close(evals[1], evals[0], what="a second call in eval mode", atol=0.0, rtol=0.0)
    check(
        not torch.allclose(train[0], train[1]),
        "TransformerBlock(dropout=0.5) gave identical outputs twice in training mode: is dropout applied?",
        "drop the attention weights, the attention sublayer's output and the FFN's output.",
    )
    check(
        not torch.allclose(train[0], expected, atol=1e-3),
        "in training mode TransformerBlock(dropout=0.5) returned the eval-mode output.",
    )


@pytest.mark.points(2)
def test_dropout_one_drops_every_sublayer(submission, gen):
    """dropout=1.0 in training drops every sublayer's output: the FFN gives 0, pre-LN blocks return x"""
    module = submission.module()
    ffn = module.FeedForward(8, 16, dropout=1.0)
    sd = random_state(ffn, gen)
    x = randn(gen, 2, 3, 8)
    no_drop = {f"ffn.{k}": v for k, v in sd.items()}
    check_close(
        submission.run(train_output, ffn, x),
        torch.zeros_like(x),
        what="FeedForward(8, 16, dropout=1.0) in training mode",
        atol=1e-6,
        hint="the FFN drops its output: return self.dropout(self.w2(h)).",
        diagnose=[
            (
                sd["w2.bias"].expand_as(x),
                "the output is w2's bias: dropout acts on the hidden layer (before w2); the FFN drops "
                f"its output, after w2 ({BLOCKS}).",
            ),
            (
                oracle.ffn(x, no_drop, "ffn", "gelu"),
                f"the FFN's output is not dropped in training ({BLOCKS}).",
            ),
        ],
    )
    blk = module.TransformerBlock(D, H, dropout=1.0)
    sd = random_state(blk, gen)
    x = randn(gen, 2, 4, D)

    def attn_out():
        return oracle.attention(oracle.norm("layernorm", x, sd, "norm1"), sd, "attn", H)

    check_close(
        submission.run(train_output, blk, x),
        x,
        what="TransformerBlock(dropout=1.0) in training mode (every sublayer output dropped)",
        atol=1e-6,
        hint="x = x + dropout(attn(norm1(x))); x = x + ffn(norm2(x)), the FFN dropping its own output.",
        diagnose=lambda: [
            (
                torch.zeros_like(x),
                "the output is zero: dropout acts on the residual stream (x = dropout(x + …)); only "
                f"each sublayer's output is dropped, before it is added to x ({BLOCKS}).",
            ),
            (
                x + sd["attn.out_proj.bias"],
                "the attention sublayer's output is not dropped (only the attention weights are): "
                f"x = x + dropout(attn(norm1(x))) ({BLOCKS}).",
            ),
            (
                x + attn_out(),
                f"the attention sublayer's output is not dropped: x = x + dropout(attn(norm1(x))) ({BLOCKS}).",
            ),
            (
                x + sd["ffn.w2.bias"],
                "the output is x + w2's bias: the FFN's dropout acts on its hidden layer (before w2), "
                f"not on its output ({BLOCKS}).",
            ),
        ],
    )
    dec = module.DecoderBlock(D, H, dropout=1.0)
    sd = random_state(dec, gen)
    memory = randn(gen, 2, 5, D)
    check_close(
        submission.run(train_output, dec, x, memory),
        x,
        what="DecoderBlock(dropout=1.0) in training mode (every sublayer output dropped)",
        atol=1e-6,
        hint="drop the outputs of self-attention, cross-attention and the FFN before adding them to x.",
        diagnose=[
            (
                x + sd["cross_attn.out_proj.bias"],
                f"the cross-attention sublayer's output is not dropped: x = x + dropout(cross_attn(…)) ({BLOCKS}).",
            ),
            (
                x + sd["self_attn.out_proj.bias"],
                f"the self-attention sublayer's output is not dropped: x = x + dropout(self_attn(…)) ({BLOCKS}).",
            ),
            (torch.zeros_like(x), f"the output is zero: dropout acts on the residual stream ({BLOCKS})."),
        ],
    )


@pytest.mark.points(2)
def test_single_token(student, gen):
    """T = 1: a causal RoPE block lets its one token attend to itself; one decoder token reads all of memory"""
    blk = student.TransformerBlock(D, H, causal=True, rope=True)
    sd = random_state(blk, gen)
    x = randn(gen, 3, 1, D) * 2
    kwargs = dict(n_heads=H, causal_flag=True, rope=True)
    check_close(
        blk(x),
        oracle.block(sd, x, **kwargs),
        what="causal TransformerBlock(rope=True) on a single token (T = 1)",
        atol=ATOL,
        rtol=ATOL,
        hint="one token attends to itself with weight 1 (the causal mask keeps its diagonal); RoPE at "
        "position 0 is the identity.",
        diagnose=oracle.block_bugs(sd, x, ["no_diagonal", *ALL_BLOCK_BUGS], **kwargs),
        example=block_example(student),
    )
    dec = student.DecoderBlock(D, H)
    sd = random_state(dec, gen)
    x, memory = randn(gen, 2, 1, D), randn(gen, 2, 4, D) * 1.5 + 0.5
    out = dec(x, memory)
    if isinstance(out, torch.Tensor) and tuple(out.shape) == (2, 4, D):
        raise GradingFailure(
            "DecoderBlock on one target token (T = 1) with S = 4 memory tokens returned shape "
            f"{tuple(out.shape)}: one row per memory token. Cross-attention's queries come from the "
            "decoder, cross_attn(norm2(x), context=memory): keys and values come from memory, and the "
            f"output has one row per decoder token ({BLOCKS})."
        )
    check_close(
        out,
        oracle.decoder(sd, x, memory, n_heads=H),
        what="DecoderBlock with one target token (T = 1) and S = 4 memory tokens",
        atol=ATOL,
        rtol=ATOL,
        hint="the (B, h, 1, S) cross-attention scores: the one query sees every memory token.",
        diagnose=oracle.decoder_bugs(sd, x, memory, ALL_DECODER_BUGS, n_heads=H),
        example=decoder_example(student),
    )
    memory_mask = padding(gen, 2, 4)
    check_close(
        dec(x, memory, memory_mask=memory_mask),
        oracle.decoder(sd, x, memory, n_heads=H, memory_mask=memory_mask),
        what="DecoderBlock with T = 1, S = 4 and a (B, 1, 1, S) memory mask",
        atol=ATOL,
        rtol=ATOL,
        hint="memory_mask hides memory positions from the cross-attention (True = may attend).",
        diagnose=oracle.decoder_bugs(sd, x, memory, ALL_DECODER_BUGS, n_heads=H, memory_mask=memory_mask),
    )


# --------------------------------------------------------------------------- parameter counts
def torch_count(d, d_ff=None, norm="layernorm", activation="gelu", bias=True, cross=False) -> int:
    """Parameters of the same block assembled from PyTorch modules (on the meta device)."""
    d_ff = 4 * d if d_ff is None else d_ff
    kw = dict(bias=bias, device="meta")
    mods = [nn.MultiheadAttention(d, 1, **kw) for _ in range(2 if cross else 1)]
    mods += [nn.Linear(d, d_ff, **kw) for _ in range(2 if activation == "swiglu" else 1)]
    mods.append(nn.Linear(d_ff, d, **kw))
    for _ in range(3 if cross else 2):
        mods.append(nn.LayerNorm(d, **kw) if norm == "layernorm" else nn.RMSNorm(d, device="meta"))
    return sum(p.numel() for m in mods for p in m.parameters())


COUNT_CASES = [
    (norm, act, bias)
    for norm in ("layernorm", "rmsnorm")
    for act in ("gelu", "relu", "swiglu")
    for bias in (True, False)
]


@pytest.mark.points(3)
def test_block_param_count(student, gen):
    """block_param_count is exact for every norm, activation and bias, and for the decoder block"""
    got = student.block_param_count(768)
    check_equal(
        got,
        7_087_872,
        what="block_param_count(768) (a GPT-2 small block)",
        hint="4·d² + 4·d (attention) + 2·d·d_ff + d_ff + d (FFN) + 2·2·d (two LayerNorms).",
        diagnose=oracle.count_bugs(768),
    )
    d = int(torch.randint(3, 12, (1,), generator=gen)) * 8
    d_ff = int(torch.randint(d, 5 * d, (1,), generator=gen))
    for norm, act, bias in COUNT_CASES:
        for ff in (None, d_ff):
            for cross in (False, True):
                expected = torch_count(d, ff, norm, act, bias, cross)
                got = student.block_param_count(
                    d, d_ff=ff, norm=norm, activation=act, bias=bias, cross_attention=cross
                )
                what = (
                    f"block_param_count({d}, d_ff={ff}, norm={norm!r}, activation={act!r}, bias={bias}, "
                    f"cross_attention={cross})"
                )
                check_equal(
                    got,
                    expected,
                    what=what,
                    diagnose=oracle.count_bugs(d, ff, norm, act, bias, cross),
                    hint="attention 4·d² (+4·d), FFN (2 or 3)·d·d_ff (+ biases d_ff per input linear, d for w2), "
                    "LayerNorm 2·d (d without bias), RMSNorm d; the decoder adds a second attention and a third norm.",
                )


@pytest.mark.points(2)
def test_block_modules_have_counted_parameters(student, gen):
    """TransformerBlock and DecoderBlock hold exactly the parameters of the same blocks built from torch modules"""
    d, d_ff = 24, int(torch.randint(20, 60, (1,), generator=gen))
    for norm, act, bias in COUNT_CASES:
        blk = student.TransformerBlock(d, 4, d_ff=d_ff, norm=norm, activation=act, bias=bias)
        n = sum(t.numel() for t in blk.state_dict().values())
        expected = torch_count(d, d_ff, norm, act, bias)
        keeps_bias = "the LayerNorms keep their biases with bias=False: pass bias on to them"
        check_equal(
            n,
            expected,
            what=f"parameters of TransformerBlock(24, 4, d_ff={d_ff}, norm={norm!r}, activation={act!r}, bias={bias})",
            hint="bias=False removes every bias, the LayerNorm's included.",
            diagnose=[
                (
                    expected + 2 * d,
                    f"{keeps_bias} (make_norm(norm, d_model, bias)); bias=False removes every bias, "
                    "the LayerNorms' included.",
                )
            ]
            if norm == "layernorm" and not bias
            else [],
        )
    dec = student.DecoderBlock(d, 4, norm="rmsnorm", activation="swiglu")
    check_equal(
        sum(t.numel() for t in dec.state_dict().values()),
        torch_count(d, None, "rmsnorm", "swiglu", True, cross=True),
        what="parameters of DecoderBlock(24, 4, norm='rmsnorm', activation='swiglu')",
    )


# --------------------------------------------------------------------------- decoder block
ALL_DECODER_BUGS = list(oracle.DECODER_BUGS)


@pytest.mark.points(1)
def test_decoder_state_dict_names(student):
    """DecoderBlock's parameters: norm1, self_attn, norm2, cross_attn, norm3, ffn"""
    check_names(
        student.DecoderBlock(D, H),
        expected_keys(("norm1", "norm2", "norm3"), ("self_attn", "cross_attn"), ("w1", "w2")),
        "DecoderBlock(16, 4)",
    )


@pytest.mark.points(3)
def test_decoder_block_matches_oracle(student, gen):
    """DecoderBlock = causal self-attention, cross-attention over memory, FFN; three pre-LN residual sublayers"""
    dec = student.DecoderBlock(D, H, d_ff=24)
    sd = random_state(dec, gen)
    x, memory = randn(gen, 2, 5, D), randn(gen, 2, 7, D) * 1.5 + 0.5
    memory_mask = padding(gen, 2, 7)
    kwargs = dict(n_heads=H, memory_mask=memory_mask)
    check_close(
        dec(x, memory, memory_mask=memory_mask),
        oracle.decoder(sd, x, memory, **kwargs),
        what="DecoderBlock(16, 4) with a (B, 1, 1, S) memory mask",
        atol=ATOL,
        rtol=ATOL,
        hint="x += self_attn(norm1(x)) (causal); x += cross_attn(norm2(x), context=memory); x += ffn(norm3(x)).",
        diagnose=oracle.decoder_bugs(sd, x, memory, ALL_DECODER_BUGS, **kwargs),
        example=decoder_example(student),
    )
    # A (B, 1, 1, T) padding mask on the target: the causal mask and self_mask must both hold.
    self_mask = padding(gen, 2, 5)
    kwargs = dict(n_heads=H, memory_mask=memory_mask, self_mask=self_mask)
    check_close(
        dec(x, memory, self_mask=self_mask, memory_mask=memory_mask),
        oracle.decoder(sd, x, memory, **kwargs),
        what="DecoderBlock(16, 4) with a (B, 1, 1, T) self_mask and a (B, 1, 1, S) memory mask",
        atol=ATOL,
        rtol=ATOL,
        hint="self-attention uses self_mask & causal_mask(T).",
        diagnose=oracle.decoder_bugs(sd, x, memory, ALL_DECODER_BUGS, **kwargs),
    )


@pytest.mark.points(2)
def test_decoder_cross_attention_probe(student, gen):
    """Decoder probe with self-attention and FFN silenced: output = x + cross_attn(norm2(x), memory)"""
    dec = student.DecoderBlock(D, H)
    sd = random_state(dec, gen, silence=("self_attn.out_proj", "ffn.w2"))
    x, memory = randn(gen, 2, 5, D), randn(gen, 2, 6, D) * 1.5 + 0.5
    kwargs = dict(n_heads=H)
    out = dec(x, memory)
    check_close(
        out,
        oracle.decoder(sd, x, memory, **kwargs),
        what="decoder block with only cross-attention active",
        atol=ATOL,
        rtol=ATOL,
        hint="queries from norm2(x), keys and values from memory (as it is), plus the residual x.",
        diagnose=oracle.decoder_bugs(
            sd, x, memory, ["cross_over_x", "memory_normed", "no_cross_residual"], **kwargs
        ),
    )
    check(
        not torch.allclose(dec(x, memory.flip(1) * 2), out),
        "changing the encoder memory did not change the decoder's output: does cross-attention read memory?",
    )


@pytest.mark.points(2)
def test_decoder_masks(student, gen):
    """Decoder self-attention is causal and memory_mask hides memory positions"""
    T, S = 6, 7
    dec = student.DecoderBlock(D, H)
    random_state(dec, gen)
    x, memory = randn(gen, 2, T, D), randn(gen, 2, S, D)
    t = int(torch.randint(2, T - 1, (1,), generator=gen))
    x2 = x.clone()
    x2[:, t:] = randn(gen, 2, T - t, D)
    check_close(
        dec(x2, memory)[:, :t],
        dec(x, memory)[:, :t],
        what=f"decoder outputs at positions < {t} after changing tokens {t}…",
        atol=1e-6,
        hint="earlier outputs moved: the decoder's self-attention is not causal; it always is (combine "
        f"causal_mask(T) with self_mask) ({BLOCKS}).",
    )
    keep = int(torch.randint(2, S, (1,), generator=gen))
    memory_mask = (torch.arange(S) < keep)[None, None, None, :].expand(2, 1, 1, S)
    memory2 = memory.clone()
    memory2[:, keep:] = randn(gen, 2, S - keep, D) * 3
    check_close(
        dec(x, memory2, memory_mask=memory_mask),
        dec(x, memory, memory_mask=memory_mask),
        what=f"decoder output after changing memory positions ≥ {keep}, which memory_mask hides",
        atol=1e-6,
        hint="hidden memory positions changed the output: memory_mask does not reach the "
        f"cross-attention; pass it there (True = may attend) ({convention('Masks and attention')}).",
    )


# --------------------------------------------------------------------------- gradients
@pytest.mark.points(2)
def test_block_gradients(submission, gen):
    """Gradients of a causal RoPE block with respect to its input and every parameter equal the oracle's"""
    blk = submission.module().TransformerBlock(D, H, d_ff=24, causal=True, rope=True)
    sd = random_state(blk, gen)
    x, up = randn(gen, 2, 5, D), randn(gen, 2, 5, D)
    dx, grads = submission.run(block_grads, blk, x, up)
    xx = x.clone().requires_grad_(True)
    params = {k: v.clone().requires_grad_(True) for k, v in sd.items()}
    (oracle.block(params, xx, n_heads=H, causal_flag=True, rope=True) * up).sum().backward()
    check(dx is not None, "no gradient reached the block's input: is the graph cut (detach, .item(), numpy)?")
    check_close(dx, xx.grad, what="d(out)/dx through the block", atol=ATOL, rtol=ATOL)
    for name, p in params.items():
        check(grads.get(name) is not None, f"no gradient reached {name}: is it used in forward?")
        check_close(grads[name], p.grad, what=f"d(out)/d({name})", atol=ATOL, rtol=ATOL)
