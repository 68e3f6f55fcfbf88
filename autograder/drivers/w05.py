"""Drivers for week 5 (run beside the submission through ``submission.run``): what a proxy call
cannot express, such as a training loop or a look at which tensors are shared. They return data
or the trained model (as a handle); the tests compute every verdict themselves."""

from __future__ import annotations

import torch

from .common import fit


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
    """Trains ``module.MaskedLM(*model_args)`` with Adam on (inputs, labels), in order, one step
    per batch of ``batch_size``, with the cross-entropy over labelled positions (computed here,
    not by the submission's ``mlm_loss``: this measures the architecture alone). Returns the
    model, in eval mode."""
    torch.manual_seed(seed)
    return fit(module.MaskedLM(*model_args), inputs, labels, batch_size=batch_size, lr=lr)
