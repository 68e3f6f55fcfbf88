"""Week 5 public tests: shapes and examples you can check on paper.

Run them with `course test 5 --public` or `pytest -m w05 exercises/tests`. The hidden suite
checks much more (masking statistics over large samples, bidirectionality, padding, the tied
head, and a short training run that needs both left and right context).
"""

import math

import pytest
import torch

pytestmark = pytest.mark.w05

PAD, CLS, SEP, MASK = 0, 1, 2, 3


@pytest.mark.points(1)
def test_mask_everything_but_specials(student):
    """mlm_prob=1 selects every non-special token; specials keep label -100"""
    ids = torch.tensor([[CLS, 7, 8, 9, SEP, PAD], [CLS, 5, 6, SEP, PAD, PAD]])
    inputs, labels = student.mask_tokens(
        ids,
        vocab_size=10,
        mask_id=MASK,
        special_ids=(PAD, CLS, SEP),
        mlm_prob=1.0,
        generator=torch.Generator().manual_seed(0),
    )
    special = (ids == PAD) | (ids == CLS) | (ids == SEP)
    assert inputs.shape == ids.shape and labels.shape == ids.shape
    assert torch.equal(labels[~special], ids[~special]), "labels hold the original id where selected"
    assert (labels[special] == -100).all(), "special tokens are never selected"
    assert torch.equal(inputs[special], ids[special]), "special tokens are never changed"


@pytest.mark.points(1)
def test_mask_nothing(student):
    """mlm_prob=0 changes nothing and labels every position -100"""
    ids = torch.randint(4, 50, (3, 8))
    inputs, labels = student.mask_tokens(ids, vocab_size=50, mask_id=MASK, mlm_prob=0.0)
    assert torch.equal(inputs, ids)
    assert (labels == -100).all()


@pytest.mark.points(1)
def test_mlm_loss_on_paper(student):
    """Only the labelled position counts: p(label) = 3/4 gives ln(4/3)"""
    logits = torch.zeros(1, 2, 2)
    logits[0, 0] = torch.tensor([0.0, math.log(3.0)])  # softmax = [1/4, 3/4]
    logits[0, 1] = torch.tensor([100.0, -100.0])  # unlabelled: must not matter
    labels = torch.tensor([[1, -100]])
    torch.testing.assert_close(student.mlm_loss(logits, labels), torch.tensor(math.log(4 / 3)))


@pytest.mark.points(1)
def test_cls_pool_takes_position_zero(student):
    """cls_pool((B, T, d)) is hidden[:, 0]"""
    hidden = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)
    torch.testing.assert_close(student.cls_pool(hidden), hidden[:, 0])


@pytest.mark.points(1)
def test_encoder_and_mlm_shapes(student):
    """Encoder: (B, T) ids -> (B, T, d); MaskedLM: -> (B, T, V)"""
    ids = torch.randint(0, 30, (2, 7))
    encoder = student.Encoder(30, 16, 2, 4, 12)
    assert tuple(encoder(ids).shape) == (2, 7, 16)
    assert tuple(encoder(ids, torch.ones(2, 7, dtype=torch.bool)).shape) == (2, 7, 16)
    assert tuple(student.MaskedLM(30, 16, 2, 4, 12)(ids).shape) == (2, 7, 30)


@pytest.mark.points(1)
def test_tied_head_counts_once(student):
    """The tied (V, d) matrix is one parameter: MaskedLM(30, 16, 1, 2, 8) has 4,254 parameters"""
    model = student.MaskedLM(30, 16, 1, 2, 8)
    total = sum(p.numel() for p in model.parameters())  # parameters() lists a shared tensor once
    # encoder: tok_emb 30·16 + pos_emb 8·16 + one block 3,280 + ln_f 32 = 3,920;
    # transform: Linear 16·16 + 16 and LayerNorm 32; lm_head: its bias (30) only.
    # An untied head would add 30·16 = 480 more.
    assert total == 4254, f"{total} parameters (4,734 would mean an untied head)"
