"""Transformer Deep Dive: the exercises, one module per week.

Modules import earlier weeks relatively (``from .w04_blocks import TransformerBlock``),
so the same code works as ``solutions``, ``exercises`` or a graded submission.
"""
