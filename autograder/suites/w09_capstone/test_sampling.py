"""Week 9 hidden suite: top-k / top-p filters, seeded sampling, greedy decoding, perplexity.

Sampling is week 6's code (the capstone's `generate` calls it); the capstone is graded on the
whole stack, so it is tested here too, at its edges.

What sampling and perplexity promise, and the edge each promise is tested at (test in brackets):

  * top-k keeps ties with the k-th value, k = 1 and k = V (top_k_filter); top-p keeps the smallest
    set reaching p, at least one token, p tiny and near 1 (top_p_filter)
  * generate: the prompt kept, a seeded generator repeats itself and another seed differs, the
    context cropped to block_size (seeded_sampling_is_reproducible); temperature 0 is greedy,
    temperature and top-k before the draw (sampling_follows_the_model); a one-token prompt,
    max_new_tokens 0, a prompt longer than block_size (sampling_edges)
  * perplexity: every prediction once, the last shorter window included, the mean over tokens (not
    over windows); data of exactly one window and of two tokens (heldout_perplexity)
"""

from __future__ import annotations

import math

import pytest
import torch

from autograder.checks import Example, check, check_close, check_equal, convention
from autograder.drivers.w09 import perplexity_of, sample
from autograder.suites.w09_capstone import oracle
from autograder.suites.w09_capstone.common import DATA, model_config, new_model, random_state

pytestmark = pytest.mark.w09

SAMPLING = convention("Sampling")


@pytest.mark.points(1)
def test_top_k_filter(student, gen):
    """top_k_filter keeps the k largest logits and every logit tied with the k-th"""
    logits = torch.randint(-3, 4, (4, 12), generator=gen).float()  # small integers: many ties
    for k in (1, 3, 12):
        check_equal(
            student.top_k_filter(logits, k),
            oracle.top_k(logits, k),
            what=f"top_k_filter(logits, k={k}) on logits with ties",
            hint=f"keep logits >= the k-th largest value; set the rest to -inf ({SAMPLING}).",
            example=Example(
                "top_k_filter(torch.tensor([[1., 3., 3., 2.]]), 2)",
                torch.tensor([[float("-inf"), 3.0, 3.0, float("-inf")]]),
                lambda: student.top_k_filter(torch.tensor([[1.0, 3.0, 3.0, 2.0]]), 2),
            ),
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
            hint="sort by probability; keep tokens until the kept mass reaches p (the top token always stays) "
            f"({SAMPLING}).",
            example=Example(
                "top_p_filter(torch.tensor([[0.5, 0.3, 0.2]]).log(), 0.6): which tokens are removed",
                torch.tensor([[False, False, True]]),
                lambda: torch.isinf(student.top_p_filter(torch.tensor([[0.5, 0.3, 0.2]]).log(), 0.6)),
            ),
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


@pytest.mark.points(1)
def test_sampling_edges(student, submission, gen):
    """generate with a one-token prompt, no new tokens, and a prompt longer than the context"""
    cfg, sd, model = _model(student, gen)
    block = cfg["block_size"]
    greedy = {"temperature": 0.0}
    prompt = torch.randint(cfg["vocab_size"], (2, block + 3), generator=gen)
    same = submission.run(sample, student, model, sd, prompt[:, :4], 0, 0, greedy)
    check_equal(same, prompt[:, :4], what="generate(idx, max_new_tokens=0): the prompt, unchanged")
    for length in (1, block + 3):  # one token of context; more than the model can see
        got = submission.run(sample, student, model, sd, prompt[:, :length], 3, 0, greedy)
        expected = prompt[:, :length].clone()
        with torch.no_grad():
            for _ in range(3):
                logits = oracle.forward(sd, expected[:, -block:], cfg["n_heads"])[:, -1]
                expected = torch.cat([expected, logits.argmax(-1, keepdim=True)], dim=1)
        check_equal(
            got,
            expected,
            what=f"greedy generate from a {length}-token prompt (block_size {block})",
            hint="each step feeds the last block_size tokens (all of them when there are fewer) and appends "
            "the argmax of the last position's logits.",
        )


def _perplexity_diagnoses(sd, data, n_heads, block_size):
    return lambda: [
        (
            torch.tensor(oracle.heldout_nll(sd, data, n_heads, block_size, drop_partial=True)),
            "the last, shorter window was left out: every next-token prediction counts once, including "
            f"the ones in a final window of fewer than block_size tokens ({DATA}).",
        ),
        (
            torch.tensor(oracle.heldout_nll(sd, data, n_heads, block_size, per_window=True)),
            "the loss was averaged per window (a mean of window means), so the short last window weighs as "
            f"much as a full one: sum the losses over all tokens and divide by the number of tokens ({DATA}).",
        ),
    ]


@pytest.mark.points(2)
def test_heldout_perplexity(student, submission, gen):
    """perplexity scores every held-out token once, partial last window included"""
    cfg = model_config(gen, bias=False)
    sd = random_state(gen, cfg)
    T = cfg["block_size"]
    # Not a multiple of the window (the tail counts too); exactly one window; one prediction.
    for n in (5 * T + 7, T + 1, 2):
        data = torch.randint(cfg["vocab_size"], (n,), generator=gen)
        report = submission.run(perplexity_of, student, new_model(student, cfg), sd, data, 2)
        expected = oracle.heldout_nll(sd, data, cfg["n_heads"], T)
        check_equal(
            int(report["tokens"]),
            n - 1,
            what=f"number of tokens scored in {n} tokens of data",
            hint="every next-token prediction once: N - 1 of them.",
        )
        check_close(
            torch.tensor(float(report["nats_per_token"])),
            torch.tensor(expected),
            what=f"held-out nats per token over {n} tokens (block_size {T})",
            atol=1e-5,
            rtol=1e-5,
            hint="non-overlapping windows; sum the losses over tokens, divide by the token count.",
            diagnose=_perplexity_diagnoses(sd, data, cfg["n_heads"], T),
        )
        check_close(
            torch.tensor(float(report["perplexity"])),
            torch.tensor(math.exp(expected)),
            what="perplexity = exp(nats per token)",
            rtol=1e-5,
        )
