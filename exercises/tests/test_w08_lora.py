"""Week 8 public tests: shapes, counts and small examples you can check on paper.

Run them with `course test 8 --public` or `pytest -m w08 exercises/tests`. The hidden suite
compares with peft's LoRA layer, checks dropout placement, merging, what `apply_lora`
wraps and freezes, adapter state dicts, and a fine-tuning accuracy threshold.
"""

import pytest
import torch
from torch import nn

from autograder.drivers.w08 import apply_lora_report, make_linear, requires_grad_map

pytestmark = pytest.mark.w08


def _layer(submission, W, b, **kwargs):
    return submission.module().LoRALinear(submission.run(make_linear, W, b), **kwargs)


@pytest.mark.points(1)
def test_shapes_and_zero_start(submission):
    """LoRALinear(nn.Linear(10, 6), r=4): A is (4, 10), B is (6, 4) and zero, output = base output"""
    W, b = torch.randn(6, 10), torch.randn(6)
    layer = _layer(submission, W, b, r=4, alpha=8)
    sd = layer.state_dict()
    assert tuple(sd["lora_A"].shape) == (4, 10)
    assert tuple(sd["lora_B"].shape) == (6, 4)
    assert bool((sd["lora_B"] == 0).all()), "B starts at zero"
    x = torch.randn(3, 10)
    torch.testing.assert_close(layer(x), x @ W.T + b)


@pytest.mark.points(1)
def test_scaling_on_paper(submission):
    """d=2, r=1, alpha=4: A = [1, 0], B = [0, 1]ᵀ, so ΔW x = 4·[0, x₀]"""
    W = torch.eye(2)
    layer = _layer(submission, W, None, r=1, alpha=4)
    layer.load_state_dict(
        {"base.weight": W, "lora_A": torch.tensor([[1.0, 0.0]]), "lora_B": torch.tensor([[0.0], [1.0]])}
    )
    out = layer(torch.tensor([[2.0, 3.0]]))
    # base: [2, 3]; update: (alpha / r) · B (A x) = 4 · [0, 2] = [0, 8]
    torch.testing.assert_close(out, torch.tensor([[2.0, 11.0]]))
    assert layer.scaling == 4.0


@pytest.mark.points(1)
def test_merge_keeps_the_output(submission):
    """After merge() the output is unchanged and base.weight holds W + scaling·B A"""
    W = torch.randn(3, 5)
    layer = _layer(submission, W, None, r=2, alpha=2)
    A, B = torch.randn(2, 5), torch.randn(3, 2)
    layer.load_state_dict({"base.weight": W, "lora_A": A, "lora_B": B})
    x = torch.randn(4, 5)
    before = layer(x)
    layer.merge()
    torch.testing.assert_close(layer.base.weight, W + B @ A)
    torch.testing.assert_close(layer(x), before, atol=1e-5, rtol=1e-5)
    layer.unmerge()
    torch.testing.assert_close(layer.base.weight, W, atol=1e-6, rtol=0)


@pytest.mark.points(1)
def test_only_factors_train(submission):
    """Only lora_A and lora_B require grad inside a LoRALinear"""
    layer = _layer(submission, torch.randn(3, 4), torch.randn(3), r=2)
    flags = submission.run(requires_grad_map, layer)
    assert flags == {"base.weight": False, "base.bias": False, "lora_A": True, "lora_B": True}


@pytest.mark.points(1)
def test_count_parameters_small(student):
    """nn.Linear(4, 3) has 15 parameters; frozen, it has 0 trainable"""
    model = nn.Sequential(nn.Linear(4, 3))
    assert student.count_parameters(model) == 15
    model[0].weight.requires_grad_(False)
    assert student.count_parameters(model, trainable_only=True) == 3


@pytest.mark.points(2)
def test_apply_lora_default_targets(submission):
    """apply_lora wraps q_proj and v_proj of both blocks; trainable = 4 layers × r·(8 + 8)"""
    from autograder.drivers.w08 import TinyTransformer

    torch.manual_seed(0)
    init = TinyTransformer().state_dict()
    out = submission.run(
        apply_lora_report, submission.module(), init, None, 2, 4.0, torch.zeros(1, 3, dtype=torch.long)
    )
    assert out["wrapped"] == [
        "blocks.0.attn.q_proj",
        "blocks.0.attn.v_proj",
        "blocks.1.attn.q_proj",
        "blocks.1.attn.v_proj",
    ]
    assert out["count_trainable"] == 4 * 2 * (8 + 8)
    assert sorted(out["lora_state"]) == sorted(
        f"{m}.{f}" for m in out["wrapped"] for f in ("lora_A", "lora_B")
    )
