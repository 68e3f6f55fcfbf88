"""Week 4 public tests: shapes and examples you can check on paper.

Run them with `course test 4 --public` or `pytest -m w04 exercises/tests`. The hidden suite
checks much more (random weights against PyTorch built-ins, the block's wiring probed
sublayer by sublayer, dropout, causality, RoPE, the decoder block, exact parameter counts).
"""

import math

import pytest
import torch

pytestmark = pytest.mark.w04


@pytest.mark.points(1)
def test_layernorm_on_paper(student):
    """LayerNorm([1, 2, 3, 4]): mean 2.5, biased variance 1.25"""
    out = student.LayerNorm(4)(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    # var = ((-1.5)² + (-0.5)² + 0.5² + 1.5²) / 4 = 1.25 (divide by d = 4, not d − 1 = 3)
    expected = torch.tensor([[-1.5, -0.5, 0.5, 1.5]]) / math.sqrt(1.25 + 1e-5)
    torch.testing.assert_close(out, expected)


@pytest.mark.points(1)
def test_layernorm_constant_row(student):
    """A constant row has zero variance: the output is the bias (0), not NaN"""
    out = student.LayerNorm(3)(torch.full((2, 3), 7.0))
    torch.testing.assert_close(out, torch.zeros(2, 3))


@pytest.mark.points(1)
def test_rmsnorm_on_paper(student):
    """RMSNorm([3, 4]): mean of squares 12.5, no centring"""
    out = student.RMSNorm(2)(torch.tensor([3.0, 4.0]))
    torch.testing.assert_close(out, torch.tensor([3.0, 4.0]) / math.sqrt(12.5 + 1e-5))


@pytest.mark.points(1)
def test_ffn_default_width(student):
    """FeedForward(8) expands to 4·8 = 32 hidden units and projects back"""
    shapes = {k: tuple(v.shape) for k, v in student.FeedForward(8).state_dict().items()}
    assert shapes == {"w1.weight": (32, 8), "w1.bias": (32,), "w2.weight": (8, 32), "w2.bias": (8,)}, shapes


@pytest.mark.points(1)
def test_ffn_on_paper(student):
    """A 2-unit FFN with chosen weights: ReLU and exact GELU by hand"""
    # w1 x = [x0, -x1], w2 = identity, no biases: out = act([x0, -x1]).
    sd = {"w1.weight": torch.tensor([[1.0, 0.0], [0.0, -1.0]]), "w2.weight": torch.eye(2)}
    x = torch.tensor([2.0, 3.0])
    relu = student.FeedForward(2, 2, activation="relu", bias=False)
    relu.load_state_dict(sd)
    torch.testing.assert_close(relu(x), torch.tensor([2.0, 0.0]))
    gelu = student.FeedForward(2, 2, activation="gelu", bias=False)
    gelu.load_state_dict(sd)
    phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731 - the normal CDF
    torch.testing.assert_close(gelu(x), torch.tensor([2 * phi(2.0), -3 * phi(-3.0)]))


@pytest.mark.points(1)
def test_block_shapes(student):
    """TransformerBlock keeps (B, T, d_model) for every norm and activation"""
    x = torch.randn(2, 5, 16)
    for norm in ("layernorm", "rmsnorm"):
        for activation in ("gelu", "gelu_tanh", "relu", "swiglu"):
            block = student.TransformerBlock(16, 4, norm=norm, activation=activation, causal=True, rope=True)
            assert block(x).shape == (2, 5, 16), (norm, activation)


@pytest.mark.points(1)
def test_pre_ln_block_with_silent_sublayers_is_identity(student):
    """Pre-LN: if attention and FFN output zero, the block returns its input unchanged"""
    block = student.TransformerBlock(8, 2)
    sd = block.state_dict()
    for name in sd:  # zero the last projection of each sublayer
        if name.startswith(("attn.out_proj", "ffn.w2")):
            sd[name] = torch.zeros_like(sd[name])
    block.load_state_dict(sd)
    x = torch.randn(2, 3, 8) * 5
    torch.testing.assert_close(block(x), x)  # x + 0 + 0: the residual stream is never normalised


@pytest.mark.points(1)
def test_decoder_block_shape(student):
    """DecoderBlock maps (B, T, d) with memory (B, S, d) to (B, T, d)"""
    out = student.DecoderBlock(16, 4)(torch.randn(2, 5, 16), torch.randn(2, 9, 16))
    assert out.shape == (2, 5, 16)


@pytest.mark.points(1)
def test_block_param_count_gpt2_small(student):
    """A GPT-2 small block (d=768, GELU, LayerNorm, biases) has 7,087,872 parameters"""
    # attention 4·768² + 4·768 = 2,362,368; FFN 2·768·3072 + 3072 + 768 = 4,722,432; norms 4·768
    assert student.block_param_count(768) == 7_087_872
