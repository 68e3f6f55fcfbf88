"""Week 9 public tests: small examples you can check on paper.

Run them with `course test 9 --public` or `pytest -m w09 exercises/tests`. The hidden suite
checks much more: random texts and weights against independent re-implementations, a real
training run on tiny Shakespeare that must beat the bigram floor, exact resume from a
checkpoint, seeded sampling, and the run directory.
"""

import math

import pytest
import torch

pytestmark = pytest.mark.w09


def tiny_model(student, **overrides):
    config = dict(vocab_size=11, block_size=8, n_layers=2, n_heads=2, d_model=16)
    config.update(overrides)
    return student.MiniGPT(student.GPTConfig(**config))


@pytest.mark.points(1)
def test_char_tokenizer_on_paper(student):
    """CharTokenizer: ids are positions in the sorted vocabulary"""
    tok = student.CharTokenizer.from_text("hello")  # sorted: e h l o
    assert tok.vocab_size == 4
    assert list(tok.encode("hole")) == [1, 3, 2, 0]
    assert tok.decode([1, 0, 2, 2, 3]) == "hello"


@pytest.mark.points(1)
def test_char_tokenizer_unknown_character(student):
    """Encoding a character outside the vocabulary raises ValueError"""
    tok = student.CharTokenizer.from_text("hello")
    with pytest.raises(Exception, match="ValueError"):
        tok.encode("help")


@pytest.mark.points(1)
def test_merge_pair_on_paper(student):
    """merge_pair replaces non-overlapping occurrences, left to right"""
    assert list(student.merge_pair([5, 5, 5], (5, 5), 9)) == [9, 5]
    assert list(student.merge_pair([1, 2, 3, 1, 2], (1, 2), 7)) == [7, 3, 7]


@pytest.mark.points(2)
def test_bpe_on_paper(student):
    """BPE on "aaabdaaabac": merges aa, then ab (tie to the smaller pair), then (aa)(ab)"""
    # Pair counts: aa 4, ab 2, ... -> 256 = aa. Then (256, a) and (a, b) both occur twice:
    # the tie goes to the smaller pair (97, 98) = "ab" -> 257. Then (256, 257) -> 258.
    tok = student.BPETokenizer.train("aaabdaaabac", 259)
    assert [list(m) for m in tok.state_dict()["merges"]] == [[97, 97, 256], [97, 98, 257], [256, 257, 258]]
    assert list(tok.encode("aaabdaaabac")) == [258, 100, 258, 97, 99]
    text = "naïve café 🙂"
    assert tok.decode(tok.encode(text)) == text  # any Unicode: it is all bytes


@pytest.mark.points(1)
def test_split_and_get_batch(student):
    """90/10 split; get_batch windows are (B, T) and targets are shifted by one"""
    train, val = student.train_val_split(torch.arange(10))
    assert train.tolist() == list(range(9)) and val.tolist() == [9]
    x, y = student.get_batch(torch.arange(100), 8, 4, generator=torch.Generator().manual_seed(0))
    assert x.shape == (4, 8) and y.shape == (4, 8) and x.dtype == torch.int64
    assert torch.equal(y, x + 1), "on data = arange(100), every target is its input + 1"
    assert torch.equal(x[:, 1:], x[:, :-1] + 1), "each row is a contiguous window"


@pytest.mark.points(1)
def test_model_shapes_and_initial_loss(student):
    """Logits are (B, T, V); at initialisation the loss is close to ln(V)"""
    model = tiny_model(student)
    g = torch.Generator().manual_seed(0)
    idx, targets = torch.randint(11, (2, 8), generator=g), torch.randint(11, (2, 8), generator=g)
    logits, loss = model(idx, targets)
    assert logits.shape == (2, 8, 11)
    # Small initial weights give near-uniform predictions: cross-entropy ≈ ln(11) = 2.398.
    # (Not with targets = idx: the tied head favours the input token itself.)
    assert abs(float(loss) - math.log(11)) < 0.1
    logits, loss = model(idx)
    assert loss is None


@pytest.mark.points(1)
def test_tied_and_untied_heads(student):
    """tie_weights=False gives the head its own (V, d) matrix: V·d more parameters"""
    tied, untied = tiny_model(student), tiny_model(student, tie_weights=False)
    assert untied.num_params() - tied.num_params() == 11 * 16  # V·d_model


@pytest.mark.points(1)
def test_rope_on_paper(student):
    """RoPE at d=4: position 0 is the identity; position 1 matches the course anchor"""
    cos, sin = student.rope_angles(2, 4)
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    out = student.apply_rope(x, cos, sin)
    torch.testing.assert_close(out[0], x[0])
    # Pair (1, 2) turns by 1 radian, pair (3, 4) by 0.01 radian.
    expected = torch.tensor(
        [
            math.cos(1) - 2 * math.sin(1),
            math.sin(1) + 2 * math.cos(1),
            3 * math.cos(0.01) - 4 * math.sin(0.01),
            3 * math.sin(0.01) + 4 * math.cos(0.01),
        ]
    )
    torch.testing.assert_close(out[1], expected)


@pytest.mark.points(1)
def test_top_k_and_top_p_on_paper(student):
    """top-k keeps ties with the k-th logit; top-p keeps the smallest set reaching p"""
    inf = float("-inf")
    logits = torch.tensor([[1.0, 3.0, 3.0, 2.0]])
    assert student.top_k_filter(logits, 2).tolist() == [[inf, 3.0, 3.0, inf]]
    probs = torch.tensor([[0.5, 0.3, 0.2]])
    kept = ~torch.isinf(student.top_p_filter(probs.log(), 0.6))
    assert kept.tolist() == [[True, True, False]]  # 0.5 < 0.6, 0.5 + 0.3 >= 0.6
    kept = ~torch.isinf(student.top_p_filter(probs.log(), 0.45))  # 0.5 alone reaches 0.45
    assert kept.tolist() == [[True, False, False]]


@pytest.mark.points(1)
def test_generate_shapes(student):
    """generate appends max_new_tokens tokens and keeps the prompt"""
    model = tiny_model(student)
    model.eval()
    prompt = torch.tensor([[1, 2, 3]])
    out = student.generate(model, prompt, 10, temperature=0.0)
    assert out.shape == (1, 13) and out[0, :3].tolist() == [1, 2, 3]


@pytest.mark.points(1)
def test_train_step_lowers_the_loss(student):
    """Twenty train_steps on one batch lower its loss"""
    model = tiny_model(student)
    optimizer = student.make_optimizer(model, student.TrainConfig(), torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(11, (4, 8), generator=g), torch.randint(11, (4, 8), generator=g)
    steps = [student.train_step(model, optimizer, x, y, lr=1e-2, grad_clip=1.0) for _ in range(20)]
    losses = [float(loss) for loss, _ in steps]  # train_step returns (loss, grad_norm)
    assert losses[-1] < losses[0] - 0.5, f"loss went from {losses[0]:.3f} to {losses[-1]:.3f}"
    assert all(float(norm) > 0 for _, norm in steps), "grad_norm is the gradient norm before clipping"
