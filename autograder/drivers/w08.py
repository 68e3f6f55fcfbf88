"""Drivers for week 8 (run beside the submission through ``submission.run``): frozen
models wrapped by the student's ``apply_lora``, a short LoRA fine-tuning run, and the
``requires_grad`` flags a proxy cannot read.

Models are built here from plain ``torch.nn``. Drivers return data; the tests decide.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import Adam, single_threaded


def make_linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    """An ``nn.Linear`` holding ``weight`` (d_out, d_in) and ``bias``: a handle for LoRALinear(base)."""
    d_out, d_in = weight.shape
    layer = nn.Linear(d_in, d_out, bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def requires_grad_map(model: nn.Module) -> dict[str, bool]:
    """``{name: requires_grad}`` for every parameter (proxies only see tensor copies)."""
    return {name: p.requires_grad for name, p in model.named_parameters()}


class Attention(nn.Module):
    """Projections named as in week 2 and in Hugging Face models; the maths is irrelevant here."""

    def __init__(self, d: int):
        super().__init__()
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        weights = torch.softmax(q @ k.transpose(-2, -1) / q.size(-1) ** 0.5, dim=-1)
        return self.out_proj(weights @ v)


class Block(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.attn = Attention(d)
        self.fc1 = nn.Linear(d, 2 * d)
        self.fc2 = nn.Linear(2 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm(x))
        return x + self.fc2(F.gelu(self.fc1(x)))


class TinyTransformer(nn.Module):
    """Embedding, two blocks, a head; a ``v_proj`` that is *not* a Linear (an Embedding)
    tests that only ``nn.Linear`` modules are wrapped."""

    def __init__(self, vocab: int = 13, d: int = 8):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList([Block(d), Block(d)])
        self.extras = nn.ModuleDict({"v_proj": nn.Embedding(3, d)})
        self.head = nn.Linear(d, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        h = self.embed(idx)
        for block in self.blocks:
            h = block(h)
        return self.head(h)


def _is_lora(module: nn.Module) -> bool:
    return hasattr(module, "lora_A") and hasattr(module, "lora_B")


@single_threaded
def apply_lora_report(
    module, init: dict, target_modules, r: int, alpha: float, x: torch.Tensor, dropout: float | None = None
):
    """apply_lora on TinyTransformer loaded with ``init``; what it did, as data (``dropout``
    None: not passed, so the default applies)."""
    model = TinyTransformer()
    model.load_state_dict(init)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    kwargs = {} if target_modules is None else {"target_modules": target_modules}
    if dropout is not None:
        kwargs["dropout"] = dropout
    returned = module.apply_lora(model, r=r, alpha=alpha, **kwargs)
    lora = [(name, m) for name, m in model.named_modules() if _is_lora(m)]
    wrapped = sorted(name for name, _ in lora)
    with torch.no_grad():
        model.eval()
        out = model(x)
    return {
        "same_object": returned is model,
        "wrapped": wrapped,
        "requires_grad": requires_grad_map(model),
        "shapes": {n: tuple(p.shape) for n, p in model.named_parameters()},
        "before": before,
        "output": out,
        "count_all": module.count_parameters(model),
        "count_trainable": module.count_parameters(model, trainable_only=True),
        "lora_state": module.lora_state_dict(model),
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "classes": sorted({type(m).__name__ for _, m in model.named_modules() if _is_lora(m)}),
        "scalings": {name: _number(getattr(m, "scaling", None)) for name, m in lora},
        "dropouts": {name: _number(getattr(getattr(m, "lora_dropout", None), "p", None)) for name, m in lora},
    }


def _number(value):
    """A float as data, or None for anything else (a missing attribute, a tensor of many values)."""
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        return None


@single_threaded
def count_report(module, sizes: list[tuple[int, int, bool]], frozen: list[int]):
    """count_parameters on an nn.Sequential of Linears (sizes: d_in, d_out, bias), with the
    layers listed in ``frozen`` frozen and the first layer's weight tied to nothing."""
    model = nn.Sequential(*[nn.Linear(i, o, bias=b) for i, o, b in sizes])
    for k in frozen:
        for p in model[k].parameters():
            p.requires_grad_(False)
    return module.count_parameters(model), module.count_parameters(model, trainable_only=True)


@single_threaded
def count_shared_report(module):
    """count_parameters on an embedding whose weight is shared with the output layer (a tied
    head), beside a buffer: (all, trainable, trainable once the shared weight is frozen)."""
    embed, head = nn.Embedding(10, 4), nn.Linear(4, 10)
    head.weight = embed.weight  # one (10, 4) tensor under two names
    model = nn.Sequential(embed, head)
    model.register_buffer("positions", torch.arange(5.0))  # state, not a parameter
    counts = [module.count_parameters(model), module.count_parameters(model, trainable_only=True)]
    embed.weight.requires_grad_(False)
    return (*counts, module.count_parameters(model, trainable_only=True))


# --------------------------------------------------------------------------- fine-tuning
class Classifier(nn.Module):
    """x (N, d_in) -> logits (N, n_classes): fc1, GELU, fc2, GELU, head."""

    def __init__(self, d_in: int = 32, d_hidden: int = 128, n_classes: int = 4):
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.fc2 = nn.Linear(d_hidden, d_hidden)
        self.head = nn.Linear(d_hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.gelu(self.fc2(F.gelu(self.fc1(x)))))


def _train(model, x, y, steps: int, lr: float, batch: int = 64) -> None:
    opt = Adam(model.parameters(), lr=lr)
    model.train()
    for idx in torch.randint(0, x.size(0), (steps, batch)):
        loss = F.cross_entropy(model(x[idx]), y[idx])
        if not loss.requires_grad:
            raise RuntimeError(
                "the model's output does not depend on any trainable parameter: after apply_lora, gradients "
                "must reach lora_A and lora_B (nn.Parameter, used in forward without detach)"
            )
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


@single_threaded
def lora_transfer(
    module,
    x_train: torch.Tensor,
    y_first: torch.Tensor,
    y_second: torch.Tensor,
    x_test: torch.Tensor,
    *,
    pretrain_steps: int,
    steps: int,
    r: int,
    alpha: float,
    targets: tuple[str, ...] = ("fc1", "head"),
    seed: int = 0,
):
    """Pretrain a Classifier fully on the first task (plain torch), then fine-tune it on the
    second task through the student's apply_lora, with Adam over *all* of
    ``model.parameters()``: frozen ones get no gradient, so they must not move.

    Returns the test logits after fine-tuning, the state before apply_lora and after
    training, and the trainable / total parameter counts of the wrapped model."""
    torch.manual_seed(seed)
    model = Classifier(x_train.size(1), 128, int(y_first.max()) + 1)
    _train(model, x_train, y_first, pretrain_steps, lr=3e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    module.apply_lora(model, target_modules=targets, r=r, alpha=alpha)
    _train(model, x_train, y_second, steps, lr=1e-2)
    with torch.no_grad():
        logits = model(x_test)
    return {
        "logits": logits,
        "before": before,
        "after": {k: v.clone() for k, v in model.state_dict().items()},
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "total": sum(p.numel() for p in model.parameters()),
    }
