"""Heads and layers: validation loss and parameter count of a grid of small GPTs.

    python benchmarks/experiments/capacity.py [--heads 1 2 4] [--layers 1 2 3] [--d-model 64]
                                              [--steps 600] [--task repeat|shakespeare]
                                              [--out runs/experiments] [--quick]

Week 6's ``GPT`` (pre-LN blocks of week 4, learned positions, tied head) is trained with the same
width ``d_model``, data, seed, schedule and number of steps for every cell of the grid; only the
number of heads and of layers change. The parameter count is week 6's ``gpt_param_count``
(checked against the model).

The default task (``repeat``) needs a circuit of a known depth: each sequence of 32 random
symbols (16 kinds) repeats its first n symbols once, n drawn from 8 … 16 per sequence. Inside the
repeat every symbol is predictable: find where the current symbol appeared before and copy the
one that followed it. That takes two attention steps in a row (one head moves "the previous
symbol" into each position, a later one matches it against the current symbol: an *induction
head*), so one layer cannot do it however many heads it has. Losses are over the predictable
targets only (chance: ln 16 = 2.7726), on fresh sequences. ``--task shakespeare`` runs the same
grid on tiny Shakespeare characters instead (losses over every character).

The figures are for a fixed, small budget of steps: a model that learns more slowly per step can
lose here and win with a longer run. The table and ``capacity.png`` go to ``--out``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

from benchmarks.experiments import common  # noqa: E402
from solutions.w06_decoder import GPT, GPTConfig, gpt_param_count  # noqa: E402
from solutions.w07_training import AdamW, param_groups, set_seed, train_step  # noqa: E402


def repeat_batch(batch: int, length: int, vocab: int, g: torch.Generator):
    """Random sequences whose first n symbols (n in length/4 … length/2) come again right after them.

    inputs (B, T), targets (B, T): the next symbol inside the repeat, -100 elsewhere.
    """
    x = torch.randint(vocab, (batch, length + 1), generator=g)
    n = torch.randint(length // 4, length // 2 + 1, (batch, 1), generator=g)
    t = torch.arange(length + 1).unsqueeze(0)  # (1, T + 1)
    inside = (t >= n) & (t < 2 * n)  # the repeated copy
    x = x.gather(1, torch.where(inside, t - n, t))  # position t copies t - n
    targets = x[:, 1:].clone()
    # The first repeated symbol (at n) cannot be foreseen; the rest of the copy can.
    predictable = inside[:, 1:] & (t[:, 1:] > n)
    targets[~predictable] = -100
    return x[:, :-1], targets


@torch.no_grad()
def accuracy(model, batches) -> float:
    """Share of the targets (those that are not -100) the model's top choice gets right."""
    model.eval()
    hits = count = 0
    for x, y in batches:
        keep = y != -100
        hits += int((model(x)[0].argmax(-1) == y)[keep].sum())
        count += int(keep.sum())
    return hits / count


def main(argv: list[str] | None = None) -> list[dict]:
    p = common.parser(__doc__)
    p.add_argument("--task", default="repeat", choices=("repeat", "shakespeare"))
    p.add_argument("--heads", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--layers", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--block-size", type=int, default=32)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--vocab", type=int, default=16, help="symbols of the repeat task")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--eval-batches", type=int, default=16)
    args = p.parse_args(argv)
    if args.quick:
        args.heads, args.layers, args.steps, args.batch, args.block_size, args.eval_batches = (
            [1, 2],
            [1, 2],
            3,
            4,
            16,
            1,
        )
    common.setup(args, argv)
    if args.task == "shakespeare":
        data = common.CharData.shakespeare()
        vocab_size, draw = data.vocab_size, lambda g: data.batch("train", args.batch, args.block_size, g)
        val = data.fixed_batches("val", args.eval_batches, args.batch, args.block_size, seed=1)
        train_eval = data.fixed_batches("train", args.eval_batches, args.batch, args.block_size, seed=2)
    else:
        vocab_size, draw = args.vocab, lambda g: repeat_batch(args.batch, args.block_size, args.vocab, g)
        val = [draw(torch.Generator().manual_seed(10_000 + i)) for i in range(args.eval_batches)]
        train_eval = None  # every batch is fresh: there is no training set to over-fit
    schedule = common.cosine_lr(args.lr, args.steps, warmup=max(1, args.steps // 10))
    results = []
    for n_layers in args.layers:
        for n_heads in args.heads:
            config = GPTConfig(
                vocab_size=vocab_size,
                block_size=args.block_size,
                n_layers=n_layers,
                n_heads=n_heads,
                d_model=args.d_model,
            )
            runs = []
            for seed in common.seeds(args):
                set_seed(seed)
                model = GPT(config)
                params = gpt_param_count(config)
                assert params == sum(p.numel() for p in model.parameters()), "count disagrees with the model"
                optimizer = AdamW(param_groups(model, 0.1), lr=args.lr, betas=(0.9, 0.99))
                g = torch.Generator().manual_seed(seed)
                with common.Timer() as t:
                    for step in range(args.steps):
                        batch = draw(g)
                        train_step(model, optimizer, [batch], max_norm=1.0, lr=schedule(step))
                runs.append(
                    {
                        "layers": n_layers,
                        "heads": n_heads,
                        "d_head": args.d_model // n_heads,
                        "params": params,
                        "train_loss": common.mean_loss(model, train_eval) if train_eval else None,
                        "val_loss": common.mean_loss(model, val),
                        "val_acc": accuracy(model, val),
                        "ms_per_step": 1000 * t.seconds / args.steps,
                    }
                )
            results.append(common.over_seeds(runs))
            print(f"  {n_layers} layers x {n_heads} heads: {t.seconds:.1f} s", file=sys.stderr)

    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    grid = torch.tensor([[float(r["val_loss"]) for r in results if r["layers"] == n] for n in args.layers])
    image = left.imshow(grid.tolist(), cmap="viridis_r", aspect="auto")
    for i in range(grid.size(0)):
        for j in range(grid.size(1)):
            left.text(j, i, f"{grid[i, j]:.3f}", ha="center", va="center", color="white", fontsize=9)
    left.set_xticks(range(len(args.heads)), [str(h) for h in args.heads])
    left.set_yticks(range(len(args.layers)), [str(n) for n in args.layers])
    unit = "nats/char" if args.task == "shakespeare" else "nats, predictable targets"
    left.set(xlabel="heads", ylabel="layers", title=f"validation loss ({unit})")
    fig.colorbar(image, ax=left)
    for n_heads in args.heads:
        cells = [r for r in results if r["heads"] == n_heads]
        right.plot(
            [r["params"] for r in cells],
            [float(r["val_loss"]) for r in cells],
            "o-",
            label=f"{n_heads} heads",
        )
    counts = sorted({r["params"] for r in results})
    right.set_xticks(counts, [f"{c:,}" for c in counts])
    right.set(
        xlabel="parameters (the same for every head count)",
        ylabel="validation loss",
        title="loss vs parameters",
    )
    right.legend(fontsize=8)
    task = "tiny Shakespeare (characters)" if args.task == "shakespeare" else "the repeat task"
    fig.suptitle(f"GPT, d_model={args.d_model}, {args.steps} steps on {task}")
    with_train = args.task == "shakespeare"
    headers = [
        "layers",
        "heads",
        "d_head",
        "parameters",
        *(["train loss"] if with_train else []),
        "val loss",
        "val accuracy",
        "ms/step",
    ]
    rows = [
        [
            r["layers"],
            r["heads"],
            r["d_head"],
            r["params"],
            *([r["train_loss"]] if with_train else []),
            r["val_loss"],
            r["val_acc"],
            f"{float(r['ms_per_step']):.1f}",
        ]
        for r in results
    ]
    floors = (
        "uniform guess 4.1744, bigram floor 2.4819"
        if with_train
        else f"chance: loss ln {vocab_size} = {math.log(vocab_size):.4f}, accuracy {1 / vocab_size:.4f}"
    )
    notes = [
        f"{task}: d_model {args.d_model}, block {args.block_size}, batch {args.batch}, {args.steps} steps, "
        f"AdamW lr {args.lr} with warm-up and cosine; losses over {args.eval_batches} fixed batches ({floors})",
    ]
    common.report("capacity", args, headers, rows, fig, notes)
    return results


if __name__ == "__main__":
    main()
