"""Tokens per second of greedy generation with and without the KV cache (week 6).

    python benchmarks/kv_cache.py [--new-tokens 256] [--prompt 16] [--layers 4] [--d-model 128]
                                  [--heads 4] [--threads N] [--solutions | --exercises]

Without a cache every step re-runs the model on the whole context (cost grows with its length,
so the total is quadratic in the number of tokens); with one, each step runs one token through
the model and attends to the cached keys and values. The two runs must produce the same tokens.
Figures depend on the machine: read them, do not assert them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def tokens_per_second(
    wk, model, prompt: torch.Tensor, new: int, use_cache: bool, repeats: int
) -> tuple[float, torch.Tensor]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = wk.generate(model, prompt, new, temperature=0.0, use_cache=use_cache)
        best = min(best, time.perf_counter() - start)
    return new * prompt.size(0) / best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--prompt", type=int, default=16, help="prompt length")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=65)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--impl", default="solutions", choices=("solutions", "exercises"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    wk = importlib.import_module(f"{args.impl}.w06_decoder")
    torch.manual_seed(0)
    config = wk.GPTConfig(
        vocab_size=args.vocab,
        block_size=args.prompt + args.new_tokens,
        n_layers=args.layers,
        n_heads=args.heads,
        d_model=args.d_model,
    )
    model = wk.GPT(config).eval()
    prompt = torch.randint(args.vocab, (args.batch, args.prompt))
    print(
        f"GPT {args.layers} layers x {args.heads} heads, d_model {args.d_model}, vocab {args.vocab}; "
        f"batch {args.batch}, prompt {args.prompt}, {args.new_tokens} new tokens, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    with_cache, a = tokens_per_second(wk, model, prompt, args.new_tokens, True, args.repeats)
    without, b = tokens_per_second(wk, model, prompt, args.new_tokens, False, args.repeats)
    print(f"with KV cache:    {with_cache:10.1f} tokens/s")
    print(f"without cache:    {without:10.1f} tokens/s")
    print(f"speed-up:         {with_cache / without:10.1f}x")
    print(f"same tokens:      {torch.equal(a, b)}")


if __name__ == "__main__":
    main()
