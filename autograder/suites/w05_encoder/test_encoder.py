"""Week 5 hidden suite: MLM masking, the bidirectional encoder, the tied MLM head, the loss.

Expected values come from closed forms, binomial statistics and ``torch.nn.TransformerEncoderLayer``
with copied weights, computed here on inputs drawn from the grading seed (``gen``). The
submission only runs behind ``student`` / ``submission``; the training test fetches logits on
held-out inputs and computes the loss here.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder.checks import GradingFailure, check, check_close, check_equal
from autograder.drivers.common import parameter_layout
from autograder.drivers.w05 import mask_tokens_leaves_input, mlm_loss_grad, train_masked_lm

pytestmark = pytest.mark.w05

PAD, CLS, SEP, MASK = 0, 1, 2, 3
SPECIALS = (PAD, CLS, SEP)


def randn(gen, *shape, scale: float = 1.0):
    return torch.randn(*shape, generator=gen) * scale


def corpus(gen, B: int, T: int, V: int, low: int = 4, high: int | None = None) -> torch.Tensor:
    """[CLS] w … w [SEP] [PAD] …: ordinary ids in [low, high), specials at both ends."""
    ids = torch.randint(low, high or V, (B, T), generator=gen)
    lengths = torch.randint(T // 2, T + 1, (B,), generator=gen)
    ids[:, 0] = CLS
    ids[torch.arange(B), lengths - 1] = SEP
    ids[torch.arange(T)[None, :] >= lengths[:, None]] = PAD
    return ids


def within(observed: float, p: float, n: int, what: str, hint: str, sigmas: float = 5.0) -> None:
    """A binomial proportion within ``sigmas`` standard deviations of its expectation."""
    tol = sigmas * math.sqrt(p * (1 - p) / n)
    check(
        abs(observed - p) <= tol,
        f"{what}: {observed:.2%} over {n} draws, expected {p:.2%} ± {tol:.2%} ({sigmas:g} standard deviations).",
        hint,
    )


def masked_sample(student, gen, V=1000, B=200, T=500, mlm_prob=0.15):
    ids = corpus(gen, B, T, V)
    seed = int(torch.randint(2**31, (1,), generator=gen))
    inputs, labels = student.mask_tokens(
        ids,
        vocab_size=V,
        mask_id=MASK,
        special_ids=SPECIALS,
        mlm_prob=mlm_prob,
        generator=torch.Generator().manual_seed(seed),
    )
    check(
        isinstance(inputs, torch.Tensor) and isinstance(labels, torch.Tensor),
        "mask_tokens must return two tensors (inputs, labels).",
    )
    check_equal(tuple(inputs.shape), tuple(ids.shape), what="shape of the masked inputs")
    check_equal(tuple(labels.shape), tuple(ids.shape), what="shape of the labels")
    return ids, inputs, labels


# --------------------------------------------------------------------------- mask_tokens
@pytest.mark.points(3)
def test_selection_rate(student, gen):
    """About mlm_prob of the non-special tokens are selected (binomial tolerance), for 0.15 and 0.3"""
    for prob in (0.15, 0.3):
        ids, _, labels = masked_sample(student, gen, mlm_prob=prob)
        eligible = ~torch.isin(ids, torch.tensor(SPECIALS))
        selected = labels != -100
        rate = float((selected & eligible).sum()) / int(eligible.sum())
        if abs(rate - 0.8 * prob) < 0.01:
            raise GradingFailure(
                f"with mlm_prob={prob} the labels mark {rate:.1%} of the tokens, about 80% of mlm_prob: "
                "labels must cover every selected token, including those left unchanged or randomised."
            )
        within(
            rate,
            prob,
            int(eligible.sum()),
            f"selection rate among non-special tokens with mlm_prob={prob}",
            "select each non-special token independently with probability mlm_prob (use the argument).",
        )


@pytest.mark.points(3)
def test_80_10_10(student, gen):
    """Selected tokens become [MASK] 80%, a random token 10%, stay unchanged 10%"""
    V = 1000
    ids, inputs, labels = masked_sample(student, gen, V=V)
    selected = labels != -100
    n = int(selected.sum())
    check(n > 0, "mask_tokens selected nothing.")
    got, orig = inputs[selected], ids[selected]
    is_mask = got == MASK
    same = got == orig
    frac_mask = float(is_mask.float().mean())
    if frac_mask > 0.97:
        raise GradingFailure(
            "every selected token became [MASK]: BERT replaces 80% with [MASK], 10% with a random token "
            "and leaves 10% unchanged, so the model cannot assume the visible tokens are right."
        )
    # A random replacement can draw [MASK] or the original id by chance (probability 1/V each).
    within(
        frac_mask,
        0.8 + 0.1 / V,
        n,
        "share of selected tokens replaced by [MASK]",
        "draw u ~ U(0, 1): [MASK] when u < 0.8.",
    )
    within(
        float(same.float().mean()),
        0.1 + 0.1 / V,
        n,
        "share of selected tokens left unchanged",
        "10% of the selected tokens keep their id (but still get a label).",
    )
    within(
        float((~is_mask & ~same).float().mean()),
        0.1 * (1 - 2 / V),
        n,
        "share of selected tokens replaced by a random token",
        "10% of the selected tokens become a uniformly random id in 0 … vocab_size − 1.",
    )


@pytest.mark.points(2)
def test_special_tokens_never_selected(student, gen):
    """[CLS], [SEP] and [PAD] are never selected, masked or replaced"""
    ids, inputs, labels = masked_sample(student, gen, mlm_prob=0.5)
    special = torch.isin(ids, torch.tensor(SPECIALS))
    bad = int((labels[special] != -100).sum())
    check(
        bad == 0,
        f"{bad} special tokens ([CLS]/[SEP]/[PAD]) were selected for prediction.",
        "exclude every id in special_ids from the selection (torch.isin).",
    )
    check_equal(inputs[special], ids[special], what="inputs at special-token positions")


@pytest.mark.points(2)
def test_labels_and_untouched_inputs(student, gen):
    """Labels hold the original id where selected and -100 elsewhere; unselected inputs are untouched"""
    ids, inputs, labels = masked_sample(student, gen)
    check_equal(labels.dtype, ids.dtype, what="labels dtype")
    check_equal(inputs.dtype, ids.dtype, what="inputs dtype")
    selected = labels != -100
    check(
        bool(selected.any()) and not bool(selected.all()),
        "labels must be -100 at the positions that were not selected (and the original id elsewhere).",
    )
    check_equal(
        labels[selected],
        ids[selected],
        what="labels at selected positions",
        hint="the label is the *original* token, not the [MASK] or random one that replaced it.",
    )
    check_equal(
        inputs[~selected],
        ids[~selected],
        what="inputs at positions that were not selected",
        hint="only selected positions may change.",
    )


@pytest.mark.points(1)
def test_random_tokens_cover_the_vocabulary(student, gen):
    """Random replacements are drawn uniformly from the whole vocabulary"""
    V = 40
    ids = corpus(gen, 400, 200, V, low=10, high=14)  # ordinary ids from a narrow band only
    seed = int(torch.randint(2**31, (1,), generator=gen))
    inputs, labels = student.mask_tokens(
        ids, vocab_size=V, mask_id=MASK, special_ids=SPECIALS, generator=torch.Generator().manual_seed(seed)
    )
    selected = labels != -100
    replaced = inputs[selected & (inputs != MASK) & (inputs != ids)]
    check(
        replaced.numel() > 500,
        f"only {replaced.numel()} selected tokens became a random token; expected about 10% of the selected.",
    )
    check(
        bool(((replaced >= 0) & (replaced < V)).all()),
        "a random replacement fell outside 0 … vocab_size − 1.",
    )
    distinct = replaced.unique().numel()
    check(
        distinct >= V - 2,
        f"random replacements used only {distinct} different ids of a vocabulary of {V}.",
        "draw them uniformly from 0 … vocab_size − 1 (torch.randint(vocab_size, …)), not from the batch.",
    )


@pytest.mark.points(2)
def test_reproducible_and_not_in_place(submission, student, gen):
    """A seeded generator gives the same result twice; input_ids is not modified"""
    ids = corpus(gen, 8, 64, 100)
    seed = int(torch.randint(2**31, (1,), generator=gen))
    kwargs = dict(vocab_size=100, mask_id=MASK, special_ids=SPECIALS)
    a = student.mask_tokens(ids, generator=torch.Generator().manual_seed(seed), **kwargs)
    b = student.mask_tokens(ids, generator=torch.Generator().manual_seed(seed), **kwargs)
    c = student.mask_tokens(ids, generator=torch.Generator().manual_seed(seed + 1), **kwargs)
    hint = "pass `generator=generator` to every random call (torch.rand, torch.randint, torch.bernoulli)."
    check_equal(a[0], b[0], what="masked inputs from two identically seeded generators", hint=hint)
    check_equal(a[1], b[1], what="labels from two identically seeded generators", hint=hint)
    check(
        not torch.equal(a[0], c[0]),
        "two different generator seeds gave the same masking: is the generator used?",
    )
    after = submission.run(
        mask_tokens_leaves_input,
        submission.module(),
        ids,
        dict(generator=torch.Generator().manual_seed(seed), **kwargs),
    )
    check_equal(
        after,
        ids,
        what="input_ids after calling mask_tokens on it",
        hint="work on a copy (input_ids.clone()): the caller may reuse its batch.",
    )


# --------------------------------------------------------------------------- loss and pooling
@pytest.mark.points(2)
def test_mlm_loss_only_selected_positions(submission, gen):
    """mlm_loss is the mean cross-entropy over labelled positions; -100 positions get no gradient"""
    B, T, V = 3, 9, 11
    logits = randn(gen, B, T, V, scale=2.0)
    labels = torch.randint(V, (B, T), generator=gen)
    keep = torch.rand(B, T, generator=gen) < 0.3
    keep[0, 0] = True
    labels = labels.masked_fill(~keep, -100)
    loss, grad = submission.run(mlm_loss_grad, submission.module(), logits, labels)
    expected = logits.clone().requires_grad_(True)
    ref = F.cross_entropy(expected[keep], labels[keep])
    ref.backward()
    per_token = F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1), reduction="none")
    check_close(
        loss,
        ref.detach(),
        what="mlm_loss on (3, 9, 11) logits with ~30% labelled positions",
        hint="average -log p(label) over positions whose label is not -100 (ignore_index=-100).",
        diagnose=[
            (
                per_token.sum() / (B * T),
                "the sum over labelled positions is divided by *every* position: divide by the labelled count.",
            ),
            (
                F.cross_entropy(logits.reshape(-1, V), labels.clamp(min=0).reshape(-1)),
                "unlabelled positions (-100) are scored too: the loss must ignore them.",
            ),
        ],
    )
    check(grad is not None, "no gradient reached the logits.")
    check_close(
        grad, expected.grad, what="d mlm_loss / d logits", hint="unlabelled positions get zero gradient."
    )


@pytest.mark.points(1)
def test_mlm_loss_with_nothing_selected(student, gen):
    """mlm_loss is 0, not NaN, when no position is labelled"""
    logits = randn(gen, 2, 5, 7)
    loss = student.mlm_loss(logits, torch.full((2, 5), -100))
    check(isinstance(loss, torch.Tensor), "mlm_loss must return a tensor.")
    check(
        bool(torch.isfinite(loss).all()),
        "mlm_loss with every label -100 returned NaN or inf.",
        "0/0: return 0.0 when nothing is labelled.",
    )
    check_close(loss.reshape(()), torch.tensor(0.0), what="mlm_loss with no labelled position")


@pytest.mark.points(1)
def test_cls_pool(student, gen):
    """cls_pool returns the hidden state of the first ([CLS]) position"""
    hidden = randn(gen, 4, 7, 6)
    check_close(
        student.cls_pool(hidden),
        hidden[:, 0],
        what="cls_pool of (4, 7, 6) hidden states",
        hint="BERT's sequence representation is the output at position 0, where [CLS] sits.",
        diagnose=[
            (hidden[:, -1], "you pooled the *last* token; [CLS] is the first."),
            (hidden.mean(1), "you mean-pooled; cls_pool takes position 0 only."),
        ],
    )


# --------------------------------------------------------------------------- the encoder
def encoder_state(gen, model, V: int, d: int, L: int, max_len: int, ffn: int) -> dict:
    """Random weights for every documented key; raises a readable failure on other layouts."""
    want = {"tok_emb.weight": (V, d), "pos_emb.weight": (max_len, d), "ln_f.weight": (d,), "ln_f.bias": (d,)}
    for i in range(L):
        p = f"blocks.{i}."
        for n in ("q", "k", "v", "out"):
            want[f"{p}attn.{n}_proj.weight"] = (d, d)
            want[f"{p}attn.{n}_proj.bias"] = (d,)
        for n in ("norm1", "norm2"):
            want[f"{p}{n}.weight"], want[f"{p}{n}.bias"] = (d,), (d,)
        want[f"{p}ffn.w1.weight"], want[f"{p}ffn.w1.bias"] = (ffn, d), (ffn,)
        want[f"{p}ffn.w2.weight"], want[f"{p}ffn.w2.bias"] = (d, ffn), (d,)
    current = model.state_dict()
    got = {k: tuple(v.shape) for k, v in current.items()}
    missing = sorted(set(want) - set(got))[:4]
    check(
        not missing and all(got[k] == s for k, s in want.items()),
        f"Encoder state-dict keys/shapes differ from the documented layout (e.g. missing {missing}).",
        "tok_emb, pos_emb (week 3), blocks = ModuleList of week 4 TransformerBlock, ln_f.",
    )
    sd = dict(current)  # anything else (a mask buffer, say) keeps its value
    for k, shape in want.items():
        if k.endswith(("norm1.weight", "norm2.weight", "ln_f.weight")):
            sd[k] = 1.0 + randn(gen, *shape, scale=0.1)
        else:
            sd[k] = randn(gen, *shape, scale=0.3 if len(shape) == 2 else 0.1)
    return sd


def oracle_encoder(sd: dict, ids: torch.Tensor, n_heads: int, L: int, attention_mask=None) -> torch.Tensor:
    """The same encoder with ``nn.TransformerEncoderLayer`` (pre-LN, exact GELU) and F.layer_norm."""
    d = sd["tok_emb.weight"].size(1)
    B, T = ids.shape
    hidden_keys = None  # torch's convention: True = may *not* attend, one (T, T) mask per batch·head
    if attention_mask is not None:
        hidden_keys = (~attention_mask)[:, None, None, :].expand(B, n_heads, T, T).reshape(B * n_heads, T, T)
    x = sd["tok_emb.weight"][ids] + sd["pos_emb.weight"][:T]
    for i in range(L):
        p = f"blocks.{i}."
        layer = nn.TransformerEncoderLayer(
            d,
            n_heads,
            sd[f"{p}ffn.w1.weight"].size(0),
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        with torch.no_grad():
            layer.self_attn.in_proj_weight.copy_(torch.cat([sd[f"{p}attn.{n}_proj.weight"] for n in "qkv"]))
            layer.self_attn.in_proj_bias.copy_(torch.cat([sd[f"{p}attn.{n}_proj.bias"] for n in "qkv"]))
            layer.self_attn.out_proj.weight.copy_(sd[f"{p}attn.out_proj.weight"])
            layer.self_attn.out_proj.bias.copy_(sd[f"{p}attn.out_proj.bias"])
            for mine, theirs in (
                ("ffn.w1", "linear1"),
                ("ffn.w2", "linear2"),
                ("norm1", "norm1"),
                ("norm2", "norm2"),
            ):
                getattr(layer, theirs).weight.copy_(sd[f"{p}{mine}.weight"])
                getattr(layer, theirs).bias.copy_(sd[f"{p}{mine}.bias"])
        layer.train()  # the readable path (the fused inference path treats padding differently)
        with torch.no_grad():
            x = layer(x, src_mask=hidden_keys)
    return F.layer_norm(x, (d,), sd["ln_f.weight"], sd["ln_f.bias"], eps=1e-5)


def built_encoder(student, gen, V=23, d=16, L=2, h=4, max_len=12):
    model = student.Encoder(V, d, L, h, max_len)
    model.eval()
    sd = encoder_state(gen, model, V, d, L, max_len, 4 * d)
    model.load_state_dict(sd)
    return model, sd


@pytest.mark.points(3)
def test_encoder_matches_torch_encoder_layers(student, gen):
    """Encoder equals embeddings + nn.TransformerEncoderLayer (pre-LN) stack + final LayerNorm"""
    model, sd = built_encoder(student, gen)
    ids = torch.randint(23, (3, 10), generator=gen)
    expected = oracle_encoder(sd, ids, 4, 2)
    out = model(ids)
    check_close(
        out,
        expected,
        what="Encoder(23, 16, 2, 4, 12) output on (3, 10) ids",
        atol=1e-4,
        rtol=1e-4,
        hint="token embedding + learned position, pre-LN blocks without a causal mask, then ln_f.",
    )


@pytest.mark.points(2)
def test_encoder_is_bidirectional(student, gen):
    """Changing a later token changes the outputs at earlier positions"""
    model, _ = built_encoder(student, gen)
    ids = torch.randint(4, 23, (2, 10), generator=gen)
    changed = ids.clone()
    changed[:, -1] = (ids[:, -1] - 4 + 1) % 19 + 4
    a, b = model(ids), model(changed)
    check(
        not torch.allclose(a[:, 0], b[:, 0], atol=1e-6),
        "the output at position 0 did not change when the last token changed: the encoder cannot see "
        "to the right. An encoder is bidirectional: no causal mask.",
    )


@pytest.mark.points(3)
def test_padding_does_not_leak(student, gen):
    """Outputs at real tokens ignore the padding (its ids) and equal the unpadded sequence's"""
    model, sd = built_encoder(student, gen)
    B, T = 3, 10
    ids = torch.randint(4, 23, (B, T), generator=gen)
    lengths = torch.tensor([T, 6, 3])
    real = torch.arange(T)[None, :] < lengths[:, None]  # (B, T) True at real tokens
    other = torch.where(real, ids, torch.randint(4, 23, (B, T), generator=gen))
    a, b = model(ids, real), model(other, real)
    check_close(
        b[real],
        a[real],
        what="outputs at real tokens after changing the padded positions' ids",
        atol=1e-6,
        hint="attention_mask (B, T) is True at real tokens; hide padded *keys*: mask[:, None, None, :].",
    )
    for i in range(1, B):
        n = int(lengths[i])
        alone = model(ids[i : i + 1, :n])
        check_close(
            a[i, :n],
            alone[0],
            what=f"outputs of sequence {i} (length {n}) padded to {T} vs alone",
            atol=1e-5,
            rtol=1e-5,
            hint="a padded batch must give each sequence the result it gets alone.",
        )
    check_close(
        a[real],
        oracle_encoder(sd, ids, 4, 2, real)[real],
        what="padded-batch outputs vs nn.TransformerEncoderLayer with src_key_padding_mask",
        atol=1e-4,
        rtol=1e-4,
    )


# --------------------------------------------------------------------------- the MLM model
@pytest.mark.points(2)
def test_mlm_head_is_tied(submission, gen):
    """The MLM head's weight is the token embedding (one shared tensor)"""
    V, d = 29, 16
    model = submission.module().MaskedLM(V, d, 1, 2, 8)
    layout = parameter_layout_of(submission, model)
    vd = [(name, ptr) for name, shape, ptr in layout if shape == (V, d)]
    names = [n for n, _ in vd]
    check(
        "lm_head.weight" in names and "encoder.tok_emb.weight" in names,
        f"expected parameters encoder.tok_emb.weight and lm_head.weight of shape ({V}, {d}); found {names}.",
    )
    check(
        len({ptr for _, ptr in vd}) == 1,
        "lm_head.weight and encoder.tok_emb.weight are different tensors: tie them "
        "(self.lm_head.weight = self.encoder.tok_emb.weight), so they share storage.",
    )
    distinct = {ptr: math.prod(shape) for _, shape, ptr in layout}
    # embeddings (V·d + 8·d), one block (attention 4d² + 4d, FFN 8d² + 5d, two norms 4d), ln_f 2d
    encoder_params = V * d + 8 * d + (4 * d * d + 4 * d) + (8 * d * d + 5 * d) + 4 * d + 2 * d
    check_equal(
        sum(distinct.values()),
        encoder_params + (d * d + d) + 2 * d + V,
        what=f"number of distinct parameters of MaskedLM({V}, {d}, 1, 2, 8)",
        hint="encoder + transform (Linear(d, d), GELU, LayerNorm(d)) + a (V,) bias; the (V, d) weight is shared.",
    )


def parameter_layout_of(submission, model):
    return submission.run(parameter_layout, model)


@pytest.mark.points(2)
def test_masked_lm_logits(student, gen):
    """MaskedLM logits = LayerNorm(GELU(Linear(h))) @ tok_embᵀ + bias on the encoder output"""
    V, d, L, h, max_len = 23, 16, 2, 4, 12
    model = student.MaskedLM(V, d, L, h, max_len)
    model.eval()
    sd_model = model.state_dict()
    check(
        {"transform.0.weight", "transform.2.weight", "lm_head.bias", "lm_head.weight"} <= set(sd_model),
        "MaskedLM needs submodules encoder, transform (Linear, GELU, LayerNorm) and lm_head (see the docstring).",
    )
    enc_sd = encoder_state(gen, model.encoder, V, d, L, max_len, 4 * d)
    sd = {f"encoder.{k}": v for k, v in enc_sd.items()}
    sd.update(
        {
            "transform.0.weight": randn(gen, d, d, scale=0.3),
            "transform.0.bias": randn(gen, d, scale=0.1),
            "transform.2.weight": 1.0 + randn(gen, d, scale=0.1),
            "transform.2.bias": randn(gen, d, scale=0.1),
            "lm_head.weight": enc_sd["tok_emb.weight"],  # tied: the same values under both names
            "lm_head.bias": randn(gen, V, scale=0.1),
        }
    )
    model.load_state_dict(sd)
    ids = torch.randint(V, (2, 9), generator=gen)
    hidden = oracle_encoder(enc_sd, ids, h, L)
    t = F.gelu(hidden @ sd["transform.0.weight"].T + sd["transform.0.bias"])
    t = F.layer_norm(t, (d,), sd["transform.2.weight"], sd["transform.2.bias"], eps=1e-5)
    expected = t @ enc_sd["tok_emb.weight"].T + sd["lm_head.bias"]
    check_close(
        model(ids),
        expected,
        what="MaskedLM logits (2, 9, 23)",
        atol=1e-4,
        rtol=1e-4,
        hint="logits = lm_head(transform(encoder(ids))), the head's weight being the token embedding.",
    )


# --------------------------------------------------------------------------- learning
K_SYMBOLS, PAIRS = 8, 6  # tokens 0 … 7 are symbols, 8 is [MASK]
MLM_MASK = K_SYMBOLS


def pair_task(gen, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences "a a b b c c …" with, in each pair, either nothing or one random member masked.

    The masked token equals its partner, which is on its right for a first member and on its
    left for a second: only a model that reads both sides can fill every blank.
    """
    T = 2 * PAIRS
    symbols = torch.randint(K_SYMBOLS, (n, PAIRS), generator=gen)
    tokens = symbols.repeat_interleave(2, dim=1)  # (n, T)
    member = torch.randint(2, (n, PAIRS), generator=gen)
    hide = torch.rand(n, PAIRS, generator=gen) < 0.5
    masked = torch.zeros(n, T, dtype=torch.bool)
    masked.scatter_(1, torch.arange(PAIRS) * 2 + member, hide)
    return tokens.masked_fill(masked, MLM_MASK), tokens.masked_fill(~masked, -100)


# Calibration: the test replayed for grading seeds 1 … 12 (same data, init and training):
#   reference: held-out loss 0.0098 … 0.0155;
#   the same encoder with a causal mask: 1.031 … 1.108 (blanks whose partner is on the right stay
#   at chance, so ≈ ½·ln 8 = 1.04); chance everywhere: ln 8 = 2.08.
MLM_THRESHOLD = 0.4
MLM_STEPS, MLM_BATCH, MLM_LR = 80, 64, 5e-3


@pytest.mark.points(4)
@pytest.mark.limit(30)
def test_mlm_learns_from_both_sides(submission, gen):
    """A tiny MaskedLM trained for 80 steps fills blanks that need left and right context"""
    inputs, labels = pair_task(gen, MLM_STEPS * MLM_BATCH)
    seed = int(torch.randint(2**31, (1,), generator=gen))
    args = (K_SYMBOLS + 1, 32, 1, 2, 2 * PAIRS)
    model = submission.run(
        train_masked_lm, submission.module(), args, inputs, labels, MLM_BATCH, MLM_LR, seed
    )
    held_in, held_labels = pair_task(gen, 512)
    logits = model(held_in)
    check_equal(tuple(logits.shape), (512, 2 * PAIRS, K_SYMBOLS + 1), what="MaskedLM logits shape")
    loss = float(F.cross_entropy(logits.reshape(-1, K_SYMBOLS + 1), held_labels.reshape(-1)))
    first = held_labels.clone()
    first[:, 1::2] = -100
    loss_first = float(F.cross_entropy(logits.reshape(-1, K_SYMBOLS + 1), first.reshape(-1)))
    check(
        math.isfinite(loss) and loss < MLM_THRESHOLD,
        f"after {MLM_STEPS} steps the held-out MLM loss is {loss:.3f} (on blanks whose answer is to the "
        f"right: {loss_first:.3f}); a working encoder gets below {MLM_THRESHOLD} (chance: ln 8 = 2.08).",
        "if only the right-context blanks fail, the encoder is causal; check masks and positions.",
    )
