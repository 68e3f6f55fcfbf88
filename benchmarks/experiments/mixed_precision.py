"""Mixed precision: fp32, bf16 autocast, and fp16 autocast with a GradScaler (and clipping done right and wrong).

    python benchmarks/experiments/mixed_precision.py [--steps 300] [--init-scale 16777216]
                                                     [--growth-interval 50] [--out runs/experiments] [--quick]

Week 6's ``GPT`` (2 layers, 4 heads, d_model 64) is trained on tiny Shakespeare characters with
week 7's ``AdamW``, ``clip_grad_norm`` (max norm 1) and ``cross_entropy`` (float32 inside), the
same data and seed in every run:

* ``fp32``: no autocast (week 7's ``train_step``);
* ``bf16``: ``torch.autocast("cpu", dtype=torch.bfloat16)`` (``train_step(amp_dtype=…)``): float32's
  exponent range, so nothing overflows and no scaler is needed;
* ``fp16 + scaler``: ``torch.autocast("cpu", dtype=torch.float16)`` and
  ``torch.amp.GradScaler("cpu")`` in the documented order
  ``scale(loss).backward() → unscale_(opt) → clip → step(opt) → update()``. The scale starts
  large (``--init-scale``, 2^24) so that the first gradients overflow: each overflowing step is
  *skipped* (``step`` does not call the optimizer) and ``update`` halves the scale; after
  ``--growth-interval`` clean steps it doubles again, and overflows again now and then;
* ``fp16, clip before unscale_``: the same, but clipping the *scaled* gradients (the bug): their
  norm is the true norm times the scale, so the clip fires at every step and, once ``step``
  unscales, the update uses a gradient of norm ``max_norm / scale`` instead of the true one;
* the last two again with SGD (momentum 0.9) instead of AdamW: Adam divides each update by the
  gradient's own running size, which hides a gradient shrunk by a constant; SGD does not.

Counted per run: skipped steps (the scale went down at ``update``), the final scale, the median
gradient norm that ``clip_grad_norm`` returned (what a log would show), how often it clipped,
and the losses (evaluated in float32). The table and ``mixed_precision.png`` go to ``--out``.
float16 autocast and ``GradScaler`` run on the CPU in recent PyTorch (checked at start-up);
16-bit matrix products are *slower* than float32 on most CPUs, so the times only compare costs.
"""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

from benchmarks.experiments import common  # noqa: E402
from solutions.w06_decoder import GPT, GPTConfig  # noqa: E402
from solutions.w07_training import AdamW, clip_grad_norm, cross_entropy, param_groups, set_seed, train_step  # noqa: E402

RUNS = (
    # label, precision, clipping order, optimizer
    ("fp32", "fp32", "-", "adamw"),
    ("bf16 autocast", "bf16", "-", "adamw"),
    ("fp16 + scaler", "fp16", "unscale, then clip", "adamw"),
    ("fp16 + scaler, clip before unscale_", "fp16", "clip, then unscale", "adamw"),
    ("fp16 + scaler (SGD)", "fp16", "unscale, then clip", "sgd"),
    ("fp16 + scaler, clip before unscale_ (SGD)", "fp16", "clip, then unscale", "sgd"),
)


def fp16_supported() -> str | None:
    """None when float16 autocast and a CPU GradScaler work here, else why not."""
    try:
        w = torch.ones(2, 2, requires_grad=True)
        with torch.autocast("cpu", dtype=torch.float16):
            out = w @ w
        if out.dtype != torch.float16:
            return f"autocast on the CPU gave {out.dtype}, not float16"
        scaler = torch.amp.GradScaler("cpu")
        scaler.scale(out.float().sum()).backward()
        opt = torch.optim.SGD([w], lr=0.1)
        scaler.unscale_(opt)
        scaler.step(opt)
        scaler.update()
    except Exception as exc:  # an older torch: no CPU float16 autocast or no CPU scaler
        return f"{type(exc).__name__}: {exc}"
    return None


def make_optimizer(name: str, model, lr: float):
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return AdamW(param_groups(model, 0.1), lr=lr, betas=(0.9, 0.99))


def run(label, precision, order, opt_name, data, args, seed: int) -> dict:
    set_seed(seed)
    config = GPTConfig(
        vocab_size=data.vocab_size, block_size=args.block_size, n_layers=2, n_heads=4, d_model=args.d_model
    )
    model = GPT(config)
    lr = args.lr if opt_name == "adamw" else args.sgd_lr
    optimizer = make_optimizer(opt_name, model, lr)
    schedule = common.cosine_lr(lr, args.steps, warmup=max(1, args.steps // 10))
    params = [p for p in model.parameters()]
    scaler = None
    if precision == "fp16":
        scaler = torch.amp.GradScaler("cpu", init_scale=args.init_scale, growth_interval=args.growth_interval)
    g = torch.Generator().manual_seed(seed)
    losses, norms, scales, skipped_at, clipped = [], [], [], [], 0
    with common.Timer() as t:
        for step in range(args.steps):
            x, y = data.batch("train", args.batch, args.block_size, g)
            for group in optimizer.param_groups:
                group["lr"] = schedule(step)
            if scaler is None:  # fp32 or bf16: week 7's train_step, no scaling needed
                amp = torch.bfloat16 if precision == "bf16" else None
                out = train_step(model, optimizer, [(x, y)], max_norm=args.max_norm, amp_dtype=amp)
                loss, norm = out["loss"], out["grad_norm"]
            else:
                with torch.autocast("cpu", dtype=torch.float16):
                    logits, _ = model(x)
                    loss_t = cross_entropy(logits, y)  # float32 inside, whatever the logits' dtype
                scale = scaler.get_scale()
                scaler.scale(loss_t).backward()  # gradients of loss · scale
                if order == "unscale, then clip":
                    scaler.unscale_(optimizer)  # divide by the scale (records infs/NaNs)
                    norm = float(clip_grad_norm(params, args.max_norm))  # on the true gradients
                else:
                    norm = float(clip_grad_norm(params, args.max_norm))  # on gradients × scale: wrong
                scaler.step(optimizer)  # skipped when a gradient was inf/NaN (unscales first if needed)
                scaler.update()  # halve the scale after an overflow, double it after growth_interval
                optimizer.zero_grad(set_to_none=True)
                if scaler.get_scale() < scale:
                    skipped_at.append(step)
                scales.append(scale)  # the scale this step's backward used
                loss = loss_t.item()
            losses.append(loss)
            norms.append(norm)
            clipped += math.isfinite(norm) and norm > args.max_norm
    finite = [n for n in norms if math.isfinite(n)]
    print(f"  {label}: {t.seconds:.1f} s", file=sys.stderr)
    return {
        "label": label,
        "precision": precision,
        "order": order,
        "optimizer": opt_name,
        "losses": torch.tensor(losses),  # averaged over seeds; scales and skips are the first seed's
        "scales": scales,
        "skipped_at": skipped_at,
        "skipped": len(skipped_at),
        "final_scale": scaler.get_scale() if scaler else None,
        "median_norm": statistics.median(finite) if finite else float("nan"),
        "clipped_pct": 100.0 * clipped / args.steps,
        "train_loss": common.mean_loss(model, args.train_eval),
        "val_loss": common.mean_loss(model, args.val),
        "ms_per_step": 1000 * t.seconds / args.steps,
    }


def scale_text(scale) -> str:
    """The final scale as a power of two; over several seeds, the range ("2^17–2^18")."""
    if scale is None:
        return "-"
    values = scale.values if isinstance(scale, common.Spread) else (scale,)
    low, high = min(round(math.log2(v)) for v in values), max(round(math.log2(v)) for v in values)
    return f"2^{low}" if low == high else f"2^{low}–2^{high}"


def main(argv: list[str] | None = None) -> list[dict]:
    p = common.parser(__doc__)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--block-size", type=int, default=32)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3, help="AdamW's peak learning rate")
    p.add_argument("--sgd-lr", type=float, default=0.3, help="SGD's peak learning rate")
    p.add_argument("--max-norm", type=float, default=1.0)
    p.add_argument("--init-scale", type=float, default=2.0**24)
    p.add_argument("--growth-interval", type=int, default=50)
    p.add_argument("--eval-batches", type=int, default=8)
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.batch, args.block_size, args.eval_batches, args.growth_interval = 8, 4, 16, 1, 2
        args.init_scale = 2.0**18  # a skip or two, then clean steps
    common.setup(args, argv)
    problem = fp16_supported()
    runs = [r for r in RUNS if problem is None or r[1] != "fp16"]
    if problem:
        print(f"float16 autocast / GradScaler unavailable on this CPU ({problem}): fp16 runs left out")
    data = common.CharData.shakespeare()
    args.val = data.fixed_batches("val", args.eval_batches, args.batch, args.block_size, seed=1)
    args.train_eval = data.fixed_batches("train", args.eval_batches, args.batch, args.block_size, seed=2)
    results = [common.over_seeds([run(*spec, data, args, s) for s in common.seeds(args)]) for spec in runs]

    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    window = max(1, args.steps // 30)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for r, color in zip(results, colors):
        curve = r["losses"]
        curve = torch.nn.functional.avg_pool1d(curve[None, None], window, 1).flatten()
        style = ":" if r["optimizer"] == "sgd" else "-"
        steps = torch.arange(len(curve)) + window - 1
        left.plot(steps, curve, style, color=color, label=r["label"], lw=1.3)
        if r["scales"]:
            right.plot([math.log2(s) for s in r["scales"]], style, color=color, label=r["label"])
            skipped = [math.log2(r["scales"][s]) for s in r["skipped_at"]]
            right.plot(r["skipped_at"], skipped, "x", color=color)
    left.set(xlabel="step", ylabel="training loss (moving average)", title="loss")
    left.legend(fontsize=7, loc="upper right", bbox_to_anchor=(1, 0.93))
    right.set(
        xlabel="step", ylabel="log2(scale)", title="GradScaler's scale; x: skipped step (inf/NaN gradient)"
    )
    right.legend(fontsize=7)
    fig.suptitle(f"GPT 2x4, d_model {args.d_model}: fp32, bf16 and fp16 on the CPU; clip at {args.max_norm}")
    headers = [
        "run",
        "optimizer",
        "skipped steps",
        "final scale",
        "median logged grad norm",
        "clipped %",
        "train loss",
        "val loss",
        "ms/step",
    ]
    rows = [
        [
            r["label"],
            r["optimizer"],
            r["skipped"],
            scale_text(r["final_scale"]),
            r["median_norm"],
            f"{float(r['clipped_pct']):.0f}",
            r["train_loss"],
            r["val_loss"],
            f"{float(r['ms_per_step']):.1f}",
        ]
        for r in results
    ]
    notes = [
        f"{args.steps} steps, batch {args.batch} x {args.block_size} characters, GradScaler(init_scale="
        f"2^{math.log2(args.init_scale):g}, growth_interval={args.growth_interval}); AdamW lr {args.lr}, "
        f"SGD lr {args.sgd_lr}; losses in float32 over {args.eval_batches} fixed batches",
        "fp16 on this CPU: " + ("supported (autocast and GradScaler('cpu'))" if problem is None else problem),
    ]
    common.report("mixed_precision", args, headers, rows, fig, notes)
    return results


if __name__ == "__main__":
    main()
