"""Week 9 drivers: training runs, optimizer steps and file-writing tools of the capstone, run
beside the submission (``submission.run(fn, pkg, …)`` with ``pkg`` the student's
``w09_capstone`` package). They return data (tensors, numbers, strings, bytes); every verdict,
loss included, is computed by the hidden test from what comes back.

Files. A submission process may write only inside its own working directory, and the grader
never opens a path the submission chose or could have changed. So a driver that writes files
works in a fresh directory of its own (`_scratch`), hands the submission relative paths only
(``out_dir="runs"``, ``"bpe.json"``), writes any corpus it is given as text itself, and sends
back the files the test inspects as bytes (`read_files`): the test parses those bytes and
opens nothing.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import shutil
import stat
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

import torch

FILES_LIMIT = 8 << 20  # bytes of files one driver sends back (the reply's pickle holds 16 MiB)


@contextlib.contextmanager
def _scratch():
    """Work in a new, empty directory: under the sandbox it lies inside the process's own
    working directory (its temporary directory is that directory); with ``--isolation none``
    it keeps a run's files out of the grader's working directory. Removed afterwards."""
    previous = os.getcwd()
    folder = tempfile.mkdtemp(prefix="w09-")
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)
        shutil.rmtree(folder, ignore_errors=True)


def _write_corpus(config: dict, corpus: str | None) -> None:
    """Write ``corpus`` where ``config["data"]`` (a relative path) says the run reads it."""
    if corpus is None:
        return
    path = Path(config["data"])
    if path.is_absolute():
        raise ValueError(f"a corpus given as text goes to a relative path, not {path}")
    path.write_text(corpus, encoding="utf-8")


def read_files(folder, names, limit: int = FILES_LIMIT) -> dict:
    """The regular files ``folder/name`` as ``{"files": {name: bytes}, "problems": {name: why}}``.
    A missing file is in neither; no link is followed and no FIFO or device is waited on; past
    ``limit`` bytes in all, a file is a problem instead."""
    files, problems, left = {}, {}, limit
    for name in names:
        try:
            fd = os.open(Path(folder) / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                problems[name] = "is a symbolic link, not a regular file"
            else:
                problems[name] = f"cannot be opened ({exc.strerror or type(exc).__name__})"
            continue
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                problems[name] = "is not a regular file"
                continue
            if info.st_size > left:
                problems[name] = f"is larger ({info.st_size:,} bytes) than the grader reads back"
                continue
            chunks, size = [], 0
            while chunk := os.read(fd, min(1 << 20, left + 1 - size)):
                chunks.append(chunk)
                size += len(chunk)
                if size > left:
                    break
            if size > left:
                problems[name] = "grew past the size the grader reads back"
                continue
            files[name] = b"".join(chunks)
            left -= size
        finally:
            os.close(fd)
    return {"files": files, "problems": problems}


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def model_facts(model) -> dict:
    """Parameter count (each parameter once), state-dict keys and shapes, and whether the
    output head shares its storage with the token embedding."""
    sd = model.state_dict()
    head, emb = sd.get("lm_head.weight"), sd.get("tok_emb.weight")
    tied = head is not None and emb is not None and head.data_ptr() == emb.data_ptr()
    return {
        "num_params": sum(p.numel() for p in model.parameters()),
        "shapes": {k: list(v.shape) for k, v in sd.items()},
        "tied": tied,
    }


def train_steps(pkg, model, state: dict, batches: list, lrs: list, grad_clips: list, opt: dict, eps: float):
    """Load ``state``, build the package's optimizer (week 7 groups; Adam's ``eps`` set here)
    and run `train_step` on each (x, y) batch with its lr and grad_clip. Returns (losses, the
    gradient norms train_step reported (None where it returned no pair), state dict after every
    step)."""
    model.load_state_dict(state)
    model.train()
    config = replace(pkg.TrainConfig(), **opt)
    optimizer = pkg.make_optimizer(model, config, torch.device("cpu"))
    for group in optimizer.param_groups:
        group["eps"] = eps
    losses, norms, states = [], [], []
    for (x, y), lr, grad_clip in zip(batches, lrs, grad_clips):
        out = pkg.train_step(model, optimizer, x, y, lr=lr, grad_clip=grad_clip)
        loss, norm = out if isinstance(out, (tuple, list)) and len(out) == 2 else (out, None)
        losses.append(torch.as_tensor(loss).detach().float().reshape(()))
        norms.append(None if norm is None else torch.as_tensor(norm).detach().float().reshape(()))
        states.append(_state(model))
    return losses, norms, states


def evaluate(pkg, model, state: dict, splits: dict, kwargs: dict):
    """`estimate_loss` on a model with weights ``state``. Also reports whether the model is back
    in training mode afterwards, and the mode it was in at each forward call (for a diagnosis
    only: the verdict comes from the losses)."""
    model.load_state_dict(state)
    model.train()
    modes: list[bool] = []
    hook = model.register_forward_pre_hook(lambda module, args: modes.append(bool(module.training)))
    try:
        out = pkg.estimate_loss(model, splits, **kwargs)
    finally:
        hook.remove()
    return out, bool(model.training), modes


def train_and_predict(pkg, config: dict, inputs: torch.Tensor) -> torch.Tensor:
    """Train with `pkg.train` on ``config`` (its ``data`` a file the process may read, its
    ``out_dir`` relative); return the trained model's logits on ``inputs`` (eval mode, no
    grad). The loss is computed by the test."""
    with _scratch():
        result = pkg.train(replace(pkg.TrainConfig(), **config))
        model = result.model
        model.eval()
        with torch.no_grad():
            logits, _ = model(inputs)
    return logits


@contextlib.contextmanager
def _recording_batches(pkg):
    """Record the training batches the package's `train` draws: wraps the ``get_batch`` that its
    ``train`` module calls, and keeps, per call, the generator, x and the global RNG state (what
    dropout draws from). Yields a list that `_training_draws` reads. Records nothing when the
    module calls no ``get_batch`` of its own."""
    module = importlib.import_module(pkg.__name__ + ".train")
    original = getattr(module, "get_batch", None)
    calls: list = []
    if original is None:
        yield calls
        return

    def get_batch(data, *args, generator=None, **kwargs):
        batch = original(data, *args, generator=generator, **kwargs)
        calls.append((generator, batch[0].detach().clone(), torch.get_rng_state()))
        return batch

    module.get_batch = get_batch
    try:
        yield calls
    finally:
        module.get_batch = original


def _training_draws(calls: list) -> dict:
    """The calls that drew training batches: those of the generator used most often (each
    evaluation makes fresh generators of its own; the generators are kept alive in ``calls``,
    so no two share an id)."""
    counts = Counter(id(g) for g, _, _ in calls if g is not None)
    if not counts:
        return {"x": [], "rng": []}
    batch_gen = counts.most_common(1)[0][0]
    picked = [(x, rng) for g, x, rng in calls if g is not None and id(g) == batch_gen]
    return {"x": [x for x, _ in picked], "rng": [rng for _, rng in picked]}


def resume_runs(pkg, config: dict, stop_at: int, resume_seed: int, corpus: str | None = None) -> dict:
    """Run A straight through ``max_steps``; run B to ``stop_at`` (same seed, same schedule),
    then resume B to ``max_steps`` with ``seed=resume_seed``. A real resume restores the RNG and
    the batch generator from the checkpoint, so that seed changes nothing; a run that starts
    over ends elsewhere. ``corpus`` (text) is written to ``config["data"]`` first.

    Returns both final state dicts, the step the resumed run reached, A's ``ckpt.pt`` (in
    ``out_dir / "straight"``) and B's final ``ckpt.pt`` as bytes (`read_files`), and, for a
    diagnosis, the training batches A and resumed B drew and the RNG state at each."""
    with _scratch():
        _write_corpus(config, corpus)
        base = replace(pkg.TrainConfig(), **config)
        total = base.max_steps
        with _recording_batches(pkg) as calls_a:
            a = pkg.train(replace(base, run_id="straight", lr_decay_steps=total))
        pkg.train(replace(base, run_id="resumed", max_steps=stop_at, lr_decay_steps=total))
        resume = str(Path(base.out_dir) / "resumed")
        with _recording_batches(pkg) as calls_b:
            b = pkg.train(
                replace(base, run_id="resumed", lr_decay_steps=total, seed=resume_seed, resume=resume)
            )
        files = read_files(Path(base.out_dir) / "straight", ["ckpt.pt"], limit=FILES_LIMIT // 2)
        return {
            "straight": _state(a.model),
            "resumed": _state(b.model),
            "step": b.step,
            "draws": {"straight": _training_draws(calls_a), "resumed": _training_draws(calls_b)},
            "resumed_files": read_files(Path(base.out_dir) / "resumed", ["ckpt.pt"], limit=FILES_LIMIT // 2),
            **files,
        }


RUN_FILES = (
    "config.json",
    "metrics.csv",
    "samples.md",
    "log.txt",
    "ckpt.pt",
    "best.pt",
    "tokenizer.json",
    "gallery.md",
    "perplexity.json",
)
MAX_MAPS = 16  # attention maps read back (the test expects one per layer)


def run_with_artifacts(pkg, config: dict, prompt: str, corpus: str | None = None) -> dict:
    """A short run, then the inspection tools on its best checkpoint: gallery, attention maps
    and the held-out perplexity report, all written into the run directory. ``corpus`` (text)
    is written to ``config["data"]`` first.

    Returns the run directory as reported and whether it is ``out_dir / run_id``, the map paths
    as reported, the report's numbers, the loaded weights, and as bytes the files of
    ``out_dir / run_id`` (`RUN_FILES`) and the first `MAX_MAPS` maps."""
    with _scratch():
        _write_corpus(config, corpus)
        result = pkg.train(replace(pkg.TrainConfig(), **config))
        run_dir = Path(result.run_dir)
        model, tokenizer, state = pkg.load_model(run_dir)
        pkg.write_gallery(model, tokenizer, run_dir / "gallery.md", prompts=(prompt,), max_new_tokens=20)
        maps = [str(p) for p in pkg.save_attention_maps(model, tokenizer, prompt, run_dir / "attention")]
        report = pkg.perplexity_report(model, tokenizer, state["config"], run_dir / "perplexity.json")
        expected = Path(config.get("out_dir", pkg.TrainConfig().out_dir)) / config["run_id"]
        same = run_dir.is_dir() and expected.is_dir() and run_dir.resolve() == expected.resolve()
        files = read_files(expected, RUN_FILES)
        map_files = read_files(
            ".", maps[:MAX_MAPS], limit=FILES_LIMIT - sum(map(len, files["files"].values()))
        )
        return {
            "run_dir": str(run_dir),
            "run_dir_is_expected": same,
            "maps": maps,
            "map_files": map_files,
            "report": {k: v for k, v in report.items() if isinstance(v, (int, float))},
            "state": _state(model),
            **files,
        }


def save_and_reload(obj, cls, filename: str, sample: str) -> dict:
    """``obj.save(filename)`` then ``cls.load(filename)`` in a directory of the driver's own;
    returns the loaded tokenizer's merges and its ids for ``sample``."""
    with _scratch():
        obj.save(filename)
        again = cls.load(filename)
        return {"merges": again.state_dict()["merges"], "ids": again.encode(sample)}


def sample(pkg, model, state: dict, prompt: torch.Tensor, n: int, seed: int, sampling: dict) -> torch.Tensor:
    """`generate` with a generator seeded ``seed`` on a model with weights ``state``."""
    model.load_state_dict(state)
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    return pkg.generate(model, prompt, n, generator=generator, **sampling)


def perplexity_of(pkg, model, state: dict, data: torch.Tensor, batch_size: int) -> dict:
    model.load_state_dict(state)
    return pkg.perplexity(model, data, batch_size=batch_size)
