"""Week 10 drivers: what a proxy call cannot express for tiled attention, mixtures of experts and
scans (a backward pass, a look at the operators a call runs). They run beside the submission and
return data only; the verdicts are computed by the tests."""

from __future__ import annotations

import torch

# Matrix products as PyTorch's dispatcher sees them (matmul and einsum arrive here decomposed).
_MATMULS = {"aten.mm", "aten.bmm", "aten.addmm", "aten.baddbmm"}


def _matmul_flops(name: str, args) -> int:
    """Multiply-adds of one matrix product: (m × k) @ (k × n) costs m·k·n, per batch element."""
    if name in ("aten.addmm", "aten.baddbmm"):
        args = args[1:]
    a, b = args[0], args[1]
    batch = a.shape[0] if a.dim() == 3 else 1
    return int(batch * a.shape[-2] * a.shape[-1] * b.shape[-1])


def profile_call(module, name: str, args: tuple, kwargs: dict | None = None) -> dict:
    """Runs ``module.<name>(*args, **kwargs)`` without grad, recording every operator PyTorch's
    dispatcher runs: how many ran, the largest tensor any of them produced (in elements), the
    multiply-adds of the matrix products, and the operator names (for the library check)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    facts = {"ops": 0, "largest": 0, "matmul_flops": 0, "names": set()}

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            op = str(func.overloadpacket)
            facts["ops"] += 1
            facts["names"].add(op)
            if op in _MATMULS:
                facts["matmul_flops"] += _matmul_flops(op, args)
            for t in out if isinstance(out, tuple | list) else (out,):
                if isinstance(t, torch.Tensor):
                    facts["largest"] = max(facts["largest"], t.numel())
            return out

    with torch.no_grad(), Recorder():
        getattr(module, name)(*args, **(kwargs or {}))
    facts["names"] = sorted(facts["names"])
    return facts


def tiled_attention_grads(module, q, k, v, upstream, kwargs: dict):
    """Gradients of <tiled_attention(q, k, v, **kwargs), upstream> with respect to q, k and v."""
    q, k, v = (t.clone().requires_grad_(True) for t in (q, k, v))
    out = module.tiled_attention(q, k, v, **kwargs)
    (out * upstream).sum().backward()
    return q.grad, k.grad, v.grad


def moe_grads(layer, x: torch.Tensor, upstream: torch.Tensor) -> dict:
    """The router's weight gradient from the output alone (<out, upstream>) and from the
    load-balancing loss alone, plus that loss and the counts of the same call."""
    layer.train()
    out = layer(x)
    aux = layer.aux_loss
    weight = layer.router.weight
    from_out = torch.autograd.grad((out * upstream).sum(), weight, retain_graph=True, allow_unused=True)[0]
    from_aux = None
    if isinstance(aux, torch.Tensor) and aux.requires_grad:
        from_aux = torch.autograd.grad(aux, weight, allow_unused=True)[0]
    return {
        "out": out.detach(),
        "aux": aux.detach() if isinstance(aux, torch.Tensor) else aux,
        "from_out": from_out,
        "from_aux": from_aux,
    }


def balancing_loss_grad(module, logits: torch.Tensor, experts: torch.Tensor):
    """The loss and its gradient with respect to the router logits."""
    logits = logits.clone().requires_grad_(True)
    loss = module.load_balancing_loss(logits, experts)
    if not (isinstance(loss, torch.Tensor) and loss.requires_grad):
        return loss.detach() if isinstance(loss, torch.Tensor) else loss, None
    (grad,) = torch.autograd.grad(loss, logits, allow_unused=True)
    return loss.detach(), grad
