"""Week 3 public tests: shapes and values you can check on paper.

Run them with `course test 3 --public` or `pytest -m w03 exercises/tests`. The hidden suite
compares every function with closed forms on random inputs (RoPE also through complex
numbers), checks the relative-position property of RoPE, KV-cache offsets, ALiBi for 12, 6 and
1 heads, the edges (d = 2, one position, T = max_len and max_len + 1 for a learned table, an odd
d_head), and that each encoding really lets attention tell token order apart.
"""

import math

import pytest
import torch

pytestmark = pytest.mark.w03


@pytest.mark.points(1)
def test_sinusoidal_by_hand(student):
    """Row 0 is [0, 1, 0, 1]; row 1 at d = 4 is [sin 1, cos 1, sin 0.01, cos 0.01]"""
    pe = student.sinusoidal_encoding(2, 4)
    assert pe.shape == (2, 4) and pe.dtype == torch.float32
    expected = torch.tensor(
        [[0.0, 1.0, 0.0, 1.0], [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)]]
    )
    torch.testing.assert_close(pe, expected)


@pytest.mark.points(1)
def test_learned_embedding_shape(submission):
    """LearnedPositionalEmbedding(10, 6) maps positions (2, 4) to (2, 4, 6)"""
    emb = submission.module().LearnedPositionalEmbedding(10, 6)
    assert emb(torch.arange(8).view(2, 4)).shape == (2, 4, 6)


@pytest.mark.points(1)
def test_rope_angles_shape(student):
    """rope_angles(8, arange(5)) gives cos and sin of shape (5, 4); at position 0 they are 1 and 0"""
    cos, sin = student.rope_angles(8, torch.arange(5))
    assert cos.shape == (5, 4) and sin.shape == (5, 4)
    torch.testing.assert_close(cos[0], torch.ones(4))
    torch.testing.assert_close(sin[0], torch.zeros(4))


@pytest.mark.points(2)
def test_rope_by_hand(student):
    """d = 4, x = [1, 2, 3, 4]: position 0 changes nothing; position 1 rotates pair 0 by 1 rad, pair 1 by 0.01"""
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]] * 2)
    out = student.apply_rope(x, torch.tensor([0, 1]))
    c0, s0, c1, s1 = math.cos(1), math.sin(1), math.cos(0.01), math.sin(0.01)
    expected = torch.tensor(
        [[1.0, 2.0, 3.0, 4.0], [1 * c0 - 2 * s0, 1 * s0 + 2 * c0, 3 * c1 - 4 * s1, 3 * s1 + 4 * c1]]
    )
    torch.testing.assert_close(out, expected)  # row 1 ≈ [-1.1426, 1.9221, 2.9599, 4.0298]


@pytest.mark.points(1)
def test_rope_keeps_shape(student):
    """apply_rope keeps the (B, h, T, d_head) shape"""
    x = torch.randn(2, 3, 5, 8)
    assert student.apply_rope(x, torch.arange(5)).shape == (2, 3, 5, 8)


@pytest.mark.points(1)
def test_alibi_slopes_8_heads(student):
    """8 heads: slopes 1/2, 1/4, …, 1/256"""
    torch.testing.assert_close(student.alibi_slopes(8), torch.tensor([2.0**-h for h in range(1, 9)]))


@pytest.mark.points(1)
def test_alibi_bias_by_hand(student):
    """One head of slope 1/2 (n = 1 gives 2^-8; use n = 8 and look at head 0), 3 queries and keys"""
    bias = student.alibi_bias(8, 3, 3)
    assert bias.shape == (8, 3, 3)
    expected = torch.tensor([[0.0, 0.0, 0.0], [-0.5, 0.0, 0.0], [-1.0, -0.5, 0.0]])
    torch.testing.assert_close(bias[0], expected)


@pytest.mark.points(1)
def test_edges_by_hand(student):
    """One head has slope 2^-8 = 1/256; d = 2 gives [sin p, cos p]; an odd d_head is a ValueError"""
    torch.testing.assert_close(student.alibi_slopes(1), torch.tensor([2.0**-8]))
    expected = torch.tensor([[0.0, 1.0], [math.sin(1), math.cos(1)]])
    torch.testing.assert_close(student.sinusoidal_encoding(2, 2), expected)
    with pytest.raises(Exception, match="ValueError"):  # RoPE rotates pairs: d_head must be even
        student.rope_angles(5, torch.arange(3))
