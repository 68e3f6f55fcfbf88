"""Short vs long context: four position schemes trained at one length, evaluated at 1x, 2x and 4x it.

    python benchmarks/experiments/positions.py [--task periodic|delay] [--train-len 32] [--steps 800]
                                               [--period 5] [--schemes sinusoidal learned rope alibi none]
                                               [--out runs/experiments] [--quick]

The default task (``periodic``): next-symbol prediction on sequences that repeat k random symbols
(``abcdeabcdeab…``, new symbols in every sequence). The first k symbols cannot be predicted;
every later one is the symbol k places back. The rule is the same at every position and every
length, and it can be found two ways: by position (look k − 1 tokens back) or by content (find
the earlier copy of the current symbol and read what followed it). ``--task delay`` leaves only
the first: the inputs are independent random symbols and the target at position t is the input
at t − k (``--period`` is then the lag k), so nothing but relative position can solve it.

The same small decoder (week 4's pre-LN ``TransformerBlock``, causal) is trained with each
scheme of week 3 at length L and then evaluated on fresh sequences of length L, 2L and 4L (loss
and accuracy over the predictable targets only, averaged over whole sequences; the plot also
shows the accuracy at each position of the 4L sequences). Schemes:

* ``sinusoidal``: ``sinusoidal_encoding`` added to the token embeddings;
* ``learned``: ``LearnedPositionalEmbedding(L, d)`` added; it has no row past L − 1, so beyond the
  training length positions are *clamped* to L − 1 (every later token gets the last row);
* ``rope``: ``apply_rope`` on queries and keys in every layer (``TransformerBlock(rope=True)``);
* ``alibi``: ``alibi_bias`` added to the attention scores in every layer;
* ``none``: no positional information at all (a causal decoder's baseline).

The table and ``positions.png`` go to ``--out``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from benchmarks.experiments import common  # noqa: E402
from solutions.w01_attention import causal_mask, softmax  # noqa: E402
from solutions.w02_multihead import merge_heads, split_heads  # noqa: E402
from solutions.w03_positional import LearnedPositionalEmbedding, alibi_bias, sinusoidal_encoding  # noqa: E402
from solutions.w04_blocks import LayerNorm, SelfAttention, TransformerBlock  # noqa: E402
from solutions.w07_training import AdamW, cross_entropy, param_groups, set_seed, train_step  # noqa: E402

SCHEMES = ("sinusoidal", "learned", "rope", "alibi", "none")


class AlibiSelfAttention(SelfAttention):
    """Causal self-attention with week 3's ALiBi bias on the scores (same projections as week 4's):
    softmax(q kᵀ / √d_head + bias, causal) v. x (B, T, d) -> (B, T, d)."""

    def forward(self, x, mask=None, positions=None):
        T = x.size(-2)
        q, k, v = (split_heads(proj(x), self.n_heads) for proj in (self.q_proj, self.k_proj, self.v_proj))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)  # (B, h, T, T)
        scores = scores + alibi_bias(self.n_heads, T, T).to(scores.dtype)  # -m_h · distance
        scores = scores.masked_fill(~causal_mask(T, device=x.device), float("-inf"))
        return self.out_proj(merge_heads(softmax(scores, dim=-1) @ v))


class PositionalDecoder(nn.Module):
    """A small causal decoder whose only varying part is the position scheme.

    forward(idx (B, T)) -> logits (B, T, V). ``train_len`` sizes the learned table.
    """

    def __init__(self, pos: str, vocab: int, d_model: int, n_layers: int, n_heads: int, train_len: int):
        super().__init__()
        if pos not in SCHEMES:
            raise ValueError(f"unknown scheme {pos!r}; choose from {SCHEMES}")
        self.pos = pos
        self.tok_emb = nn.Embedding(vocab, d_model)
        self.pos_emb = LearnedPositionalEmbedding(train_len, d_model) if pos == "learned" else None
        self.blocks = nn.ModuleList(
            TransformerBlock(d_model, n_heads, causal=True, rope=pos == "rope") for _ in range(n_layers)
        )
        if pos == "alibi":
            for block in self.blocks:
                block.attn = AlibiSelfAttention(d_model, n_heads, causal=True)
        self.ln_f = LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.size(1)
        positions = torch.arange(T, device=idx.device)
        x = self.tok_emb(idx)  # (B, T, d)
        if self.pos == "sinusoidal":
            x = x + sinusoidal_encoding(T, x.size(-1)).to(x.device)
        elif self.pos == "learned":
            # No row exists past the table: every later position reuses the last one.
            x = x + self.pos_emb(positions.clamp(max=self.pos_emb.max_len - 1))
        for block in self.blocks:
            x = block(x, positions=positions)
        return self.head(self.ln_f(x))


def delay_batch(batch: int, length: int, k: int, vocab: int, g: torch.Generator):
    """Random symbols; the target at position t is the symbol at t - k (-100 for t < k)."""
    x = torch.randint(vocab, (batch, length), generator=g)
    y = torch.full_like(x, -100)
    y[:, k:] = x[:, :-k]
    return x, y


def periodic_batch(batch: int, length: int, period: int, vocab: int, g: torch.Generator):
    """Sequences that repeat ``period`` random symbols: inputs (B, T), targets (B, T) with -100
    where the next symbol is not yet determined (its first occurrence)."""
    pattern = torch.randint(vocab, (batch, period), generator=g)
    seq = pattern.repeat(1, length // period + 2)[:, : length + 1]  # (B, T + 1)
    x, y = seq[:, :-1], seq[:, 1:].clone()
    y[:, : period - 1] = -100  # targets 1 … k-1 are first occurrences
    return x, y


@torch.no_grad()
def evaluate(model: nn.Module, batches) -> tuple[float, float, torch.Tensor]:
    """Mean loss and accuracy over the predictable targets, and the accuracy at each position (T,)
    (NaN where no target is predictable)."""
    model.eval()
    losses, hits, counts = [], 0, 0
    for x, y in batches:
        logits = model(x)
        losses.append(float(cross_entropy(logits, y)))
        keep = y != -100  # (B, T)
        hits = hits + ((logits.argmax(-1) == y) & keep).sum(0)  # (T,)
        counts = counts + keep.sum(0)
    per_position = hits / counts.clamp(min=1)
    per_position[counts == 0] = float("nan")
    return sum(losses) / len(losses), float(hits.sum() / counts.sum()), per_position


def main(argv: list[str] | None = None) -> list[dict]:
    p = common.parser(__doc__)
    p.add_argument("--schemes", nargs="+", default=list(SCHEMES), choices=SCHEMES)
    p.add_argument("--train-len", type=int, default=32, help="L, the training length")
    p.add_argument(
        "--period", type=int, default=5, help="k: the period (periodic task) or the lag (delay task)"
    )
    p.add_argument("--vocab", type=int, default=16)
    p.add_argument("--task", default="periodic", choices=("periodic", "delay"))
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--eval-batches", type=int, default=8)
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.batch, args.eval_batches, args.train_len, args.d_model = 6, 4, 1, 12, 32
    common.setup(args, argv)
    make = periodic_batch if args.task == "periodic" else delay_batch
    L, factors = args.train_len, (1, 2, 4)
    schedule = common.cosine_lr(args.lr, args.steps, warmup=args.steps // 10)
    eval_sets = {
        f: [
            make(args.batch, f * L, args.period, args.vocab, torch.Generator().manual_seed(10_000 + i))
            for i in range(args.eval_batches)
        ]
        for f in factors
    }
    results = []
    for pos in args.schemes:
        runs = []
        for seed in common.seeds(args):
            set_seed(seed)
            model = PositionalDecoder(pos, args.vocab, args.d_model, args.layers, args.heads, L)
            optimizer = AdamW(param_groups(model, 0.1), lr=args.lr)
            g = torch.Generator().manual_seed(seed)
            with common.Timer() as t:
                for step in range(args.steps):
                    batch = make(args.batch, L, args.period, args.vocab, g)
                    train_step(model, optimizer, [batch], max_norm=1.0, lr=schedule(step))
            run = {"scheme": pos, "train_s": t.seconds}
            for f in factors:
                run[f"loss_{f}x"], run[f"acc_{f}x"], run["per_position"] = evaluate(model, eval_sets[f])
            runs.append(run)
        results.append(common.over_seeds(runs))
        print(f"  {pos}: trained in {t.seconds:.1f} s", file=sys.stderr)

    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    width = max(1, L // 8)  # a moving average over a few positions keeps the curves readable
    for row in results:
        acc = row["per_position"]  # at the longest length, 4L
        smooth = torch.nn.functional.avg_pool1d(acc.nan_to_num(1.0)[None, None], width, 1).flatten()
        start = (acc.isnan().sum().item()) if acc.isnan().any() else 0
        xs = torch.arange(len(smooth)) + (width - 1) / 2
        left.plot(xs[start:], smooth[start:], label=row["scheme"], lw=1.2)
        right.plot(
            [f * L for f in factors], [float(row[f"acc_{f}x"]) for f in factors], "o-", label=row["scheme"]
        )
    for ax in (left, right):
        ax.axvline(L, color="grey", ls=":", lw=1)
        ax.axhline(1 / args.vocab, color="grey", ls="--", lw=1)
        ax.set_ylim(0, 1.05)
    left.text(L, 0.02, " training length L", color="grey")
    left.set(
        xlabel="position in a sequence of 4L tokens", ylabel="accuracy", title="accuracy by position (4L)"
    )
    right.set_xscale("log", base=2)
    right.set_xticks([f * L for f in factors], [f"{f * L} ({f}x)" for f in factors])
    right.set(xlabel="evaluation length", title="accuracy over whole sequences")
    right.legend(fontsize=8)
    fig.suptitle(f"{args.task} task, trained at L={L}; dashed: chance")
    headers = ["scheme", *[f"{m} @{f}L" for m in ("acc", "loss") for f in factors]]
    rows = [
        [
            r["scheme"] + (" (clamped)" if r["scheme"] == "learned" else ""),
            *[r[f"{m}_{f}x"] for m in ("acc", "loss") for f in factors],
        ]
        for r in results
    ]
    notes = [
        f"L={L}, {'period' if args.task == 'periodic' else 'lag'} {args.period}, vocab {args.vocab}, {args.layers} layers x {args.heads} heads, "
        f"d_model {args.d_model}, {args.steps} steps of batch {args.batch}; chance accuracy {1 / args.vocab:.4f}",
        "learned (clamped): positions >= L reuse the table's last row (the table has no row for them)",
    ]
    common.report("positions", args, headers, rows, fig, notes)
    return results


if __name__ == "__main__":
    main()
