"""Week 9 — the capstone: a character-level Mini-GPT you build, train, inspect and sample.

The package, one idea per module:

* `tokenizers`: `CharTokenizer`, byte-level `BPETokenizer` (train / encode / decode / save / load);
* `data`: `load_text`, `train_val_split` (first 90% / last 10%), `get_batch`;
* `model`: `GPTConfig`, `MiniGPT` (pre-LN, weight tying, fused attention, optional RoPE);
* `train`: `TrainConfig`, `train_step`, `estimate_loss`, `train` (run directory, checkpoints,
  resume, DDP) and the `course train` command;
* `sample`: `generate` with temperature / top-k / top-p, `perplexity`, a sample gallery,
  attention maps and the `course sample` command.

It uses week 7's training recipe (`lr_schedule`, `clip_grad_norm`, `param_groups`,
`set_seed`) from your own `w07_training`.
"""

from .data import get_batch, load_text, train_val_split
from .model import GPTConfig, MiniGPT, apply_rope, rope_angles
from .sample import (
    complete,
    generate,
    load_model,
    perplexity,
    perplexity_report,
    plot_attention,
    save_attention_maps,
    top_k_filter,
    top_p_filter,
    write_gallery,
)
from .tokenizers import BPETokenizer, CharTokenizer, load_tokenizer, merge_pair, pair_counts
from .train import (
    TrainConfig,
    TrainResult,
    estimate_loss,
    load_checkpoint,
    make_optimizer,
    parse_config,
    train,
    train_step,
)

__all__ = [
    "BPETokenizer",
    "CharTokenizer",
    "GPTConfig",
    "MiniGPT",
    "TrainConfig",
    "TrainResult",
    "apply_rope",
    "complete",
    "estimate_loss",
    "generate",
    "get_batch",
    "load_checkpoint",
    "load_model",
    "load_text",
    "load_tokenizer",
    "make_optimizer",
    "merge_pair",
    "pair_counts",
    "parse_config",
    "perplexity",
    "perplexity_report",
    "plot_attention",
    "rope_angles",
    "save_attention_maps",
    "top_k_filter",
    "top_p_filter",
    "train",
    "train_step",
    "train_val_split",
    "write_gallery",
]
