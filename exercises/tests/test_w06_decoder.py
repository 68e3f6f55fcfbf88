"""Week 6 public tests: shapes and examples you can check on paper.

Run them with `course test 6 --public` or `pytest -m w06 exercises/tests`. The hidden suite
checks much more (logits against an independent implementation, causality, the KV cache over
many steps, sampling frequencies, context cropping, and a short training run).
"""

import math

import pytest
import torch

pytestmark = pytest.mark.w06

TINY = dict(vocab_size=37, block_size=16, n_layers=2, n_heads=2, d_model=16)


@pytest.mark.points(1)
def test_gpt2_small_param_count(student):
    """GPT-2 small dimensions give 124,439,808 parameters"""
    config = student.GPTConfig(
        vocab_size=50257, block_size=1024, n_layers=12, n_heads=12, d_model=768, bias=True, tie_weights=True
    )
    assert student.gpt_param_count(config) == 124_439_808


@pytest.mark.points(1)
def test_top_k_keeps_ties(student):
    """top_k_filter([1, 3, 3, 2], k=2) keeps both 3s"""
    out = student.top_k_filter(torch.tensor([1.0, 3.0, 3.0, 2.0]), 2)
    assert torch.equal(torch.isfinite(out), torch.tensor([False, True, True, False]))
    assert out[1] == 3.0 and out[2] == 3.0


@pytest.mark.points(1)
def test_top_p_keeps_the_token_that_reaches_p(student):
    """Probabilities [0.5, 0.3, 0.2], p = 0.7: keep 0.5 and 0.3 (0.5 alone does not reach 0.7)"""
    out = student.top_p_filter(torch.tensor([0.5, 0.3, 0.2]).log(), 0.7)
    assert torch.equal(torch.isfinite(out), torch.tensor([True, True, False]))


@pytest.mark.points(1)
def test_forward_shapes_and_initial_loss(student):
    """forward returns (B, T, V) logits; at init the loss is close to ln V"""
    torch.manual_seed(0)
    model = student.GPT(student.GPTConfig(**TINY))
    idx = torch.randint(0, 37, (2, 10))
    logits, loss = model(idx)
    assert tuple(logits.shape) == (2, 10, 37) and loss is None
    _, loss = model(idx, torch.randint(0, 37, (2, 10)))
    assert abs(float(loss) - math.log(37)) < 0.2, (
        f"loss {float(loss):.3f} at init, expected about ln 37 = 3.61"
    )


@pytest.mark.points(1)
def test_cache_grows(student):
    """After a 5-token prompt and 1 more token the cache holds 6 positions"""
    model = student.GPT(student.GPTConfig(**TINY))
    model.eval()
    cache = student.KVCache()
    idx = torch.randint(0, 37, (1, 6))
    model(idx[:, :5], cache=cache)
    assert cache.length == 5
    logits, _ = model(idx[:, 5:], cache=cache)
    assert tuple(logits.shape) == (1, 1, 37) and cache.length == 6


@pytest.mark.points(1)
def test_generate_shape_and_greedy(student):
    """generate appends max_new_tokens; greedy (temperature 0) is deterministic"""
    model = student.GPT(student.GPTConfig(**TINY))
    prompt = torch.randint(0, 37, (2, 3))
    out = student.generate(model, prompt, 5, temperature=0.0)
    assert tuple(out.shape) == (2, 8) and torch.equal(out[:, :3], prompt)
    assert torch.equal(student.generate(model, prompt, 5, temperature=0.0), out)
