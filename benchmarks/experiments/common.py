"""What the experiment scripts share: the command line, character data, evaluation, the table
and the plot file."""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")  # files only: the scripts run on machines without a display
import torch  # noqa: E402
from torch import nn  # noqa: E402

DEFAULT_OUT = Path("runs") / "experiments"


def parser(doc: str) -> argparse.ArgumentParser:
    """The options every experiment takes; a script adds its own."""
    p = argparse.ArgumentParser(
        description=doc.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="folder for the plot and the table (%(default)s)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="train every configuration with this many seeds (--seed, --seed + 1, …) and report\n"
        "mean ± standard deviation (%(default)s)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (%(default)s: models this small gain nothing from more, and on a busy\n"
        "machine the threads of one matrix product wait on each other)",
    )
    p.add_argument(
        "--quick", action="store_true", help="a smoke run of a few seconds: the figures mean nothing"
    )
    return p


def setup(args: argparse.Namespace, argv: Sequence[str] | None) -> None:
    """Threads, the output folder, and the command line (recorded with the table)."""
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)


# --------------------------------------------------------------------------- data
@dataclass
class CharData:
    """A text as character ids, split into a training and a validation part (90/10 by default)."""

    train: torch.Tensor
    val: torch.Tensor
    vocab_size: int

    @classmethod
    def shakespeare(cls, n_chars: int | None = None, train_frac: float = 0.9) -> CharData:
        """tiny Shakespeare (the shipped, verified copy); its first ``n_chars`` characters when given.

        The vocabulary is that of the whole file (65 characters), so every slice shares it.
        """
        from autograder.tools.data import dataset_path

        text = dataset_path("shakespeare").read_text()
        chars = sorted(set(text))
        lookup = {c: i for i, c in enumerate(chars)}
        text = text if n_chars is None else text[:n_chars]
        data = torch.tensor([lookup[c] for c in text], dtype=torch.long)
        n = int(train_frac * len(data))
        return cls(data[:n], data[n:], len(chars))

    def batch(self, split: str, batch_size: int, block_size: int, generator: torch.Generator):
        """Random windows: inputs (B, T) and the next characters (B, T)."""
        data = self.train if split == "train" else self.val
        starts = torch.randint(len(data) - block_size - 1, (batch_size,), generator=generator)
        x = torch.stack([data[s : s + block_size] for s in starts.tolist()])
        y = torch.stack([data[s + 1 : s + block_size + 1] for s in starts.tolist()])
        return x, y

    def fixed_batches(self, split: str, n: int, batch_size: int, block_size: int, seed: int):
        """The same ``n`` batches every call: comparable losses across models and steps."""
        g = torch.Generator().manual_seed(seed)
        return [self.batch(split, batch_size, block_size, g) for _ in range(n)]


@torch.no_grad()
def mean_loss(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Mean cross-entropy (nats per token) of ``model`` over ``batches``, in eval mode (no dropout);
    the model's mode is restored afterwards. ``model(x)`` returns logits or ``(logits, …)``."""
    from solutions.w07_training import cross_entropy

    was_training = model.training
    model.eval()
    losses = []
    for x, y in batches:
        logits = model(x)
        logits = logits[0] if isinstance(logits, tuple) else logits
        losses.append(float(cross_entropy(logits, y)))
    model.train(was_training)
    return sum(losses) / len(losses)


def seeds(args: argparse.Namespace) -> range:
    """The seeds every configuration is trained with."""
    return range(args.seed, args.seed + max(1, args.seeds))


# --------------------------------------------------------------------------- reporting
@dataclass(frozen=True)
class Spread:
    """One figure measured over several seeds: the table shows mean ± sample standard deviation,
    a plot the mean (``float(spread)``)."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    @property
    def sd(self) -> float:
        n = len(self.values)
        return math.sqrt(sum((v - self.mean) ** 2 for v in self.values) / (n - 1)) if n > 1 else 0.0

    def __float__(self) -> float:
        return self.mean


def over_seeds(runs: Sequence[dict]) -> dict:
    """Per-seed result dicts of one configuration as one: numbers become a `Spread` (or stay
    a number when there is one seed or all are equal), tensors their mean, anything else the first."""
    merged = {}
    for key, first in runs[0].items():
        values = [run[key] for run in runs]
        if isinstance(first, torch.Tensor):
            merged[key] = torch.stack(values).mean(0)
        elif isinstance(first, (int, float)) and not isinstance(first, bool) and len(set(values)) > 1:
            merged[key] = Spread(tuple(values))
        else:
            merged[key] = first
    return merged


def fmt(value, digits: int = 4) -> str:
    if isinstance(value, Spread):
        digits = 1 if all(isinstance(v, int) for v in value.values) else digits  # a step, say
        return f"{value.mean:.{digits}f} ± {value.sd:.{digits}f}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.{digits}f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A Markdown table (what the notes quote): floats with 4 decimals, integers with separators."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def report(name: str, args: argparse.Namespace, headers, rows, fig, notes: Sequence[str] = ()) -> Path:
    """Print the table (and any notes under it), write it to ``<out>/<name>.md`` and the figure to
    ``<out>/<name>.png``. Returns the PNG's path."""
    import matplotlib.pyplot as plt

    table = markdown_table(headers, rows)
    command = shlex.join(["python", f"benchmarks/experiments/{name}.py", *args.argv])
    seeds_text = (
        f"seed {args.seed}"
        if args.seeds <= 1
        else f"seeds {args.seed}-{args.seed + args.seeds - 1} (mean ± sd)"
    )
    footer = [f"torch {torch.__version__}, {torch.get_num_threads()} threads, {seeds_text}", *notes]
    text = "\n".join([table, "", *footer])
    print(text)
    (args.out / f"{name}.md").write_text(f"`{command}`\n\n{text}\n")
    png = args.out / f"{name}.png"
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    print(f"plot: {png}")
    return png


class Timer:
    """Wall-clock seconds of a block: ``with Timer() as t: …; t.seconds``."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start


def cosine_lr(max_lr: float, steps: int, warmup: int) -> Callable[[int], float]:
    """Week 7's schedule (warm-up, then cosine to max_lr / 10), as a function of the step."""
    from solutions.w07_training import lr_schedule

    return lambda step: lr_schedule(
        step, max_lr=max_lr, warmup_steps=warmup, total_steps=steps, min_lr=max_lr / 10
    )
