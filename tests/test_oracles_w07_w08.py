"""The week 7 and 8 references and the hidden suites' hand-written oracles against the libraries
they stand in for (Hugging Face transformers, torch.optim, peft). The suites write these oracles
out because importing the libraries costs seconds of the grading budget; these tests keep the
copies honest."""

from __future__ import annotations

import copy
import importlib.util
import math

import pytest
import torch
import torch.nn.functional as F

from autograder.drivers.w07 import TinyMLP
from autograder.weeks import ROOT
from solutions import w07_training, w08_lora


def _suite(path: str):
    spec = importlib.util.spec_from_file_location(f"_suite_{abs(hash(path))}", ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cosine_schedule_equals_hugging_face():
    """The suite's closed form and the reference equal get_cosine_schedule_with_warmup on 0…total."""
    transformers = pytest.importorskip("transformers")
    suite = _suite("autograder/suites/w07_training/test_schedule_clip_loss.py")
    for warmup, total, max_lr in ((10, 100, 1.0), (0, 37, 3e-4), (25, 26, 1e-2)):
        param = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([param], lr=max_lr)
        sched = transformers.get_cosine_schedule_with_warmup(opt, warmup, total)
        for step in range(total + 1):
            hf = opt.param_groups[0]["lr"]
            assert suite.hf_cosine_with_warmup(step, max_lr, warmup, total) == pytest.approx(hf, abs=1e-15)
            ours = w07_training.lr_schedule(step, max_lr=max_lr, warmup_steps=warmup, total_steps=total)
            assert ours == pytest.approx(hf, rel=1e-12, abs=1e-15)
            opt.step()
            sched.step()


def test_functional_adamw_oracle_equals_the_optimizer_class():
    """The suite's oracle (torch.optim.adamw.adamw) follows torch.optim.AdamW bit for bit, and so does the reference."""
    suite = _suite("autograder/suites/w07_training/test_optim_steps_checkpoints.py")
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 6, generator=g), torch.randn(32, 3, generator=g)
    init = {k: torch.randn(*v.shape, generator=g) * 0.4 for k, v in TinyMLP().state_dict().items()}
    groups = [
        {"names": ["fc1.weight", "fc2.weight"], "weight_decay": 0.1},
        {"names": ["fc1.bias", "fc2.bias"], "weight_decay": 0.0, "lr": 5e-4},
    ]
    lrs = [1e-3 * (0.5 + 0.5 * math.cos(math.pi * t / 60)) for t in range(60)]
    for cls in (torch.optim.AdamW, w07_training.AdamW):
        for grouping, schedule in ((None, None), (groups, lrs)):
            model = TinyMLP()
            model.load_state_dict(init)
            named = dict(model.named_parameters())
            if grouping is None:
                opt = cls(model.parameters())
            else:
                opt = cls(
                    [
                        {
                            "params": [named[n] for n in gr["names"]],
                            **{k: v for k, v in gr.items() if k != "names"},
                        }
                        for gr in grouping
                    ]
                )
            for t in range(60):
                if schedule is not None:
                    for group in opt.param_groups:
                        group["lr"] = schedule[t]
                opt.zero_grad()
                F.mse_loss(model(x), y).backward()
                opt.step()
            got = torch.cat([p.detach().flatten() for p in model.parameters()])
            expected = suite._reference_trajectory(init, x, y, 60, grouping, {}, schedule, [60])[60]
            assert torch.equal(got, expected), f"{cls.__module__}.AdamW differs from the functional oracle"


def test_reference_lora_equals_peft_model():
    """apply_lora on a small model equals peft's get_peft_model with the same A and B, merged or not."""
    peft = pytest.importorskip("peft")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj = torch.nn.Linear(8, 8)
            self.v_proj = torch.nn.Linear(8, 8)
            self.out = torch.nn.Linear(8, 3)

        def forward(self, x):
            return self.out(torch.tanh(self.q_proj(x)) * self.v_proj(x))

    torch.manual_seed(0)
    base = Net()
    ours = w08_lora.apply_lora(copy.deepcopy(base), r=4, alpha=8)  # peft wraps `base` in place
    theirs = peft.get_peft_model(
        base, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    )
    with torch.no_grad():
        for name in ("q_proj", "v_proj"):
            getattr(ours, name).lora_B.normal_()
            layer = theirs.base_model.model.get_submodule(name)
            layer.lora_A["default"].weight.copy_(getattr(ours, name).lora_A)
            layer.lora_B["default"].weight.copy_(getattr(ours, name).lora_B)
        x = torch.randn(5, 8)
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-6, rtol=1e-6)
        trainable_theirs = sum(p.numel() for p in theirs.parameters() if p.requires_grad)
        assert w08_lora.count_parameters(ours, trainable_only=True) == trainable_theirs == 2 * 4 * (8 + 8)
        for name in ("q_proj", "v_proj"):
            getattr(ours, name).merge()
        merged = theirs.merge_and_unload()
        torch.testing.assert_close(ours(x), merged(x), atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(ours.q_proj.base.weight, merged.q_proj.weight, atol=1e-7, rtol=0)
