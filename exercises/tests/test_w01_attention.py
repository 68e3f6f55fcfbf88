"""Week 1 public tests: shapes and examples you can check on paper.

Run them with `course test 1 --public` or `pytest -m w01 exercises/tests`. The hidden suite
checks much more (random inputs against PyTorch, masks, stability, causality, the recurrent
encoder against nn.RNN).
"""

import math

import pytest
import torch

pytestmark = pytest.mark.w01


@pytest.mark.points(1)
def test_softmax_on_paper(student):
    """softmax([0, ln 2, ln 3]) = [1/6, 2/6, 3/6]"""
    x = torch.tensor([0.0, math.log(2.0), math.log(3.0)])
    out = student.softmax(x)
    torch.testing.assert_close(out, torch.tensor([1 / 6, 2 / 6, 3 / 6]))


@pytest.mark.points(1)
def test_causal_mask_3x3(student):
    """causal_mask(3) is the lower triangle, diagonal included"""
    expected = torch.tensor([[True, False, False], [True, True, False], [True, True, True]])
    assert torch.equal(student.causal_mask(3), expected)


@pytest.mark.points(1)
def test_padding_mask_small(student):
    """padding_mask([2, 3], 4): True at real tokens"""
    expected = torch.tensor([[True, True, False, False], [True, True, True, False]])
    assert torch.equal(student.padding_mask(torch.tensor([2, 3]), 4), expected)


@pytest.mark.points(2)
def test_attention_2x3_on_paper(student):
    """Two queries, three keys: every number can be checked by hand"""
    # d_k = 4, so the scale is 1/2. Query 0 matches key 0 (score 2 -> 1 after scaling),
    # query 1 matches nothing (all scores 0), so its weights are uniform.
    q = torch.tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    k = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    out, weights = student.scaled_dot_product_attention(q, k, v)
    e = math.e
    row0 = torch.tensor([e, 1.0, 1.0]) / (e + 2)
    torch.testing.assert_close(weights, torch.stack([row0, torch.full((3,), 1 / 3)]))
    torch.testing.assert_close(out[1], torch.tensor([2 / 3, 2 / 3]))
    torch.testing.assert_close(out[0], torch.tensor([(e + 1) / (e + 2), 2 / (e + 2)]))


@pytest.mark.points(1)
def test_attention_shapes(student):
    """Output (B, T_q, d_v) and weights (B, T_q, T_k)"""
    q, k, v = torch.randn(2, 5, 8), torch.randn(2, 7, 8), torch.randn(2, 7, 3)
    out, weights = student.scaled_dot_product_attention(q, k, v)
    assert out.shape == (2, 5, 3), f"output shape {tuple(out.shape)}, expected (2, 5, 3)"
    assert weights.shape == (2, 5, 7), f"weights shape {tuple(weights.shape)}, expected (2, 5, 7)"


@pytest.mark.points(1)
def test_self_attention_head_shape(submission):
    """SelfAttentionHead(16, 4) maps (B, T, 16) to (B, T, 4)"""
    head = submission.module().SelfAttentionHead(16, 4, causal=True)
    out = head(torch.randn(2, 6, 16))
    assert out.shape == (2, 6, 4), f"output shape {tuple(out.shape)}, expected (2, 6, 4)"


@pytest.mark.points(1)
def test_rnn_cell_on_paper(student):
    """rnn_cell: pre-activation [1.5, 0.5], so h_t = [tanh 1.5, tanh 0.5]"""
    # x_t W_ihᵀ = [1, 0], h_prev W_hhᵀ = [0.5, 0] (row 0 of W_hh reads unit 1 of h_prev),
    # b_ih + b_hh = [0, 0.5]: in all [1.5, 0.5] before the tanh.
    x_t = torch.tensor([[1.0, 0.0]])
    h_prev = torch.tensor([[0.0, 1.0]])
    weight_ih = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    weight_hh = torch.tensor([[0.0, 0.5], [0.0, 0.0]])
    bias = torch.tensor([0.0, 0.25])
    h_t = student.rnn_cell(x_t, h_prev, weight_ih, weight_hh, bias, bias.clone())
    torch.testing.assert_close(h_t, torch.tensor([[math.tanh(1.5), math.tanh(0.5)]]))


@pytest.mark.points(1)
def test_rnn_encoder_shapes(submission):
    """RNNEncoder(3, 5) maps (B, T, 3) to states (B, T, 5) and a final state (B, 5)"""
    encoder = submission.module().RNNEncoder(3, 5)
    names = sorted(encoder.state_dict().keys())
    assert names == ["bias_hh_l0", "bias_ih_l0", "weight_hh_l0", "weight_ih_l0"], f"parameters {names}"
    states, final = encoder(torch.randn(2, 4, 3))
    assert states.shape == (2, 4, 5), f"states shape {tuple(states.shape)}, expected (2, 4, 5)"
    assert final.shape == (2, 5), f"final shape {tuple(final.shape)}, expected (2, 5)"
    torch.testing.assert_close(final, states[:, -1])


@pytest.mark.points(1)
def test_attention_lookup_on_paper(student):
    """One query, two keys: scores [ln 3, 0] after the scale 1/2, weights [3/4, 1/4]"""
    query = torch.tensor([2 * math.log(3.0), 0.0, 0.0, 0.0])
    keys = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    values = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    out, weights = student.attention_lookup(query, keys, values)
    torch.testing.assert_close(weights, torch.tensor([0.75, 0.25]))
    torch.testing.assert_close(out, torch.tensor([1.5, 3.0]))  # 3/4·[1, 2] + 1/4·[3, 6]
