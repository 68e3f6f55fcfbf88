"""The capstone on nanoGPT's default GPU benchmark (shakespeare_char), on one CUDA device.

    python benchmarks/capstone_gpu.py [--impl solutions] [--no-rope] [--no-compile] [--max-steps 5000]

nanoGPT's configuration: 6 layers, 6 heads, d=384, block 256, batch 64, dropout 0.2, lr 1e-3
with 100 warm-up steps and cosine decay to 1e-4 at 5000, AdamW (0.9, 0.99), weight decay 0.1,
clipping at 1, evaluation every 250 steps over 200 batches. Run with what makes small-model
training fast: bf16 autocast, ``torch.compile``, the fused AdamW kernel, fused (flash)
attention, and rotary position embeddings.

Prints the wall time until the first evaluation at or below 1.47 (the training loop,
evaluations and compilation included, as measured for nanoGPT) and the best validation loss.
nanoGPT on one H100: first val <= 1.47 at step 1750, about 71 s; best 1.4609; 15.66 ms/iter.
Figures to read, not assertions.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from autograder.tools.data import dataset_path  # noqa: E402

TARGET = 1.47
EVAL_LINE = re.compile(r"step (\d+): train ([\d.]+), val ([\d.]+) .*; ([\d.]+) s since the start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", default="solutions", choices=("solutions", "exercises"))
    parser.add_argument("--rope", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--max-steps", type=int, default=5000)
    parser.add_argument("--data", help="the text file (default: the verified tiny Shakespeare)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("capstone_gpu.py needs a CUDA device (see benchmarks/capstone_cpu.py for the CPU benchmark)")
    pkg = importlib.import_module(f"{args.impl}.w09_capstone")
    config = replace(
        pkg.TrainConfig(),
        data=str(args.data or dataset_path("shakespeare")),
        n_layers=6,
        n_heads=6,
        d_model=384,
        block_size=256,
        batch_size=64,
        dropout=0.2,
        rope=args.rope,
        max_steps=args.max_steps,
        lr_decay_steps=5000,
        lr=1e-3,
        min_lr=1e-4,
        warmup_steps=100,
        eval_interval=250,
        eval_iters=200,
        log_interval=50,
        device="cuda",
        dtype="bfloat16",
        compile=args.compile,
        fused_adamw=True,
        progress=False,
    )
    with tempfile.TemporaryDirectory() as tmp:
        result = pkg.train(replace(config, out_dir=tmp, run_id="bench"))
        evals = [
            m.groups()
            for m in map(EVAL_LINE.search, (Path(tmp) / "bench" / "log.txt").read_text().splitlines())
            if m
        ]
    reached = next(((int(s), float(v), float(t)) for s, _, v, t in evals if float(v) <= TARGET), None)
    print(
        f"capstone ({args.impl}) on {torch.cuda.get_device_name()}: rope={args.rope}, compile={args.compile}, bf16"
    )
    for step, train_loss, val, seconds in evals:
        print(
            f"  step {int(step):>5}  train {float(train_loss):.4f}  val {float(val):.4f}  at {float(seconds):7.1f} s"
        )
    if reached:
        print(f"first val <= {TARGET}: step {reached[0]}, {reached[2]:.1f} s (nanoGPT: step 1750, ~71 s)")
    else:
        print(f"val never reached {TARGET}")
    print(f"best val {result.best_val:.4f} (nanoGPT: 1.4609)")


if __name__ == "__main__":
    main()
