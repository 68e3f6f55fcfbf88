"""Dropout against over-fitting: training and validation loss curves on a text small enough to memorise.

    python benchmarks/experiments/dropout.py [--dropouts 0 0.1 0.3] [--chars 4000] [--steps 600]
                                             [--out runs/experiments] [--quick]

Week 6's ``GPT`` (2 layers, 4 heads, d_model 64: about 108,000 parameters) is trained on the
first ``--chars`` characters of tiny Shakespeare (90 % to train on, the next 10 % to validate),
far fewer characters than it has parameters, once for each dropout rate (``GPTConfig.dropout``: on
the embeddings, the attention weights and each sublayer's output). Both losses are measured
every ``--eval-every`` steps in eval mode (dropout off), on fixed batches. A model of d_model 16
and one layer, trained the same way without dropout, shows what under-fitting looks like.

What to look for: *under-fitting* — both losses high, close together and still falling (early
steps, or a model too small); *over-fitting* — the training loss keeps falling while the
validation loss has passed its minimum and rises, and the gap between them widens. The table
gives each run's best validation loss and its step (where early stopping would keep the
checkpoint), and the final losses and gap; ``dropout.png`` marks the minima.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

from benchmarks.experiments import common  # noqa: E402
from solutions.w06_decoder import GPT, GPTConfig  # noqa: E402
from solutions.w07_training import AdamW, param_groups, set_seed, train_step  # noqa: E402


def run(label, config, data, args, train_eval, val, seed: int) -> dict:
    set_seed(seed)
    model = GPT(config)
    optimizer = AdamW(param_groups(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.99))
    schedule = common.cosine_lr(args.lr, args.steps, warmup=max(1, args.steps // 20))
    g = torch.Generator().manual_seed(seed)
    steps, train_curve, val_curve = [], [], []
    with common.Timer() as t:
        for step in range(args.steps + 1):
            if step % args.eval_every == 0 or step == args.steps:
                steps.append(step)
                train_curve.append(common.mean_loss(model, train_eval))
                val_curve.append(common.mean_loss(model, val))
            if step < args.steps:
                batch = data.batch("train", args.batch, args.block_size, g)
                train_step(model, optimizer, [batch], max_norm=1.0, lr=schedule(step))
    best = min(range(len(val_curve)), key=val_curve.__getitem__)
    print(f"  {label}: {t.seconds:.1f} s", file=sys.stderr)
    return {
        "label": label,
        "dropout": config.dropout,
        "params": sum(p.numel() for p in model.parameters()),
        "steps": steps,
        "train": torch.tensor(train_curve),
        "val": torch.tensor(val_curve),
        "best_val": val_curve[best],
        "best_step": steps[best],
        "final_train": train_curve[-1],
        "final_val": val_curve[-1],
        "gap": val_curve[-1] - train_curve[-1],
        "rise": val_curve[-1] - val_curve[best],
    }


def main(argv: list[str] | None = None) -> list[dict]:
    p = common.parser(__doc__)
    p.add_argument("--dropouts", type=float, nargs="+", default=[0.0, 0.1, 0.3])
    p.add_argument("--chars", type=int, default=4_000, help="characters of tiny Shakespeare used")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--block-size", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--eval-batches", type=int, default=4)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=0.0, help="0: dropout is the only regulariser")
    p.add_argument("--no-small", dest="small", action="store_false", help="skip the under-fitting model")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.eval_every, args.eval_batches, args.batch = 4, 2, 1, 4
        args.layers, args.d_model, args.block_size = 1, 32, 16
    common.setup(args, argv)
    data = common.CharData.shakespeare(n_chars=args.chars)
    val = data.fixed_batches("val", args.eval_batches, args.batch, args.block_size, seed=1)
    train_eval = data.fixed_batches("train", args.eval_batches, args.batch, args.block_size, seed=2)
    base = GPTConfig(
        vocab_size=data.vocab_size,
        block_size=args.block_size,
        n_layers=args.layers,
        n_heads=args.heads,
        d_model=args.d_model,
    )
    results = []
    for rate in args.dropouts:
        config = GPTConfig(**{**vars(base), "dropout": rate})
        runs = [run(f"dropout {rate:g}", config, data, args, train_eval, val, s) for s in common.seeds(args)]
        results.append(common.over_seeds(runs))
    if args.small:
        config = GPTConfig(**{**vars(base), "n_layers": 1, "n_heads": 1, "d_model": 16})
        label = "too small (d 16, 1 layer)"
        runs = [run(label, config, data, args, train_eval, val, s) for s in common.seeds(args)]
        results.append(common.over_seeds(runs))

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for r, color in zip(results, colors):
        ax.plot(r["steps"], r["train"], "--", color=color, lw=1.2)
        ax.plot(r["steps"], r["val"], "-", color=color, lw=1.6, label=r["label"])
        ax.plot(float(r["best_step"]), float(r["best_val"]), "v", color=color, ms=9)
    first = results[0]
    # The signs: early on (and for a model too small) both curves are high, close and still
    # falling; once the validation curve turns up while the training curve keeps falling, the
    # model has started to memorise its training text.
    ax.axvspan(0, first["steps"][min(2, len(first["steps"]) - 1)], color="tab:blue", alpha=0.08)
    ax.text(
        first["steps"][min(2, len(first["steps"]) - 1)],
        ax.get_ylim()[1],
        " early: under-fitting",
        va="top",
        fontsize=8,
        color="tab:blue",
    )
    if args.small:
        small = results[-1]
        ax.annotate(
            "under-fitting (too small):\ntrain ≈ val, both high",
            (small["steps"][-1], float(small["final_val"])),
            xytext=(-150, -45),
            textcoords="offset points",
            fontsize=8,
            arrowprops={"arrowstyle": "->", "color": "grey"},
        )
    if float(first["best_step"]) < first["steps"][-1]:
        ax.axvspan(float(first["best_step"]), first["steps"][-1], color="tab:red", alpha=0.06)
        ax.annotate(
            "over-fitting (dropout 0):\ntrain falls, val rises,\nthe gap widens",
            (first["steps"][-1], float(first["final_val"])),
            xytext=(-150, 20),
            textcoords="offset points",
            fontsize=8,
            arrowprops={"arrowstyle": "->", "color": "grey"},
        )
    ax.set(
        xlabel="step",
        ylabel="loss (nats/char)",
        title="solid: validation, dashed: training, ▼: best validation",
    )
    ax.legend(fontsize=8)
    fig.suptitle(f"GPT {args.layers}x{args.heads}, d_model {args.d_model}, on {args.chars:,} characters")
    headers = [
        "run",
        "parameters",
        "best val",
        "at step",
        "final train",
        "final val",
        "gap (val − train)",
        "val rise since best",
    ]
    rows = [
        [
            r["label"],
            r["params"],
            r["best_val"],
            r["best_step"],
            r["final_train"],
            r["final_val"],
            r["gap"],
            r["rise"],
        ]
        for r in results
    ]
    notes = [
        f"{len(data.train):,} training characters, {len(data.val):,} validation; block {args.block_size}, "
        f"batch {args.batch}, {args.steps} steps (about {args.steps * args.batch * args.block_size / len(data.train):.0f} "
        f"passes over the training text), AdamW lr {args.lr}, weight decay {args.weight_decay}; "
        f"losses in eval mode over {args.eval_batches} fixed batches every {args.eval_every} steps",
    ]
    common.report("dropout", args, headers, rows, fig, notes)
    return results


if __name__ == "__main__":
    main()
