"""Week 4 drivers: run beside a submission (``submission.run(fn, …)``) what a proxy call
cannot express. They return data only; every verdict is computed by the hidden test."""

from __future__ import annotations

import torch


def block_grads(block, x: torch.Tensor, upstream: torch.Tensor, memory: torch.Tensor | None = None):
    """Gradients of <block(x), upstream> with respect to x and every parameter (eval mode).

    Returns (dx, {parameter name: gradient or None}) and, for a decoder block (``memory``
    given), the gradient with respect to memory as a third item.
    """
    block.eval()
    block.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    if memory is not None:
        memory = memory.clone().requires_grad_(True)
        out = block(x, memory)
    else:
        out = block(x)
    (out * upstream).sum().backward()
    grads = {name: (p.grad.clone() if p.grad is not None else None) for name, p in block.named_parameters()}
    if memory is not None:
        return x.grad, grads, memory.grad
    return x.grad, grads


def train_output(module, *args: torch.Tensor) -> torch.Tensor:
    """One output of ``module(*args)`` in training mode (dropout on), leaving it in eval mode."""
    with torch.no_grad():
        module.train()
        out = module(*args)
        module.eval()
    return out
