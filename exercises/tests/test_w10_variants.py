"""Week 10 public tests: shapes and examples you can check on paper.

Run them with `course test 10 --public` or `pytest -m w10 exercises/tests`. The hidden suite
checks much more (every tile size against PyTorch, causal and windowed tiles, skipped tiles and
memory, routing by loops, gradients, the parallel scan's number of steps).
"""

import math

import pytest
import torch
import torch.nn.functional as F

pytestmark = pytest.mark.w10


@pytest.mark.points(1)
def test_online_softmax_on_paper(student):
    """online_softmax([0, ln 2, ln 3, ln 4]) in blocks of 2 is [0.1, 0.2, 0.3, 0.4]"""
    x = torch.tensor([[0.0, math.log(2.0), math.log(3.0), math.log(4.0)]])
    torch.testing.assert_close(student.online_softmax(x, 2), torch.tensor([[0.1, 0.2, 0.3, 0.4]]))


@pytest.mark.points(1)
def test_tiled_attention_uniform_queries(student):
    """Zero queries weigh every key alike: the output is the mean of the values"""
    q = torch.zeros(1, 3, 4)
    k = torch.randn(1, 5, 4)
    v = torch.arange(10.0).reshape(1, 5, 2)  # mean over keys: [4, 5]
    out = student.tiled_attention(q, k, v, 2, 2)
    assert out.shape == (1, 3, 2), f"output shape {tuple(out.shape)}, expected (1, 3, 2)"
    torch.testing.assert_close(out, torch.tensor([[[4.0, 5.0]] * 3]))


@pytest.mark.points(1)
def test_tiled_attention_equals_sdpa(student):
    """Blocks of 3 × 2 over 7 positions give PyTorch's attention, plain and causal"""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 7, 4, generator=g) for _ in range(3))
    torch.testing.assert_close(
        student.tiled_attention(q, k, v, 3, 2), F.scaled_dot_product_attention(q, k, v)
    )
    torch.testing.assert_close(
        student.tiled_attention(q, k, v, 3, 2, causal=True),
        F.scaled_dot_product_attention(q, k, v, is_causal=True),
    )


@pytest.mark.points(1)
def test_sliding_window_mask_4x4(student):
    """sliding_window_mask(4, window=2): each query sees itself and the key before it"""
    expected = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]], dtype=torch.bool)
    assert torch.equal(student.sliding_window_mask(4, window=2), expected)


@pytest.mark.points(1)
def test_kv_cache_llama2_7b(student):
    """Llama 2 7B's KV cache at 4096 tokens in float16 is 2 GiB"""
    got = student.kv_cache_bytes(n_layers=32, n_kv_heads=32, d_head=128, seq_len=4096)
    assert got == 2 * 1024**3, f"got {got} bytes, expected 2 GiB = 2,147,483,648"


@pytest.mark.points(1)
def test_route_on_paper(student):
    """Probabilities [0.1, 0.2, 0.3, 0.4], top 2: experts [3, 2], weights [4/7, 3/7] or [0.4, 0.3]"""
    logits = torch.tensor([[0.0, math.log(2.0), math.log(3.0), math.log(4.0)]])
    weights, experts = student.route(logits, 2)
    assert experts.tolist() == [[3, 2]], f"experts {experts.tolist()}, expected [[3, 2]]"
    torch.testing.assert_close(weights, torch.tensor([[4 / 7, 3 / 7]]))
    weights, _ = student.route(logits, 2, renormalize=False)
    torch.testing.assert_close(weights, torch.tensor([[0.4, 0.3]]))
    _, tied = student.route(torch.zeros(1, 4), 2)
    assert tied.tolist() == [[0, 1]], f"ties go to the lower index: expected [[0, 1]], got {tied.tolist()}"


@pytest.mark.points(1)
def test_balancing_loss_is_one_at_balance(student):
    """A uniform router choosing each of 2 experts once gives a loss of exactly 1"""
    loss = student.load_balancing_loss(torch.zeros(2, 2), torch.tensor([[0], [1]]))
    torch.testing.assert_close(loss, torch.tensor(1.0))
    assert student.expert_counts(torch.tensor([[0, 2], [2, 1]]), 4).tolist() == [1, 1, 2, 0]


@pytest.mark.points(1)
def test_moe_shapes_and_mixtral_counts(student):
    """MoEFeedForward keeps the input's shape; a Mixtral-like layer stores 4× what a token uses"""
    layer = student.MoEFeedForward(8, 4, top_k=2, d_ff=16)
    out = layer(torch.randn(2, 5, 8))
    assert out.shape == (2, 5, 8), f"output shape {tuple(out.shape)}, expected (2, 5, 8)"
    assert int(layer.last_counts.sum()) == 2 * 5 * 2, "every token has top_k = 2 assignments"
    total, active = student.moe_param_counts(4096, 8, 2, 14336, "swiglu", False)
    assert (total, active) == (1_409_318_912, 352_354_304), f"got {(total, active)}"


@pytest.mark.points(1)
def test_scan_on_paper(student):
    """a = 0.5, b = 1, h0 = 2: every state stays 2 (0.5·2 + 1); both scans agree"""
    a, b, h0 = torch.full((1, 3, 1), 0.5), torch.ones(1, 3, 1), torch.full((1, 1), 2.0)
    torch.testing.assert_close(student.linear_scan_sequential(a, b, h0), torch.full((1, 3, 1), 2.0))
    torch.testing.assert_close(student.linear_scan_parallel(a, b, h0), torch.full((1, 3, 1), 2.0))
    # Without h0 the state starts at 0: 1, 1.5, 1.75.
    torch.testing.assert_close(student.linear_scan_parallel(a, b), torch.tensor([[[1.0], [1.5], [1.75]]]))


@pytest.mark.points(1)
def test_recurrence_shapes(student):
    """GatedLinearRecurrence(6, 5) maps (B, T, 6) to (B, T, 6) and returns a (B, 5) state"""
    layer = student.GatedLinearRecurrence(6, 5)
    y, h = layer(torch.randn(2, 7, 6))
    assert y.shape == (2, 7, 6), f"output shape {tuple(y.shape)}, expected (2, 7, 6)"
    assert h.shape == (2, 5), f"state shape {tuple(h.shape)}, expected (2, 5)"
