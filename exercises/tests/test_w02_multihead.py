"""Week 2 public tests: shapes, head layout and examples you can check on paper.

Run them with `course test 2 --public` or `pytest -m w02 exercises/tests`. The hidden suite
compares against `torch.nn.MultiheadAttention`, checks every mask shape, cross-attention,
dropout, gradients and grouped-query attention.
"""

import pytest
import torch

pytestmark = pytest.mark.w02


@pytest.mark.points(1)
def test_split_heads_by_hand(student):
    """Two heads of width 2: head 0 takes channels 0-1, head 1 channels 2-3"""
    x = torch.arange(8.0).view(1, 2, 4)  # tokens [0, 1, 2, 3] and [4, 5, 6, 7]
    heads = student.split_heads(x, 2)
    assert heads.shape == (1, 2, 2, 2), (
        f"shape {tuple(heads.shape)}, expected (B, h, T, d_head) = (1, 2, 2, 2)"
    )
    expected = torch.tensor([[[[0.0, 1.0], [4.0, 5.0]], [[2.0, 3.0], [6.0, 7.0]]]])
    assert torch.equal(heads, expected), "head h must own channels h·d_head … (h+1)·d_head − 1 of every token"


@pytest.mark.points(1)
def test_merge_heads_round_trip(student):
    """merge_heads(split_heads(x)) == x"""
    x = torch.randn(2, 5, 12)
    assert torch.equal(student.merge_heads(student.split_heads(x, 3)), x)


@pytest.mark.points(1)
def test_mha_param_count(student):
    """MultiHeadAttention(512, 8) has 1,050,624 parameters (1,048,576 without biases)"""
    assert student.mha_param_count(512, 8) == 1_050_624
    assert student.mha_param_count(512, 8, bias=False) == 1_048_576


@pytest.mark.points(1)
def test_shapes(submission):
    """Self-attention keeps (B, T, d_model); cross-attention gives (B, T_q, d_model)"""
    mha = submission.module().MultiHeadAttention(16, 4)
    x, context = torch.randn(2, 3, 16), torch.randn(2, 7, 16)
    assert mha(x).shape == (2, 3, 16)
    out, weights = mha(x, context, return_weights=True)
    assert out.shape == (2, 3, 16)
    assert weights.shape == (2, 4, 3, 7), f"weights {tuple(weights.shape)}, expected (B, h, T_q, T_k)"


@pytest.mark.points(2)
def test_uniform_attention_on_paper(submission):
    """Zero query/key weights make every score 0: each output is the mean of the values"""
    d = 4
    mha = submission.module().MultiHeadAttention(d, 2, bias=False)
    eye, zero = torch.eye(d), torch.zeros(d, d)
    mha.load_state_dict(
        {"q_proj.weight": zero, "k_proj.weight": zero, "v_proj.weight": eye, "out_proj.weight": 2 * eye}
    )
    x = torch.tensor([[[1.0, 0.0, 2.0, 0.0], [3.0, 0.0, 0.0, 4.0]]])  # (1, 2, 4)
    out, weights = mha(x, return_weights=True)
    # softmax([0, 0]) = [1/2, 1/2] for every head and query; v = x; out_proj doubles.
    torch.testing.assert_close(weights, torch.full((1, 2, 2, 2), 0.5))
    torch.testing.assert_close(out, torch.tensor([[[4.0, 0.0, 2.0, 4.0], [4.0, 0.0, 2.0, 4.0]]]))


@pytest.mark.points(1)
def test_mask_means_may_attend(submission):
    """With the second key masked, each query copies the first value"""
    d = 2
    mha = submission.module().MultiHeadAttention(d, 1, bias=False)
    eye = torch.eye(d)
    mha.load_state_dict({f"{n}.weight": eye for n in ("q_proj", "k_proj", "v_proj", "out_proj")})
    x = torch.tensor([[[1.0, 2.0], [5.0, -1.0]]])
    mask = torch.tensor([[True, False], [True, False]])  # True = may attend
    torch.testing.assert_close(mha(x, mask=mask), torch.tensor([[[1.0, 2.0], [1.0, 2.0]]]))


@pytest.mark.points(1)
def test_gqa_shapes(submission):
    """GroupedQueryAttention(32, 8, 2): narrow k/v projections, (B, T, d_model) output"""
    gqa = submission.module().GroupedQueryAttention(32, 8, 2)
    assert tuple(gqa.state_dict()["k_proj.weight"].shape) == (8, 32)
    assert gqa(torch.randn(2, 5, 32)).shape == (2, 5, 32)
