"""Week 9 hidden suite: top-k / top-p filters, seeded sampling, greedy decoding, perplexity."""

from __future__ import annotations

import math

import pytest
import torch

from autograder.checks import check, check_close, check_equal
from autograder.drivers.w09 import perplexity_of, sample
from autograder.suites.w09_capstone import oracle
from autograder.suites.w09_capstone.common import model_config, new_model, random_state

pytestmark = pytest.mark.w09


@pytest.mark.points(1)
def test_top_k_filter(student, gen):
    """top_k_filter keeps the k largest logits and every logit tied with the k-th"""
    logits = torch.randint(-3, 4, (4, 12), generator=gen).float()  # small integers: many ties
    for k in (1, 3, 12):
        check_equal(
            student.top_k_filter(logits, k),
            oracle.top_k(logits, k),
            what=f"top_k_filter(logits, k={k}) on logits with ties",
            hint="keep logits >= the k-th largest value; set the rest to -inf.",
        )


@pytest.mark.points(1)
def test_top_p_filter(student, gen):
    """top_p_filter keeps the smallest most-likely set reaching probability p"""
    logits = torch.randn(5, 10, generator=gen) * 2
    for p in (0.05, 0.5, 0.9, 0.99):
        check_equal(
            torch.isinf(student.top_p_filter(logits, p)),
            torch.isinf(oracle.top_p(logits, p)),
            what=f"tokens removed by top_p_filter(logits, p={p})",
            hint="sort by probability; keep tokens until the kept mass reaches p (the top token always stays).",
        )


def _model(student, gen):
    cfg = model_config(gen, bias=True)
    cfg["block_size"] = 8
    sd = random_state(gen, cfg, std=0.5)
    return cfg, sd, new_model(student, cfg)


@pytest.mark.points(2)
def test_seeded_sampling_is_reproducible(student, submission, gen):
    """generate with a seeded generator repeats itself and keeps the prompt"""
    cfg, sd, model = _model(student, gen)
    prompt = torch.randint(cfg["vocab_size"], (2, 3), generator=gen)
    n = 12  # longer than block_size: the context must be cropped
    settings = {"temperature": 1.0}
    first = submission.run(sample, student, model, sd, prompt, n, 7, settings)
    check_equal(tuple(first.shape), (2, 3 + n), what="shape of generate(idx (2, 3), 12 new tokens)")
    check_equal(first[:, :3], prompt, what="the prompt at the start of the output")
    again = submission.run(sample, student, model, sd, prompt, n, 7, settings)
    check_equal(
        again,
        first,
        what="two samples with generators seeded alike",
        hint="draw with torch.multinomial(probs, 1, generator=generator), not the global RNG.",
    )
    other = submission.run(sample, student, model, sd, prompt, n, 8, settings)
    check(
        not torch.equal(other, first), "a different seed gave the same sample: is the generator used at all?"
    )


@pytest.mark.points(2)
def test_sampling_follows_the_model(student, submission, gen):
    """Greedy decoding takes the argmax; sampling draws from softmax(filtered logits / T)"""
    cfg, sd, model = _model(student, gen)
    prompt = torch.randint(cfg["vocab_size"], (2, 3), generator=gen)
    n, block = 10, cfg["block_size"]
    greedy = submission.run(sample, student, model, sd, prompt, n, 0, {"temperature": 0.0})
    sampled = submission.run(sample, student, model, sd, prompt, n, 11, {"temperature": 0.7, "top_k": 5})
    expected_greedy, expected_sampled = prompt.clone(), prompt.clone()
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for _ in range(n):
            logits = oracle.forward(sd, expected_greedy[:, -block:], cfg["n_heads"])[:, -1]
            expected_greedy = torch.cat([expected_greedy, logits.argmax(-1, keepdim=True)], dim=1)
            logits = oracle.forward(sd, expected_sampled[:, -block:], cfg["n_heads"])[:, -1]
            probs = torch.softmax(oracle.top_k(logits / 0.7, 5), dim=-1)
            expected_sampled = torch.cat([expected_sampled, torch.multinomial(probs, 1, generator=g)], dim=1)
    check_equal(
        greedy,
        expected_greedy,
        what="greedy decoding (temperature 0)",
        hint="temperature 0 means argmax of the last position's logits, from the last block_size tokens.",
    )
    check_equal(
        sampled,
        expected_sampled,
        what="sampling at temperature 0.7 with top_k=5 (seeded)",
        hint="logits / temperature, then top-k, then softmax, then one torch.multinomial draw per step.",
    )


@pytest.mark.points(2)
def test_heldout_perplexity(student, submission, gen):
    """perplexity scores every held-out token once, partial last window included"""
    cfg = model_config(gen, bias=False)
    sd = random_state(gen, cfg)
    n = 5 * cfg["block_size"] + 7  # not a multiple of the window: the tail counts too
    data = torch.randint(cfg["vocab_size"], (n,), generator=gen)
    report = submission.run(perplexity_of, student, new_model(student, cfg), sd, data, 2)
    expected = oracle.heldout_nll(sd, data, cfg["n_heads"], cfg["block_size"])
    check_equal(
        int(report["tokens"]), n - 1, what="number of tokens scored", hint="every next-token prediction once."
    )
    check_close(
        torch.tensor(float(report["nats_per_token"])),
        torch.tensor(expected),
        what="held-out nats per token",
        atol=1e-5,
        rtol=1e-5,
        hint="non-overlapping windows; sum the losses over tokens, divide by the token count.",
    )
    check_close(
        torch.tensor(float(report["perplexity"])),
        torch.tensor(math.exp(expected)),
        what="perplexity = exp(nats per token)",
        rtol=1e-5,
    )
