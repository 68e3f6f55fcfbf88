"""What the week drivers share: threads, an optimizer, the train/eval probe and a training loop.

Drivers avoid ``torch.optim``: building an optimizer imports torch's compiler stack (1-3 s in
every fresh grading process), which a tiny model does not need; `Adam` is the same update as
``torch.optim.AdamW`` with ``weight_decay=0``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F


@contextlib.contextmanager
def one_thread():
    """Run tiny models on one thread: on a busy 2-core machine, intra-op threads fighting over
    the cores made a 200-step run 40× slower (measured). Restores the setting after. (Submission
    processes start with one thread already; the grader's own oracles use this too.)"""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def single_threaded(fn):
    """`one_thread` as a decorator."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with one_thread():
            return fn(*args, **kwargs)

    return wrapper


class Adam:
    """Adam without weight decay, in a few lines, over the parameters that require grad; a
    parameter that received no gradient (frozen, or unused) is left alone."""

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.betas, self.eps, self.t = lr, betas, eps, 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        correction1, correction2 = 1 - b1**self.t, 1 - b2**self.t
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            m.mul_(b1).add_(p.grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            denom = (v.sqrt() / correction2**0.5).add_(self.eps)
            p.addcdiv_(m, denom, value=-self.lr / correction1)


def fit(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    batch_size: int,
    lr: float,
    logits_of: Callable = lambda model, x: model(x),
) -> torch.nn.Module:
    """Adam on (inputs, targets) taken in order, one step per batch of ``batch_size``, with the
    cross-entropy of the logits (positions labelled -100 ignored), computed here and not by the
    submission: what is measured is the architecture. Returns the model in eval mode."""
    opt = Adam(model.parameters(), lr=lr)
    model.train()
    with one_thread():
        for start in range(0, inputs.size(0) - batch_size + 1, batch_size):
            x, y = inputs[start : start + batch_size], targets[start : start + batch_size]
            logits = logits_of(model, x)
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=-100)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def outputs_in_modes(module, x: torch.Tensor, repeats: int = 2) -> tuple[list, list]:
    """``repeats`` outputs of ``module(x)`` in training mode, then ``repeats`` in eval mode (no
    grad), leaving the module in eval mode: dropout shows as train outputs that differ from each
    other and from eval, which must repeat itself."""
    with torch.no_grad():
        module.train()
        train = [module(x) for _ in range(repeats)]
        module.eval()
        evals = [module(x) for _ in range(repeats)]
    return train, evals


def parameter_layout(model) -> list[tuple]:
    """(name, shape, storage id) of every parameter, shared ones listed under each of their names."""
    return [
        (name, tuple(p.shape), p.data_ptr()) for name, p in model.named_parameters(remove_duplicate=False)
    ]
