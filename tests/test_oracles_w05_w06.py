"""The week 5 and 6 references and the hidden suites' hand-written oracles against the libraries
they stand in for (Hugging Face transformers' GPT-2 and logits warpers, torch's encoder layer).
The suites write their oracles out because importing transformers costs seconds of the grading
budget; these tests keep the copies honest."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from autograder.weeks import ROOT
from solutions import w03_positional, w05_encoder, w06_decoder


def _suite(path: str):
    spec = importlib.util.spec_from_file_location(f"_suite_{abs(hash(path))}", ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


W05 = "autograder/suites/w05_encoder/test_encoder.py"
W06 = "autograder/suites/w06_decoder/test_decoder.py"


def _hf_gpt2(model: w06_decoder.GPT):
    """A Hugging Face GPT2LMHeadModel holding the reference GPT's weights (Conv1D is (in, out))."""
    transformers = pytest.importorskip("transformers")
    c = model.config
    hf = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(
            vocab_size=c.vocab_size,
            n_positions=c.block_size,
            n_embd=c.d_model,
            n_layer=c.n_layers,
            n_head=c.n_heads,
            activation_function="gelu",  # exact GELU, as the course (GPT-2 itself used the tanh form)
            layer_norm_epsilon=1e-5,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
    ).eval()
    sd = model.state_dict()
    new = {"transformer.wte.weight": sd["tok_emb.weight"], "transformer.wpe.weight": sd["pos_emb.weight"]}
    for i in range(c.n_layers):
        p, h = f"blocks.{i}.", f"transformer.h.{i}."
        new[h + "attn.c_attn.weight"] = torch.cat([sd[f"{p}attn.{n}_proj.weight"] for n in "qkv"]).T
        new[h + "attn.c_attn.bias"] = torch.cat([sd[f"{p}attn.{n}_proj.bias"] for n in "qkv"])
        new[h + "attn.c_proj.weight"] = sd[p + "attn.out_proj.weight"].T
        new[h + "attn.c_proj.bias"] = sd[p + "attn.out_proj.bias"]
        new[h + "mlp.c_fc.weight"], new[h + "mlp.c_fc.bias"] = (
            sd[p + "ffn.w1.weight"].T,
            sd[p + "ffn.w1.bias"],
        )
        new[h + "mlp.c_proj.weight"], new[h + "mlp.c_proj.bias"] = (
            sd[p + "ffn.w2.weight"].T,
            sd[p + "ffn.w2.bias"],
        )
        for mine, theirs in (("norm1", "ln_1"), ("norm2", "ln_2")):
            new[f"{h}{theirs}.weight"], new[f"{h}{theirs}.bias"] = (
                sd[p + mine + ".weight"],
                sd[p + mine + ".bias"],
            )
    new["transformer.ln_f.weight"], new["transformer.ln_f.bias"] = sd["ln_f.weight"], sd["ln_f.bias"]
    new["lm_head.weight"] = sd["lm_head.weight"]
    missing, unexpected = hf.load_state_dict(new, strict=False)
    assert not unexpected and all("attn.bias" in k or "masked_bias" in k for k in missing), missing
    return hf


def _random_gpt(seed: int, **overrides) -> w06_decoder.GPT:
    torch.manual_seed(seed)
    config = dict(vocab_size=41, block_size=20, n_layers=2, n_heads=4, d_model=32)
    model = w06_decoder.GPT(w06_decoder.GPTConfig(**{**config, **overrides})).eval()
    with torch.no_grad():  # weights of a trained-looking scale, not the tiny init
        for name, p in model.named_parameters():
            if name.endswith(("norm1.weight", "norm2.weight")) or name == "ln_f.weight":
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)
    return model


def test_gpt_equals_hugging_face_gpt2_and_the_suite_oracle():
    """Reference GPT, the suite's functional oracle and transformers' GPT-2 give the same logits."""
    suite = _suite(W06)
    model = _random_gpt(0)
    hf = _hf_gpt2(model)
    idx = torch.randint(41, (3, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, _ = model(idx)
        theirs = hf(idx).logits
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    config = {
        k: getattr(model.config, k)
        for k in ("vocab_size", "block_size", "n_layers", "n_heads", "d_model", "bias", "pos")
    }
    torch.testing.assert_close(
        suite.oracle_gpt(model.state_dict(), idx, config), theirs, atol=1e-5, rtol=1e-5
    )


def test_kv_cache_equals_hugging_face_past_key_values():
    """Decoding token by token with the reference KV cache matches GPT-2 with past_key_values."""
    model = _random_gpt(2)
    hf = _hf_gpt2(model)
    idx = torch.randint(41, (2, 20), generator=torch.Generator().manual_seed(3))
    cache, past, ours, theirs = w06_decoder.KVCache(), None, [], []
    with torch.no_grad():
        for start, stop in [(0, 6), *((t, t + 1) for t in range(6, 20))]:
            ours.append(model(idx[:, start:stop], cache=cache)[0])
            out = hf(idx[:, start:stop], past_key_values=past, use_cache=True)
            past = out.past_key_values
            theirs.append(out.logits)
    torch.testing.assert_close(torch.cat(ours, 1), torch.cat(theirs, 1), atol=1e-5, rtol=1e-5)
    assert cache.length == 20


def test_gpt2_small_count_equals_hugging_face():
    """gpt_param_count(GPT-2 small) equals the parameter count of transformers' GPT2LMHeadModel."""
    transformers = pytest.importorskip("transformers")
    with torch.device("meta"):
        hf = transformers.GPT2LMHeadModel(transformers.GPT2Config())
    assert sum(p.numel() for p in hf.parameters()) == w06_decoder.gpt_param_count(w06_decoder.GPTConfig())


def test_rope_oracle_equals_the_reference_and_the_anchor():
    """The suite's complex-number RoPE equals week 3's apply_rope and SPEC's anchor values."""
    suite = _suite(W06)
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    anchor = torch.tensor([[-1.1426396637, 1.9220755965, 2.9598506679, 4.0297995017]])
    torch.testing.assert_close(suite.rope_oracle(x, torch.tensor([1])), anchor)
    q = torch.randn(2, 3, 9, 8)
    positions = torch.arange(5, 14)
    torch.testing.assert_close(suite.rope_oracle(q, positions), w03_positional.apply_rope(q, positions))


def test_filters_equal_hugging_face_warpers():
    """top_k_filter / top_p_filter keep the same tokens as transformers' TopK / TopP warpers."""
    pytest.importorskip("transformers")
    from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(64, 50, generator=gen) * 2
    logits[0, :5] = 3.0  # ties at the top
    for k in (1, 3, 10, 50):
        hf = TopKLogitsWarper(k)(None, logits.clone())
        assert torch.equal(torch.isfinite(w06_decoder.top_k_filter(logits, k)), torch.isfinite(hf)), k
    for p in (0.05, 0.5, 0.9, 0.99):
        hf = TopPLogitsWarper(p)(None, logits.clone())
        ours = w06_decoder.top_p_filter(logits, p)
        same = (torch.isfinite(ours) == torch.isfinite(hf)).all(-1)
        # Rows where a cumulative sum lands within float error of p may differ at the boundary.
        assert same.float().mean() > 0.95, p


def test_encoder_oracle_equals_the_reference():
    """The suite's nn.TransformerEncoderLayer oracle equals the reference Encoder, padded or not."""
    suite = _suite(W05)
    gen = torch.Generator().manual_seed(5)
    model = w05_encoder.Encoder(23, 16, 2, 4, 12).eval()

    sd = suite.encoder_state(gen, model, 23, 16, 2, 12, 64)
    model.load_state_dict(sd)
    ids = torch.randint(23, (3, 10), generator=gen)
    real = torch.arange(10)[None, :] < torch.tensor([10, 6, 3])[:, None]
    with torch.no_grad():
        torch.testing.assert_close(suite.oracle_encoder(sd, ids, 4, 2), model(ids), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            suite.oracle_encoder(sd, ids, 4, 2, real)[real], model(ids, real)[real], atol=1e-5, rtol=1e-5
        )
