"""Trusted helpers that run *beside* a submission (in its child process) through
``submission.run(fn, …)``: things a proxy call cannot express, such as a backward pass
or a training loop. They return data only; verdicts are computed by the test, here."""

from __future__ import annotations

import torch


def attention_grads(module, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, upstream: torch.Tensor):
    """Gradients of <out, upstream> w.r.t. q, k, v through the student's attention."""
    q, k, v = (t.clone().requires_grad_(True) for t in (q, k, v))
    out, _ = module.scaled_dot_product_attention(q, k, v)
    (out * upstream).sum().backward()
    return q.grad, k.grad, v.grad


def outputs_for_inputs(model, inputs: list, method: str | None = None):
    """Call ``model`` (or one of its methods) on each input, in eval mode, without grad."""
    fn = getattr(model, method) if method else model
    if hasattr(model, "eval"):
        model.eval()
    with torch.no_grad():
        return [fn(x) for x in inputs]


def library_ops(module, calls: list[tuple[str, tuple]]) -> list[str]:
    """The ATen operators that ``module``'s functions reach while making ``calls`` (name,
    args). Recorded at PyTorch's dispatcher, under every Python spelling of a call: a library
    softmax shows up as ``aten._softmax`` however it was looked up (``F.softmax``,
    ``getattr(torch, "soft" + "max")``, ``torch._C._VariableFunctions``, ``torch.ops.aten``)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    seen: set[str] = set()

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.add(str(func.overloadpacket))
            return func(*args, **(kwargs or {}))

    with Recorder():
        for name, args in calls:
            getattr(module, name)(*args)
    return sorted(seen)
