"""Drivers for week 5 (run beside the submission through ``submission.run``): what a proxy call
cannot express, such as a training loop or a look at which tensors are shared. They return data
or the trained model (as a handle); the tests compute every verdict themselves."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Adam:
    """Adam without weight decay, in a few lines (the same update as ``torch.optim.AdamW`` with
    ``weight_decay=0``). Drivers avoid ``torch.optim``: building an optimizer imports torch's
    compiler stack, 1-3 s in every fresh grading process, which a tiny model does not need."""

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


def parameter_layout(model):
    """(name, shape, storage id) of every parameter, shared ones listed under each of their names."""
    return [
        (name, tuple(p.shape), p.data_ptr()) for name, p in model.named_parameters(remove_duplicate=False)
    ]


def mask_tokens_leaves_input(module, input_ids: torch.Tensor, kwargs: dict):
    """``input_ids`` as it is after ``mask_tokens`` ran on it (an in-place edit shows here)."""
    ids = input_ids.clone()
    module.mask_tokens(ids, **kwargs)
    return ids


def mlm_loss_grad(module, logits: torch.Tensor, labels: torch.Tensor):
    """The loss and its gradient with respect to the logits."""
    logits = logits.clone().requires_grad_(True)
    loss = module.mlm_loss(logits, labels)
    loss.backward()
    return loss.detach(), logits.grad


def train_masked_lm(
    module,
    model_args: tuple,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    lr: float,
    seed: int,
):
    """Trains ``module.MaskedLM(*model_args)`` with Adam on (inputs, labels), taken in order in
    batches of ``batch_size`` (one step each), with the cross-entropy over labelled positions.
    Returns the model, in eval mode. The loss is computed here, not by the submission's
    ``mlm_loss``, so this measures the architecture alone."""
    # One thread: a model this small gains nothing from two, and loses a lot when cores are shared.
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    model = module.MaskedLM(*model_args)
    opt = Adam(model.parameters(), lr=lr)
    model.train()
    for start in range(0, inputs.size(0) - batch_size + 1, batch_size):
        x, y = inputs[start : start + batch_size], labels[start : start + batch_size]
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model
