"""Drivers for week 5 (run beside the submission through ``submission.run``): what a proxy call
cannot express, such as a training loop or a look at which tensors are shared. They return data
or the trained model (as a handle); the tests compute every verdict themselves."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
    """Trains ``module.MaskedLM(*model_args)`` with AdamW on (inputs, labels), taken in order in
    batches of ``batch_size`` (one step each), with the cross-entropy over labelled positions.
    Returns the model, in eval mode. The loss is computed here, not by the submission's
    ``mlm_loss``, so this measures the architecture alone."""
    # One thread: a model this small gains nothing from two, and loses a lot when cores are shared.
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    model = module.MaskedLM(*model_args)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for start in range(0, inputs.size(0) - batch_size + 1, batch_size):
        x, y = inputs[start : start + batch_size], labels[start : start + batch_size]
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    return model
