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


def mlm_loss_backward(module, logits: torch.Tensor, labels: torch.Tensor):
    """The loss, the gradient it sends to the logits (None when none arrives), and the text of
    the error ``backward()`` raised (empty when it ran): a loss that is a constant with no graph
    shows as an error here instead of failing the call."""
    logits = logits.clone().requires_grad_(True)
    loss = module.mlm_loss(logits, labels)
    try:
        loss.backward()
    except RuntimeError as exc:
        return loss.detach(), None, str(exc).splitlines()[0][:200]
    return loss.detach(), logits.grad, ""


def head_tie(model) -> dict:
    """How the MLM head's weight relates to the token embedding: the same Parameter object, or
    merely the same storage (two Parameters whose gradients and optimiser states are separate)."""
    head, emb = model.lm_head.weight, model.encoder.tok_emb.weight
    return {"same_object": head is emb, "same_storage": head.data_ptr() == emb.data_ptr()}


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
