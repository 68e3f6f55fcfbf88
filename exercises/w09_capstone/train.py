"""Training: one config, one loop, a run directory that tells the story afterwards.

    course train --max-steps 2000 --rope                         # flags, or
    course train --config my_run.toml --lr 3e-4                  # a TOML file, flags win
    course train --resume runs/20250101-120000                   # continue exactly where it stopped
    torchrun --nproc_per_node 2 -m autograder train ...          # data-parallel (DDP), same global batch

Every run writes ``runs/<run_id>/`` (``runs/`` under the working directory, so a run stays
with the repository, never in a temporary directory):

    config.json    every setting of the run (the resolved TrainConfig)
    metrics.csv    step, train_loss, val_loss, perplexity, lr, tokens_per_s, grad_norm (val columns on
                   eval steps; grad_norm is the global gradient norm before clipping)
    samples.md     at every evaluation, the same prompt continued with the same seed, with the step
                   and the validation loss: the samples read as the model's history
    log.txt        a readable log: config, evaluations, checkpoints, resumes, timing
    tokenizer.json the tokenizer (also stored inside each checkpoint)
    ckpt.pt        the latest checkpoint: model, optimizer, step, RNG states (for --resume)
    best.pt        the checkpoint with the lowest validation loss so far (for sampling)

Checkpoints hold only tensors, numbers, strings and containers of them (state dicts), and
are always read with ``torch.load(..., weights_only=True)``, which cannot run code.

The recipe comes from week 7: linear warm-up then cosine decay (`lr_schedule`), global
gradient-norm clipping (`clip_grad_norm`), AdamW with weight decay on matrices only
(`param_groups`), every generator seeded (`set_seed`).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import re
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from ..w07_training import clip_grad_norm, lr_schedule, param_groups, set_seed
from .data import get_batch, load_text, train_val_split
from .model import GPTConfig, MiniGPT
from .tokenizers import BPETokenizer, CharTokenizer, load_tokenizer

METRIC_COLUMNS = ("step", "train_loss", "val_loss", "perplexity", "lr", "tokens_per_s", "grad_norm")
MODEL_FIELDS = ("n_layers", "n_heads", "d_model", "block_size", "dropout", "bias", "rope", "tie_weights")


@dataclass
class TrainConfig:
    """Every setting of a training run. Flags use dashes (``--max-steps``), TOML files the
    field names (``max_steps = 2000``). The defaults are nanoGPT's CPU configuration for
    tiny Shakespeare (4 layers, 4 heads, d=128, block 64, batch 12, 2000 steps)."""

    # data
    data: str = ""  # the text file; "" = the course's tiny Shakespeare (`course data shakespeare`)
    tokenizer: str = "char"  # "char" or "bpe"
    bpe_vocab_size: int = 512
    train_frac: float = 0.9
    # model
    n_layers: int = 4
    n_heads: int = 4
    d_model: int = 128
    block_size: int = 64
    dropout: float = 0.0
    bias: bool = False
    rope: bool = False
    tie_weights: bool = True  # the output head shares the token embedding (--no-tie-weights: its own matrix)
    # optimisation
    batch_size: int = 12  # the *global* batch: split across processes under DDP
    max_steps: int = 2000
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    lr_decay_steps: int = 0  # where the cosine reaches min_lr; 0 = max_steps
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # 0 = no clipping
    # evaluation and logging
    eval_interval: int = 250
    eval_iters: int = 20
    log_interval: int = 10
    sample_tokens: int = 100  # tokens generated into samples.md at every evaluation; 0 = none
    sample_prompt: str = "\n"  # the prompt they continue (the validation text's first token if unknown)
    sample_temperature: float = 0.8
    # the run
    seed: int = 1337
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    dtype: str = "float32"  # float32, or bfloat16 (autocast; parameters stay float32)
    compile: bool = False  # torch.compile the model
    fused_adamw: bool = False  # the fused AdamW kernel (CUDA and CPU)
    threads: int = 0  # torch.set_num_threads on CPU; 0 = PyTorch's default
    out_dir: str = "runs"
    run_id: str = ""  # "" = a timestamp
    resume: str = ""  # a run directory (or its ckpt.pt) to continue
    progress: bool = True  # the progress bar


@dataclass
class TrainResult:
    run_dir: Path
    model: MiniGPT
    tokenizer: CharTokenizer | BPETokenizer
    step: int
    losses: dict[str, float] = field(default_factory=dict)  # the last evaluation: {"train", "val"}
    best_val: float = math.inf


# --------------------------------------------------------------------------- the student's part
def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    lr: float,
    grad_clip: float = 0.0,
    amp_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer update on the batch x, y (B, T). Returns ``(loss, grad_norm)``, both
    detached 0-dim tensors: the batch's loss and the global L2 norm of the gradients *before*
    clipping (what metrics.csv logs as ``grad_norm``).

    In order: set every param group's learning rate to ``lr``; forward ``model(x, y)`` (under
    ``torch.autocast(device_type, dtype=amp_dtype)`` when ``amp_dtype`` is given) to get the
    loss; backward; clip the global gradient norm to ``grad_clip`` with week 7's
    ``clip_grad_norm``, which returns the norm before clipping (``grad_clip`` 0 means no
    clipping: measure the norm all the same, e.g. with ``max_norm=math.inf``, which scales by 1);
    ``optimizer.step()``; clear the gradients so the next step starts from zero.
    """
    raise NotImplementedError("w09: implement train_step; see course/w09_capstone/notes.md")


@torch.no_grad()
def estimate_loss(
    model: torch.nn.Module,
    splits: dict[str, torch.Tensor],
    *,
    block_size: int,
    batch_size: int,
    eval_iters: int,
    seed: int = 0,
    device: str | torch.device | None = None,
    amp_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Mean loss of ``model`` over ``eval_iters`` random batches of each split.

    splits: ``{"train": (N,) ids, "val": (M,) ids}``. Each split draws its batches with
    `get_batch` from a fresh ``torch.Generator().manual_seed(seed)``, so every evaluation of
    a run sees the same batches and curves are comparable. The model is put in eval mode
    (no dropout) and back in train mode afterwards. Returns ``{"train": float, "val": float}``.
    """
    raise NotImplementedError("w09: implement estimate_loss; see course/w09_capstone/notes.md")


def _autocast(device_type: str, amp_dtype: torch.dtype | None):
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=amp_dtype)


# --------------------------------------------------------------------------- set-up
def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA if present, else Apple's MPS, else the CPU."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def model_config(config: TrainConfig, vocab_size: int) -> GPTConfig:
    return GPTConfig(vocab_size=vocab_size, **{k: getattr(config, k) for k in MODEL_FIELDS})


def make_optimizer(model: torch.nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over week 7's two groups: weight decay on matrices, none on gains and biases."""
    return torch.optim.AdamW(
        param_groups(model, config.weight_decay),
        lr=config.lr,
        betas=(config.beta1, config.beta2),
        # One kernel for the whole update instead of several per tensor (CUDA and CPU).
        **({"fused": True} if config.fused_adamw else {}),
    )


def build_tokenizer(config: TrainConfig, text: str):
    if config.tokenizer == "char":
        return CharTokenizer.from_text(text)
    if config.tokenizer == "bpe":
        # Learnt from the training part of the text only: validation stays unseen.
        return BPETokenizer.train(text[: int(config.train_frac * len(text))], config.bpe_vocab_size)
    raise ValueError(f"unknown tokenizer {config.tokenizer!r}: use 'char' or 'bpe'")


@dataclass
class Distributed:
    """Where this process stands in a torchrun job (rank 0 of 1 without one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_name: str) -> Distributed:
    """Join the process group torchrun describes in RANK / WORLD_SIZE / LOCAL_RANK:
    NCCL between GPUs, gloo on CPUs."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda") or device_name.startswith("cuda")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local_rank)
    return Distributed(rank, world_size, local_rank)


# --------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` (state dicts and plain data) so that a crash never leaves half a file."""
    tmp = Path(path).with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint safely: ``weights_only=True`` refuses anything but tensors and plain data."""
    path = Path(path)
    if path.is_dir():
        path = path / "ckpt.pt"
    return torch.load(path, map_location=map_location, weights_only=True)


def checkpoint_state(raw_model, optimizer, step, config, tokenizer, batch_gen, best_val, ddp) -> dict:
    """Everything an exact resume needs, as plain data."""
    rng = torch.get_rng_state()  # dropout masks come from here
    cuda_rng = torch.cuda.get_rng_state() if torch.cuda.is_available() else None
    if ddp.enabled:  # each process has its own dropout stream: keep them all
        rngs, cuda_rngs = [None] * ddp.world_size, [None] * ddp.world_size
        dist.all_gather_object(rngs, rng)
        dist.all_gather_object(cuda_rngs, cuda_rng)
    else:
        rngs, cuda_rngs = [rng], [cuda_rng]
    return {
        "model": raw_model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "config": asdict(config),
        "model_config": asdict(raw_model.config),
        "tokenizer": tokenizer.state_dict(),
        "rng": {
            "torch": rngs,
            "cuda": [r for r in cuda_rngs if r is not None],
            "batches": batch_gen.get_state(),
        },
        "best_val": best_val,
    }


# --------------------------------------------------------------------------- the run directory
class RunLog:
    """The run directory's files. Only the main process writes; the others hold a no-op."""

    def __init__(self, run_dir: Path, active: bool, resume_step: int | None = None):
        self.run_dir, self.active = run_dir, active
        if not active:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = run_dir / "metrics.csv"
        self.samples = run_dir / "samples.md"
        if resume_step is not None and self.metrics.exists():
            # Rows past the checkpoint are from steps that will be run again.
            with open(self.metrics, newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= resume_step]
            self._write_rows(rows)
            if self.samples.exists():  # so are the samples past it
                head, *sections = re.split(r"(?m)^(?=## step \d+)", self.samples.read_text())
                kept = [t for t in sections if int(t.split()[2]) <= resume_step]
                self.samples.write_text(head + "".join(kept))
        else:  # a new run (a folder left by a run that crashed before its first checkpoint starts over)
            self._write_rows([])
            (run_dir / "log.txt").unlink(missing_ok=True)
            self.samples.unlink(missing_ok=True)

    def _write_rows(self, rows: list[dict]) -> None:
        with open(self.metrics, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=METRIC_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

    def row(self, **values) -> None:
        if self.active:
            with open(self.metrics, "a", newline="") as fh:
                csv.DictWriter(fh, fieldnames=METRIC_COLUMNS).writerow(
                    {k: _fmt(values.get(k)) for k in METRIC_COLUMNS}
                )

    def log(self, message: str) -> None:
        if self.active:
            with open(self.run_dir / "log.txt", "a") as fh:
                fh.write(f"{datetime.now().isoformat(timespec='seconds')}  {message}\n")

    def sample(self, step: int, val_loss: float, text: str, settings: str) -> None:
        """Append one evaluation's sample to samples.md (the header first, once)."""
        if not self.active:
            return
        with open(self.samples, "a") as fh:
            if fh.tell() == 0:
                fh.write(f"# Samples during training\n\n{settings}\n\n")
            fh.write(f"## step {step} · val loss {val_loss:.4f}\n\n```text\n{text}\n```\n\n")


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _new_run_id(ddp: Distributed) -> str:
    run_id = [datetime.now().strftime("%Y%m%d-%H%M%S")]
    if ddp.enabled:  # every process must agree on the directory
        dist.broadcast_object_list(run_id, src=0)
    return run_id[0]


# --------------------------------------------------------------------------- the loop
def train(config: TrainConfig) -> TrainResult:
    """Train (or, with ``config.resume``, continue) a Mini-GPT; see the module docstring."""
    ddp = setup_distributed(config.device)
    device = torch.device(f"cuda:{ddp.local_rank}") if ddp.enabled and torch.cuda.is_available() else None
    device = device or pick_device(config.device)
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    if config.batch_size % ddp.world_size:
        raise ValueError(f"batch_size={config.batch_size} must be divisible by {ddp.world_size} processes")
    if config.dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype must be float32 or bfloat16, got {config.dtype!r}")
    amp_dtype = torch.bfloat16 if config.dtype == "bfloat16" else None
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # float32 matmuls on tensor cores
        torch.backends.cudnn.allow_tf32 = True
    if not config.data:
        raise ValueError("config.data is empty: give the text file (--data PATH)")

    # Resuming: the checkpoint decides where we are.
    checkpoint = None
    if config.resume:
        resume = Path(config.resume)
        checkpoint = load_checkpoint(resume)
        run_dir = resume if resume.is_dir() else resume.parent
        saved = checkpoint["config"]
        defaults = TrainConfig()  # for settings a checkpoint from an older version does not hold
        changed = [
            k
            for k in MODEL_FIELDS + ("tokenizer", "data")
            if saved.get(k, getattr(defaults, k)) != getattr(config, k)
        ]
        if changed:
            raise ValueError(f"cannot resume {run_dir} with a different {', '.join(changed)}")
    else:
        run_dir = Path(config.out_dir) / (config.run_id or _new_run_id(ddp))
        if (run_dir / "ckpt.pt").exists():
            raise FileExistsError(
                f"{run_dir} already holds a run: pass --resume {run_dir} or another --run-id"
            )

    # Data and tokenizer.
    text = load_text(config.data)
    tokenizer = load_tokenizer(checkpoint["tokenizer"]) if checkpoint else build_tokenizer(config, text)
    data = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    splits = dict(zip(("train", "val"), train_val_split(data, config.train_frac)))
    prompt = sample_prompt(config.sample_prompt, tokenizer, splits["val"] if len(splits["val"]) else data)

    # Model and optimizer: the same seed gives every process the same initial weights.
    set_seed(config.seed)
    raw_model = MiniGPT(model_config(config, tokenizer.vocab_size)).to(device)
    optimizer = make_optimizer(raw_model, config, device)
    batch_gen = torch.Generator().manual_seed(config.seed)  # training batches, identical on every rank
    torch.manual_seed(config.seed + ddp.rank)  # dropout: a different stream per process
    step, best_val = 0, math.inf
    if checkpoint:
        raw_model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        step, best_val = checkpoint["step"], checkpoint["best_val"]
        batch_gen.set_state(checkpoint["rng"]["batches"])
        rngs = checkpoint["rng"]["torch"]
        torch.set_rng_state(rngs[ddp.rank] if ddp.rank < len(rngs) else rngs[0])
        if device.type == "cuda" and checkpoint["rng"]["cuda"]:
            torch.cuda.set_rng_state(
                checkpoint["rng"]["cuda"][min(ddp.rank, len(checkpoint["rng"]["cuda"]) - 1)]
            )
    model = raw_model
    if ddp.enabled:  # averages the gradients over the processes during backward()
        model = DDP(model, device_ids=[ddp.local_rank] if device.type == "cuda" else None)
    if config.compile:  # compile last: with DDP, the compiler splits graphs at gradient buckets
        model = torch.compile(model)
    eval_model = raw_model if ddp.enabled else model  # evaluation needs no gradient averaging

    run = RunLog(run_dir, ddp.main, resume_step=step if checkpoint else None)
    if ddp.main:
        (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
        tokenizer.save(run_dir / "tokenizer.json")
    run.log(
        f"{'resumed at step ' + str(step) if checkpoint else 'started'}: {raw_model.num_params():,} parameters, "
        f"vocab {tokenizer.vocab_size}, {len(splits['train']):,} train / {len(splits['val']):,} val tokens, "
        f"device {device}, {ddp.world_size} process(es), dtype {config.dtype}, compile {config.compile}"
    )
    run.log("config " + json.dumps(asdict(config)))
    if config.sample_tokens > 0 and prompt != config.sample_prompt:
        run.log(f"sample prompt {config.sample_prompt!r} cannot be encoded; samples continue {prompt!r}")
    sample_settings = (
        f"Prompt {prompt!r}, {config.sample_tokens} new tokens at temperature {config.sample_temperature}, "
        f"seed {config.seed}: the same draw at every evaluation, so only the model changes."
    )

    decay_steps = config.lr_decay_steps or config.max_steps
    local_batch = config.batch_size // ddp.world_size
    shard = slice(ddp.rank * local_batch, (ddp.rank + 1) * local_batch)
    tokens_per_step = config.batch_size * config.block_size
    eval_kwargs = dict(
        block_size=config.block_size,
        batch_size=config.batch_size,
        eval_iters=config.eval_iters,
        seed=config.seed + 1,
        device=device,
        amp_dtype=amp_dtype,
    )

    def evaluate_and_save(step: int) -> dict[str, float]:
        nonlocal best_val
        losses = estimate_loss(eval_model, splits, **eval_kwargs)
        improved = losses["val"] < best_val
        best_val = min(best_val, losses["val"])
        state = checkpoint_state(raw_model, optimizer, step, config, tokenizer, batch_gen, best_val, ddp)
        if ddp.main:
            save_checkpoint(run_dir / "ckpt.pt", state)
            if improved:
                save_checkpoint(run_dir / "best.pt", {k: v for k, v in state.items() if k != "optimizer"})
        run.log(
            f"step {step}: train {losses['train']:.4f}, val {losses['val']:.4f} "
            f"(perplexity {math.exp(losses['val']):.2f}); saved ckpt.pt{' and best.pt' if improved else ''}; "
            f"{time.perf_counter() - started:.1f} s since the start"
        )
        if config.sample_tokens > 0 and ddp.main:
            text = sample_text(raw_model, tokenizer, prompt, config.sample_tokens, config)
            run.sample(step, losses["val"], prompt + text, sample_settings)
        return losses

    started = time.perf_counter()  # wall time of the loop: evaluations and compilation included
    losses: dict[str, float] = {}
    if step == 0:
        losses = evaluate_and_save(0)
        run.row(step=0, val_loss=losses["val"], perplexity=math.exp(losses["val"]))
    bar = _progress(config, ddp, step)
    model.train()
    window_start, window_steps = time.perf_counter(), 0
    while step < config.max_steps:
        x, y = get_batch(splits["train"], config.block_size, config.batch_size, generator=batch_gen)
        x, y = x[shard].to(device), y[shard].to(device)
        lr = lr_schedule(
            step,
            max_lr=config.lr,
            warmup_steps=config.warmup_steps,
            total_steps=decay_steps,
            min_lr=config.min_lr,
        )
        loss, grad_norm = train_step(
            model, optimizer, x, y, lr=lr, grad_clip=config.grad_clip, amp_dtype=amp_dtype
        )
        step += 1
        window_steps += 1
        evaluate_now = step % config.eval_interval == 0 or step == config.max_steps
        if step % config.log_interval == 0 or evaluate_now:
            if ddp.enabled:  # report the loss of the whole global batch
                dist.all_reduce(loss, op=dist.ReduceOp.SUM)
                loss = loss / ddp.world_size
            train_loss = loss.item()  # waits for the device: only on logging steps
            elapsed = time.perf_counter() - window_start
            row = dict(
                step=step,
                train_loss=train_loss,
                lr=lr,
                tokens_per_s=window_steps * tokens_per_step / elapsed,
                grad_norm=grad_norm.item(),  # before clipping; the same on every process under DDP
            )
            if not math.isfinite(train_loss):
                run.log(f"step {step}: the loss is {train_loss}; stopping (try a lower --lr)")
                raise FloatingPointError(f"training diverged at step {step} (loss {train_loss})")
            if evaluate_now:
                losses = evaluate_and_save(step)
                row.update(val_loss=losses["val"], perplexity=math.exp(losses["val"]))
            run.row(**row)
            if bar is not None:
                bar.set_postfix(
                    loss=f"{train_loss:.3f}", val=f"{losses.get('val', math.nan):.3f}", refresh=False
                )
            window_start, window_steps = time.perf_counter(), 0
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    run.log(f"finished at step {step}; best val {best_val:.4f}")
    if ddp.enabled:
        dist.barrier()
    return TrainResult(run_dir, raw_model, tokenizer, step, losses, best_val)


def sample_prompt(wanted: str, tokenizer, val: torch.Tensor) -> str:
    """The prompt samples.md continues: ``wanted`` when the tokenizer can encode it (and it is not
    empty), else the validation text's first token."""
    try:
        if wanted and tokenizer.encode(wanted):
            return wanted
    except ValueError:  # a character the corpus never uses
        pass
    return tokenizer.decode(val[:1].tolist())


@torch.no_grad()
def sample_text(model: MiniGPT, tokenizer, prompt: str, n_tokens: int, config: TrainConfig) -> str:
    """``n_tokens`` continuing ``prompt``, drawn with a generator seeded ``config.seed`` (never the
    global RNG, which dropout draws from: sampling leaves an exact resume exact), in eval mode."""
    from .sample import complete  # sample.py imports this module: import at call time

    was_training = model.training
    model.eval()
    try:
        return complete(
            model, tokenizer, prompt, n_tokens, seed=config.seed, temperature=config.sample_temperature
        )
    finally:
        model.train(was_training)


def _progress(config: TrainConfig, ddp: Distributed, step: int):
    if not config.progress or not ddp.main:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=config.max_steps, initial=step, desc="train", dynamic_ncols=True, file=sys.stderr)


# --------------------------------------------------------------------------- configuration
def _field_type(f) -> type:
    return type(f.default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="course train",
        description="Train the capstone Mini-GPT. Settings: defaults < --config TOML < the resumed run's "
        "config.json < flags given here.",
        argument_default=argparse.SUPPRESS,  # so we know which flags were given
    )
    parser.add_argument("--config", help="a TOML file of settings (field names as keys)")
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = _field_type(f)
        if kind is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction)
        else:
            parser.add_argument(flag, dest=f.name, type=kind, help=f"(default: {f.default!r})")
    return parser


def read_toml(path: str | Path) -> dict:
    with open(path, "rb") as fh:
        values = tomllib.load(fh)
    known = {f.name: _field_type(f) for f in fields(TrainConfig)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(known)}")
    # TOML has ints where a float is meant (lr = 1): accept them.
    return {k: float(v) if known[k] is float and isinstance(v, int) else v for k, v in values.items()}


def parse_config(argv: list[str]) -> TrainConfig:
    """Defaults, then a TOML file, then a resumed run's config.json, then explicit flags."""
    given = vars(build_parser().parse_args(argv))
    values: dict = {}
    if "config" in given:
        values.update(read_toml(given.pop("config")))
    resume = given.get("resume") or values.get("resume")
    if resume:
        run_dir = Path(resume) if Path(resume).is_dir() else Path(resume).parent
        values.update(json.loads((run_dir / "config.json").read_text()))
    values.update(given)
    return replace(TrainConfig(), **values)


def main(argv: list[str] | None = None, data_resolver=None) -> int:
    """``course train``: parse the settings, fill in the dataset, train, print where it went."""
    config = parse_config(sys.argv[1:] if argv is None else argv)
    if not config.data and data_resolver is not None:
        config = replace(config, data=str(data_resolver()))
    if not Path(config.data).is_file():
        print(
            f"course train: the training text {config.data or '(none)'} does not exist (expected a "
            "UTF-8 text file, given with --data; without --data, tiny Shakespeare is used)",
            file=sys.stderr,
        )
        return 2
    result = train(config)
    if int(os.environ.get("RANK", "0")) == 0:
        val = result.losses.get("val", math.nan)
        print(
            f"run {result.run_dir}: {result.model.num_params():,} parameters, step {result.step}, "
            f"val loss {val:.4f}, best {result.best_val:.4f}"
        )
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0
