"""Sampling and inspection: text from a checkpoint, a gallery, attention maps, held-out perplexity.

    course sample --checkpoint runs/<id> --prompt "To be or not" --temperature 0.8 --top-k 40 --seed 1
    course sample --checkpoint runs/<id> --gallery --attention --perplexity

Sampling is week 6's (`generate`, `top_k_filter`, `top_p_filter`; conventions in
course/CONVENTIONS.md): temperature 0 is greedy, top-k keeps ties with the k-th, top-p keeps the
smallest set reaching p. A ``torch.Generator`` makes sampling reproducible: the same seed gives
the same text.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from ..w06_decoder import generate as _generate
from ..w06_decoder import top_k_filter, top_p_filter  # noqa: F401 - part of this package's API
from .data import load_text, train_val_split
from .model import GPTConfig, MiniGPT
from .tokenizers import load_tokenizer
from .train import load_checkpoint, pick_device

DEFAULT_PROMPTS = ("To be or not", "ROMEO:\n", "First Citizen:\nWe", "The king", "\n")
FLOORS = {"uniform": 4.1744, "unigram": 3.3473, "bigram": 2.4819, "trigram": 2.0458}  # nats/char, val split


# --------------------------------------------------------------------------- the student's part
# One sampler in the course: week 6's filters and `generate` (as the training loop reuses week 7's
# helpers). MiniGPT keeps no KV cache, so each step recomputes the cropped window.
def generate(
    model: MiniGPT,
    idx: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Week 6's `generate` on a MiniGPT: idx (B, T) -> (B, T + max_new_tokens), sampled with
    week 6's temperature, `top_k_filter` and `top_p_filter`, without a cache."""
    return _generate(
        model,
        idx,
        max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        generator=generator,
        use_cache=False,
    )


@torch.no_grad()
def perplexity(model: MiniGPT, data: torch.Tensor, *, batch_size: int = 32) -> dict[str, float]:
    """Held-out loss of ``model`` over *all* of ``data`` (N,) token ids.

    Cuts the data into consecutive, non-overlapping windows of ``block_size + 1`` tokens
    (the last partial window included when it holds at least 2 tokens), scores every
    next-token prediction once, and averages over tokens (not over windows).
    Returns ``{"nats_per_token": mean loss, "perplexity": exp(mean loss), "tokens": count}``.
    """
    ### BEGIN SOLUTION
    model.eval()
    T, device = model.config.block_size, _device(model)
    n = len(data) - 1  # next-token predictions in the data
    windows = [(s, min(T, n - s)) for s in range(0, n, T)]  # (start, length); only the last is short
    total = 0.0
    for i in range(0, len(windows), batch_size):
        group = windows[i : i + batch_size]
        for length in sorted({t for _, t in group}):
            starts = [s for s, t in group if t == length]
            x = torch.stack([data[s : s + length] for s in starts]).to(device)  # (b, length)
            y = torch.stack([data[s + 1 : s + length + 1] for s in starts]).to(device)
            logits, _ = model(x)
            nll = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="sum")
            total += nll.item()
    mean = total / n
    return {"nats_per_token": mean, "perplexity": math.exp(mean), "tokens": n}
    ### END SOLUTION


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


# --------------------------------------------------------------------------- provided tools
def load_model(checkpoint: str | Path, device: str | torch.device = "cpu"):
    """(model in eval mode, tokenizer, checkpoint dict) from a run directory or a .pt file.
    A run directory means its ``best.pt`` (lowest validation loss), else its ``ckpt.pt``."""
    path = Path(checkpoint)
    if path.is_dir():
        path = path / "best.pt" if (path / "best.pt").exists() else path / "ckpt.pt"
    state = load_checkpoint(path, map_location="cpu")
    model = MiniGPT(GPTConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), load_tokenizer(state["tokenizer"]), state


def complete(model, tokenizer, prompt: str, max_new_tokens: int = 200, *, seed: int = 0, **sampling) -> str:
    """The prompt's continuation as text (prompt excluded)."""
    device = _device(model)
    idx = torch.tensor([tokenizer.encode(prompt)], dtype=torch.long, device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    out = generate(model, idx, max_new_tokens, generator=generator, **sampling)
    return tokenizer.decode(out[0, idx.size(1) :].tolist())


def write_gallery(
    model,
    tokenizer,
    path: str | Path,
    prompts=DEFAULT_PROMPTS,
    *,
    temperatures=(0.5, 1.0),
    max_new_tokens: int = 200,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
) -> Path:
    """A Markdown gallery: every prompt completed at every temperature, with the settings."""
    path = Path(path)
    lines = [
        "# Sample gallery",
        "",
        f"seed {seed}, top-k {top_k}, top-p {top_p}, {max_new_tokens} new tokens",
        "",
    ]
    for prompt in prompts:
        for temperature in temperatures:
            text = complete(
                model,
                tokenizer,
                prompt,
                max_new_tokens,
                seed=seed,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
            )
            lines += [f"## {prompt.strip() or '(newline)'!s} · temperature {temperature}", "", "```text"]
            lines += [prompt + text, "```", ""]
    path.write_text("\n".join(lines))
    return path


def plot_attention(weights: torch.Tensor, tokens: list[str], title: str = ""):
    """One heat map per head of a layer's weights (n_heads, T, T); rows are queries (the
    position reading), columns keys (the position read). Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    n_heads = weights.size(0)
    cols = min(n_heads, 4)
    rows = math.ceil(n_heads / cols)
    size = 0.28 * len(tokens) + 1.5
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size), squeeze=False)
    labels = [t.replace(" ", "␣").replace("\n", "\\n") for t in tokens]  # spaces and newlines visible
    for h, ax in enumerate(axes.flat):
        if h >= n_heads:
            ax.axis("off")
            continue
        ax.imshow(weights[h].float().cpu().numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_title(f"head {h}", fontsize=9)
        ax.set_xticks(range(len(labels)), labels, fontsize=7, rotation=90)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def save_attention_maps(model, tokenizer, prompt: str, out_dir: str | Path) -> list[Path]:
    """``attention_layer{i}.png`` for every layer of ``model`` reading ``prompt``."""
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = tokenizer.encode(prompt)[-model.config.block_size :]
    model.eval()
    maps = model.attention_maps(torch.tensor([ids], device=_device(model)))
    tokens = [tokenizer.decode([i]) for i in ids]
    paths = []
    for layer, weights in enumerate(maps):
        fig = plot_attention(weights[0], tokens, f"layer {layer}: {prompt!r}")
        paths.append(out_dir / f"attention_layer{layer}.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    return paths


def perplexity_report(model, tokenizer, config: dict, out_path: str | Path | None = None) -> dict:
    """Held-out perplexity on the run's validation split, per token and per character,
    beside the count-based floors of tiny Shakespeare (uniform … trigram)."""
    text = load_text(config["data"])
    data = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    _, val = train_val_split(data, config["train_frac"])
    report = perplexity(model, val)
    chars = len(tokenizer.decode(val[1:].tolist()))  # the characters that were predicted
    report["nats_per_char"] = report["nats_per_token"] * report["tokens"] / chars
    report["bits_per_char"] = report["nats_per_char"] / math.log(2)
    report["floors_nats_per_char"] = FLOORS
    if out_path is not None:
        Path(out_path).write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="course sample", description="Sample from a capstone checkpoint.")
    parser.add_argument("--checkpoint", required=True, help="a run directory (uses best.pt) or a .pt file")
    parser.add_argument("--prompt", default="To be or not")
    parser.add_argument("--max-new-tokens", type=int, default=300)
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    parser.add_argument("--top-k", type=int)
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--gallery", action="store_true", help="write gallery.md (several prompts, two temperatures)"
    )
    parser.add_argument("--attention", action="store_true", help="save attention maps of --prompt as PNG")
    parser.add_argument(
        "--perplexity", action="store_true", help="held-out perplexity report (perplexity.json)"
    )
    parser.add_argument("--out", help="where the gallery, maps and report go (default: the run directory)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    ckpt = Path(args.checkpoint)
    if not (ckpt.is_file() or (ckpt / "best.pt").is_file() or (ckpt / "ckpt.pt").is_file()):
        print(
            f"course sample: --checkpoint {args.checkpoint}: no checkpoint there (expected a run "
            "directory written by `course train`, holding best.pt or ckpt.pt, or a .pt file)",
            file=sys.stderr,
        )
        return 2

    model, tokenizer, state = load_model(args.checkpoint, pick_device(args.device))
    out = Path(args.out) if args.out else (ckpt if ckpt.is_dir() else ckpt.parent)
    out.mkdir(parents=True, exist_ok=True)
    sampling = dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    for i in range(args.num_samples):
        text = complete(model, tokenizer, args.prompt, args.max_new_tokens, seed=args.seed + i, **sampling)
        print(f"--- sample {i} (seed {args.seed + i}) ---\n{args.prompt}{text}")
    if args.gallery:
        path = write_gallery(
            model, tokenizer, out / "gallery.md", seed=args.seed, top_k=args.top_k, top_p=args.top_p
        )
        print(f"gallery: {path}")
    if args.attention:
        paths = save_attention_maps(model, tokenizer, args.prompt, out / "attention")
        print(f"attention maps: {', '.join(str(p) for p in paths)}")
    if args.perplexity:
        report = perplexity_report(model, tokenizer, state["config"], out / "perplexity.json")
        print(
            f"held-out: {report['nats_per_token']:.4f} nats/token, perplexity {report['perplexity']:.2f}, "
            f"{report['bits_per_char']:.3f} bits/char over {report['tokens']:,} tokens "
            f"(bigram floor {FLOORS['bigram']} nats/char)"
        )
    return 0
