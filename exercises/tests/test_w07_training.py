"""Week 7 public tests: numbers you can check on paper, and the shape of each contract.

Run them with `course test 7 --public` or `pytest -m w07 exercises/tests`. The hidden suite
compares with Hugging Face's schedule, `torch.nn.utils.clip_grad_norm_`,
`F.cross_entropy` and `torch.optim.AdamW` over hundreds of steps, and checks accumulation,
autocast, seeding and an exact resume from a checkpoint.
"""

import math

import pytest
import torch
from torch import nn

from autograder.drivers.w07 import TinyLM, clip_run, resume_run, seeded_draws, train_step_run

pytestmark = pytest.mark.w07


@pytest.mark.points(1)
def test_lr_schedule_on_paper(student):
    """warmup 10, total 110, max_lr 1: 0 → 0, 5 → 0.5, 10 → 1, 60 → 0.5 (half-way down the cosine), 110 → 0"""
    kw = dict(max_lr=1.0, warmup_steps=10, total_steps=110)
    got = [student.lr_schedule(s, **kw) for s in (0, 5, 10, 60, 110, 500)]
    assert got == pytest.approx([0.0, 0.5, 1.0, 0.5, 0.0, 0.0], abs=1e-12)
    # With min_lr the cosine ends at min_lr: half-way it is (1 + 0.1) / 2.
    assert student.lr_schedule(60, min_lr=0.1, **kw) == pytest.approx(0.55, abs=1e-12)
    assert student.lr_schedule(500, min_lr=0.1, **kw) == pytest.approx(0.1, abs=1e-12)
    # No warmup at all: the cosine starts at step 0 (and nothing divides by zero).
    assert student.lr_schedule(0, max_lr=1.0, warmup_steps=0, total_steps=10) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.points(1)
def test_clip_grad_norm_on_paper(submission):
    """Gradients [3] and [4] have global norm 5: clipped to 1 they become [0.6] and [0.8]; 5 is returned"""
    grads = [torch.tensor([3.0]), None, torch.tensor([4.0])]
    norm, after = submission.run(clip_run, submission.module(), grads, 1.0, [])
    assert float(norm) == pytest.approx(5.0, rel=1e-6), "return the total norm before clipping"
    assert after[1] is None, "a None gradient stays None"
    torch.testing.assert_close(after[0], torch.tensor([0.6]), atol=1e-6, rtol=0)
    torch.testing.assert_close(after[2], torch.tensor([0.8]), atol=1e-6, rtol=0)


@pytest.mark.points(1)
def test_cross_entropy_on_paper(student):
    """Equal logits over 4 classes cost log 4 (smoothed or not); logits [0, ln 3] with target 1 cost −log ¾"""
    uniform = torch.zeros(3, 4)
    targets = torch.tensor([0, 2, 3])
    assert float(student.cross_entropy(uniform, targets)) == pytest.approx(math.log(4), rel=1e-6)
    assert float(student.cross_entropy(uniform, targets, label_smoothing=0.3)) == pytest.approx(
        math.log(4), rel=1e-6
    )
    two = torch.tensor([[0.0, math.log(3.0)]])
    assert float(student.cross_entropy(two, torch.tensor([1]))) == pytest.approx(-math.log(0.75), rel=1e-6)
    # An ignored target adds nothing: the mean is over the one real target.
    both = torch.cat([two, torch.zeros(1, 2)])
    assert float(student.cross_entropy(both, torch.tensor([1, -100]))) == pytest.approx(
        -math.log(0.75), rel=1e-6
    )


@pytest.mark.points(1)
def test_param_groups_small_model(student):
    """nn.Linear(3, 4) + nn.LayerNorm(4): only the (4, 3) weight decays"""
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    groups = student.param_groups(model, 0.1)
    decay = [tuple(p.shape) for g in groups if g["weight_decay"] == 0.1 for p in g["params"]]
    plain = sorted(tuple(p.shape) for g in groups if g["weight_decay"] == 0.0 for p in g["params"])
    assert decay == [(4, 3)]
    assert plain == [(4,), (4,), (4,)], "the linear bias and the LayerNorm weight and bias do not decay"


@pytest.mark.points(1)
def test_adamw_first_step_moves_by_lr(submission):
    """Adam's first step moves every weight by ≈ lr against its gradient's sign (m̂/√v̂ = sign g)"""
    from autograder.drivers.w07 import TinyMLP, adamw_trajectory

    torch.manual_seed(0)
    init = TinyMLP().state_dict()
    x, y = torch.randn(8, 6), torch.randn(8, 3)
    got = submission.run(
        adamw_trajectory, submission.module(), init, x, y, 1, None, {"weight_decay": 0.0}, None, [1]
    )
    before = torch.cat([t.flatten() for t in init.values()])
    step = (got[1] - before).abs()
    assert torch.allclose(step, torch.full_like(step, 1e-3), rtol=1e-3), (
        "each weight should move by lr = 1e-3"
    )


@pytest.mark.points(1)
def test_set_seed_repeats(submission):
    """Two runs after set_seed(123) draw the same numbers from torch, NumPy and random"""
    first, second = submission.run(seeded_draws, submission.module(), 123)
    for key in ("torch", "numpy", "python"):
        assert torch.equal(torch.as_tensor(first[key]), torch.as_tensor(second[key])), f"{key} draws differ"


@pytest.mark.points(1)
def test_train_step_returns_loss_and_norm(submission):
    """train_step returns {'loss', 'grad_norm'} and changes the weights"""
    torch.manual_seed(0)
    init = TinyLM().state_dict()
    x, y = torch.randint(0, 11, (4, 5)), torch.randint(0, 11, (4, 5))
    micro = [(x[:2], y[:2]), (x[2:], y[2:])]
    out = submission.run(train_step_run, submission.module(), init, [micro], sgd_lr=0.1, options={})
    result = out["results"][0]
    assert set(result) >= {"loss", "grad_norm"}
    assert math.log(11) / 3 < result["loss"] < 3 * math.log(11), (
        "an untrained 11-way model should cost about log 11"
    )
    assert not torch.equal(out["params"][0]["head.weight"], init["head.weight"])


@pytest.mark.points(1)
def test_checkpoint_round_trip(submission):
    """load_checkpoint returns the saved step and extras, and the resumed run equals the uninterrupted one"""
    torch.manual_seed(0)
    init = TinyLM().state_dict()
    data = torch.randint(0, 11, (400,))
    out = submission.run(resume_run, submission.module(), init, data, 8, 5, 0)
    assert out["info"]["step"] == 5
    assert out["info"]["data_pos"] == 5 * 4 * 6
    for name, value in out["straight"].items():
        assert torch.equal(out["resumed"][name], value), f"{name} differs after resuming"
