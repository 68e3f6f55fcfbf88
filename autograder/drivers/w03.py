"""Drivers for week 3 (run beside the submission through ``submission.run``): facts about a
module that a proxy call cannot read directly. They return data; tests decide."""

from __future__ import annotations


def trainable_parameters(module) -> dict[str, tuple[list[int], bool]]:
    """{name: (shape, requires_grad)} for every parameter (buffers are not parameters)."""
    return {name: (list(p.shape), bool(p.requires_grad)) for name, p in module.named_parameters()}
