"""Drivers for week 6 (run beside the submission through ``submission.run``): a training loop,
a meta-device instantiation, a stand-in model with known logits for the sampler. They return
data or handles; the tests compute every verdict themselves."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from .common import fit


@contextmanager
def _skip_normal_init():
    """``nn.init.normal_`` / ``trunc_normal_`` become no-ops: on the meta device their first call
    imports torch's compiler stack (1-2 s), and a meta tensor has no values to initialise anyway."""
    saved = nn.init.normal_, nn.init.trunc_normal_
    nn.init.normal_ = nn.init.trunc_normal_ = lambda tensor, *args, **kwargs: tensor
    try:
        yield
    finally:
        nn.init.normal_, nn.init.trunc_normal_ = saved


def meta_parameter_shapes(module, config_kwargs: dict):
    """Shapes of the distinct parameters of ``GPT(GPTConfig(**config_kwargs))`` built on the meta
    device (no memory, no init cost): a GPT-2-sized model in milliseconds."""
    with torch.device("meta"), _skip_normal_init():
        model = module.GPT(module.GPTConfig(**config_kwargs))
    return [tuple(p.shape) for p in model.parameters()]


def head_tie(model) -> dict:
    """How ``lm_head.weight`` relates to ``tok_emb.weight``: the same Parameter object, or merely
    the same storage (two Parameters, each with its own gradient and optimiser state)."""
    head, emb = model.lm_head.weight, model.tok_emb.weight
    return {"same_object": head is emb, "same_storage": head.data_ptr() == emb.data_ptr()}


def build_gpt(module, config_kwargs: dict, seed: int):
    """``GPT(GPTConfig(**config_kwargs))`` with ``torch.manual_seed(seed)``, in eval mode."""
    torch.manual_seed(seed)
    model = module.GPT(module.GPTConfig(**config_kwargs))
    return model.eval()


def train_gpt(
    module,
    config_kwargs: dict,
    idx: torch.Tensor,
    targets: torch.Tensor,
    batch_size: int,
    lr: float,
    seed: int,
):
    """Trains ``GPT(GPTConfig(**config_kwargs))`` with Adam on (idx, targets), in order, one step
    per batch, with the cross-entropy of the logits it returns (computed here, so this measures
    the architecture, not the submission's loss code). Returns the model in eval mode."""
    torch.manual_seed(seed)
    model = module.GPT(module.GPTConfig(**config_kwargs))
    return fit(model, idx, targets, batch_size=batch_size, lr=lr, logits_of=lambda m, x: m(x)[0])


class _Config:
    def __init__(self, block_size: int):
        self.block_size = block_size


class TableModel(nn.Module):
    """A stand-in language model with known logits: the next-token logits after token a are
    ``table[a]`` (V, V). It accepts and ignores a ``cache``, records the length of every input
    it is given, and refuses inputs longer than ``block_size``, as a GPT with learned positions
    would."""

    def __init__(self, table: torch.Tensor, block_size: int):
        super().__init__()
        self.register_buffer("table", table.clone())
        self.config = _Config(block_size)
        self.seen_lengths: list[int] = []

    def forward(self, idx, targets=None, cache=None):
        self.seen_lengths.append(int(idx.size(1)))
        if idx.size(1) > self.config.block_size:
            raise ValueError(f"{idx.size(1)} tokens exceed block_size={self.config.block_size}")
        return self.table[idx], None  # (B, T, V)


def table_model(table: torch.Tensor, block_size: int) -> TableModel:
    return TableModel(table, block_size)


def generate_with_seeded_generator(module, model, idx: torch.Tensor, seed: int, kwargs: dict):
    """``module.generate`` with a fresh ``torch.Generator`` seeded with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return module.generate(model, idx, generator=gen, **kwargs)
