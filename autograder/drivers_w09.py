"""Week 9 drivers: training runs, optimizer steps and file-writing tools of the capstone, run
beside the submission (``submission.run(fn, pkg, …)`` with ``pkg`` the student's
``w09_capstone`` package). They return data (tensors, numbers, strings, paths as strings);
every verdict, loss included, is computed by the hidden test from what comes back."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def model_facts(model) -> dict:
    """Parameter count (each parameter once), state-dict keys and shapes, and whether the
    output head shares its storage with the token embedding."""
    sd = model.state_dict()
    head, emb = sd.get("lm_head.weight"), sd.get("tok_emb.weight")
    tied = head is not None and emb is not None and head.data_ptr() == emb.data_ptr()
    return {
        "num_params": sum(p.numel() for p in model.parameters()),
        "shapes": {k: list(v.shape) for k, v in sd.items()},
        "tied": tied,
    }


def train_steps(pkg, model, state: dict, batches: list, lrs: list, grad_clip: float, opt: dict, eps: float):
    """Load ``state``, build the package's optimizer (week 7 groups; Adam's ``eps`` set here)
    and run `train_step` on each (x, y) batch. Returns (losses, state dict after every step)."""
    model.load_state_dict(state)
    model.train()
    config = replace(pkg.TrainConfig(), **opt)
    optimizer = pkg.make_optimizer(model, config, torch.device("cpu"))
    for group in optimizer.param_groups:
        group["eps"] = eps
    losses, states = [], []
    for (x, y), lr in zip(batches, lrs):
        loss = pkg.train_step(model, optimizer, x, y, lr=lr, grad_clip=grad_clip)
        losses.append(torch.as_tensor(loss).detach().float().reshape(()))
        states.append(_state(model))
    return losses, states


def evaluate(pkg, model, state: dict, splits: dict, kwargs: dict):
    """`estimate_loss` on a model with weights ``state``; also reports whether the model is
    back in training mode afterwards."""
    model.load_state_dict(state)
    model.train()
    out = pkg.estimate_loss(model, splits, **kwargs)
    return out, bool(model.training)


def train_and_predict(pkg, config: dict, inputs: torch.Tensor) -> torch.Tensor:
    """Train with `pkg.train` on ``config``; return the trained model's logits on ``inputs``
    (eval mode, no grad). The loss is computed by the test."""
    result = pkg.train(replace(pkg.TrainConfig(), **config))
    model = result.model
    model.eval()
    with torch.no_grad():
        logits, _ = model(inputs)
    return logits


def resume_runs(pkg, config: dict, stop_at: int):
    """Run A straight through ``max_steps``; run B to ``stop_at`` (same schedule), then resume
    it to ``max_steps``. Returns both final state dicts and both run directories."""
    base = replace(pkg.TrainConfig(), **config)
    total = base.max_steps
    a = pkg.train(replace(base, run_id="straight", lr_decay_steps=total))
    pkg.train(replace(base, run_id="resumed", max_steps=stop_at, lr_decay_steps=total))
    b = pkg.train(
        replace(base, run_id="resumed", lr_decay_steps=total, resume=str(Path(base.out_dir) / "resumed"))
    )
    return {
        "straight": _state(a.model),
        "resumed": _state(b.model),
        "run_dir": str(a.run_dir),
        "step": b.step,
    }


def run_with_artifacts(pkg, config: dict, prompt: str) -> dict:
    """A short run, then the inspection tools on its best checkpoint: gallery, attention maps
    and the held-out perplexity report, all written into the run directory."""
    result = pkg.train(replace(pkg.TrainConfig(), **config))
    run_dir = Path(result.run_dir)
    model, tokenizer, state = pkg.load_model(run_dir)
    pkg.write_gallery(model, tokenizer, run_dir / "gallery.md", prompts=(prompt,), max_new_tokens=20)
    maps = pkg.save_attention_maps(model, tokenizer, prompt, run_dir / "attention")
    report = pkg.perplexity_report(model, tokenizer, state["config"], run_dir / "perplexity.json")
    return {
        "run_dir": str(run_dir),
        "maps": [str(p) for p in maps],
        "report": {k: v for k, v in report.items() if isinstance(v, (int, float))},
        "state": _state(model),
    }


def sample(pkg, model, state: dict, prompt: torch.Tensor, n: int, seed: int, sampling: dict) -> torch.Tensor:
    """`generate` with a generator seeded ``seed`` on a model with weights ``state``."""
    model.load_state_dict(state)
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    return pkg.generate(model, prompt, n, generator=generator, **sampling)


def perplexity_of(pkg, model, state: dict, data: torch.Tensor, batch_size: int) -> dict:
    model.load_state_dict(state)
    return pkg.perplexity(model, data, batch_size=batch_size)
