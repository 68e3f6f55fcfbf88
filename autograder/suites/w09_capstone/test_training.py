"""Week 9 hidden suite: one training step, evaluation, a real training run, checkpoints and
exact resume, and the run directory.

`train_step` is replayed here with the functional oracle, `torch.optim.AdamW` and
`torch.nn.utils.clip_grad_norm_`; the trained model's validation loss is computed here from
the logits it returns. Runs write only relative paths inside the submission process's own
directory; the files a test inspects come back as bytes (`autograder.drivers.w09.read_files`)
and are parsed here (checkpoints with ``weights_only=True``), never opened by path.

What training promises, and the edge each promise is tested at (test in brackets):

  * train_step: the lr given written into every param group, forward, backward, the global norm
    clipped before optimizer.step(), gradients cleared after; grad_clip 0 turns clipping off
    (train_step_matches_adamw)
  * estimate_loss: eval mode (dropout off) during, train mode after, a fresh generator seeded
    alike for each split, the mean over eval_iters (estimate_loss)
  * a real run beats the bigram floor (trains_below_bigram_floor)
  * resume: model, optimizer state, step, batch generator and dropout RNG all come from the
    checkpoint, whatever seed the resuming call is given (checkpoint_round_trip_and_exact_resume)
  * the run directory: files, columns, a row every log_interval and eval_interval and at the last
    step; the schedule logged at every step, from step 0 (rate 0), through the end of warm-up,
    to lr_decay_steps before max_steps and min_lr after it (run_directory_holds_what_the_notes_promise)
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import zipfile

import pytest
import torch
import torch.nn.functional as F

from autograder.checks import GradingFailure, check, check_close, check_equal, convention
from autograder.drivers.w09 import (
    RUN_FILES,
    evaluate,
    resume_runs,
    run_with_artifacts,
    train_and_predict,
    train_steps,
)
from autograder.suites.w09_capstone import oracle
from autograder.suites.w09_capstone.common import (
    CORPUS_FILE,
    model_config,
    new_model,
    randint,
    random_state,
    small_corpus,
)

pytestmark = pytest.mark.w09

OPTIM = convention("Optimisation")

METRIC_COLUMNS = ["step", "train_loss", "val_loss", "perplexity", "lr", "tokens_per_s", "grad_norm"]
BIGRAM_FLOOR = 2.48  # nats/char: a count-based bigram model's validation loss is 2.4819


def _windows(data: torch.Tensor, starts: torch.Tensor, T: int):
    offsets = torch.arange(T)
    return data[starts[:, None] + offsets], data[starts[:, None] + offsets + 1]


# --------------------------------------------------------------------------- files, as bytes
def _file(out: dict, name: str, missing: str = "") -> bytes:
    """A file the driver read back (`read_files`), or a failure that says why it is not there
    (by default as a file of the run directory)."""
    data = out["files"].get(name)
    if isinstance(data, bytes):
        return data
    problem = out["problems"].get(name)
    if problem:
        raise GradingFailure(f"{name[:200]} {problem}.")
    raise GradingFailure(missing or f"the run directory has no {name}.")


def _text(out: dict, name: str) -> str:
    return _file(out, name).decode("utf-8", errors="replace")


def _json(out: dict, name: str):
    try:
        return json.loads(_file(out, name))
    except (ValueError, RecursionError) as exc:
        raise GradingFailure(f"{name} is not valid JSON ({str(exc)[:200]}).") from None


def _checkpoint(out: dict, name: str) -> dict:
    """A checkpoint's bytes read as data: a torch.save archive (at most the drivers'
    `FILES_LIMIT` bytes) stored uncompressed, so no zip bomb, loaded with ``weights_only=True``."""
    data = _file(out, name)
    try:
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError, EOFError):
        raise GradingFailure(f"{name} is not a file written by torch.save.") from None
    declared = sum(m.file_size for m in members)
    if declared > len(data) or any(m.compress_type != zipfile.ZIP_STORED for m in members):
        raise GradingFailure(
            f"{name} is not a file written by torch.save (its archive is compressed or truncated)."
        )
    try:
        value = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - whatever torch refuses is not a checkpoint
        raise GradingFailure(
            f"{name} cannot be read with torch.load(weights_only=True) "
            f"({type(exc).__name__}: {str(exc)[:200]}); save state dicts and plain data only."
        ) from None
    if not isinstance(value, dict):
        raise GradingFailure(f"{name} holds a {type(value).__name__}, not a dict.")
    return value


# --------------------------------------------------------------------------- train_step
# Adam's eps for the replay. At the default 1e-8, Adam's first update is nearly lr·sign(g), so
# float noise in a near-zero gradient element can flip a whole ±lr step between two correct
# implementations (measured: 4e-4 between fused and explicit attention). At 1e-3 the update is
# a smooth function of the gradient.
ADAM_EPS = 1e-3


def _grad_norm(params) -> torch.Tensor:
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))


def _replay(sd, batches, lrs, clips, opt, n_heads, variant=""):
    """train_step done here: oracle forward, autograd, clip_grad_norm_, torch AdamW. ``clips``
    holds each step's grad_clip (0: no clipping). Returns the losses, the states after each
    step, and each step's gradient norm before and after clipping."""
    params = {k: v.clone().requires_grad_(True) for k, v in sd.items() if k != "lm_head.weight"}
    matrices = [p for p in params.values() if p.dim() >= 2]
    vectors = [p for p in params.values() if p.dim() < 2]
    decay = opt["weight_decay"]
    groups = [{"params": matrices, "weight_decay": decay}, {"params": vectors, "weight_decay": 0.0}]
    if variant == "decay everything":
        groups = [{"params": matrices + vectors, "weight_decay": decay}]
    optimizer = torch.optim.AdamW(groups, lr=opt["lr"], betas=(opt["beta1"], opt["beta2"]), eps=ADAM_EPS)
    states, losses, norms = [], [], []
    for (x, y), lr, clip in zip(batches, lrs, clips):
        if variant != "lr never set":
            for group in optimizer.param_groups:
                group["lr"] = lr
        logits = oracle.forward({**params, "lm_head.weight": params["tok_emb.weight"]}, x, n_heads)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        loss.backward()
        before = _grad_norm(params.values())
        if variant == "clip to zero" or (clip > 0 and variant != "no clipping"):
            torch.nn.utils.clip_grad_norm_(list(params.values()), clip)
        norms.append((before, _grad_norm(params.values())))
        optimizer.step()
        if variant != "gradients never cleared":
            optimizer.zero_grad(set_to_none=True)
        states.append({k: v.detach().clone() for k, v in params.items()})
        losses.append(loss.detach())
    return losses, states, norms


TRAIN_STEP_BUGS = {
    "no clipping": "the gradients were not clipped to grad_clip before optimizer.step() (not at all, or only "
    "after the step, when it no longer matters): clip the global norm with week 7's clip_grad_norm between "
    f"backward() and step() ({OPTIM}).",
    "clip to zero": "grad_clip = 0 means no clipping, but yours clipped the gradients to norm 0, so only weight "
    "decay and Adam's old momentum moved the weights: skip clipping when grad_clip is 0.",
    "gradients never cleared": "gradients were never cleared: the second step used the sum of both steps' "
    "gradients. Clear them after each step (optimizer.zero_grad(set_to_none=True)).",
    "lr never set": "the learning rate passed in (lr=…) was not written into the optimizer's param groups, so "
    "every step used the optimizer's initial rate and the schedule had no effect.",
    "decay everything": "weight decay reached biases and LayerNorm gains: week 7's param_groups decays matrices "
    f"only ({OPTIM}).",
}


@pytest.mark.points(3)
def test_train_step_matches_adamw(student, submission, gen):
    """train_step equals forward, backward, global-norm clipping and a torch AdamW step"""
    cfg = model_config(gen, bias=True)
    sd = random_state(gen, cfg, std=0.1)
    T = cfg["block_size"]
    batches = [
        (
            torch.randint(cfg["vocab_size"], (4, T), generator=gen),
            torch.randint(cfg["vocab_size"], (4, T), generator=gen),
        )
        for _ in range(2)
    ]
    # The gradient norm of these models is well above 0.05: clipping acts at the first step;
    # the second step has grad_clip 0, which turns clipping off.
    lrs, clips = [3e-2, 1e-2], [0.05, 0.0]
    opt = {"lr": 1e-3, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.99}
    losses, norms, states = submission.run(
        train_steps, student, new_model(student, cfg), sd, batches, lrs, clips, opt, ADAM_EPS
    )
    expected_losses, expected_states, expected_norms = _replay(sd, batches, lrs, clips, opt, cfg["n_heads"])

    def variants(step: int, name: str):
        return [
            (_replay(sd, batches, lrs, clips, opt, cfg["n_heads"], bug)[1][step][name], why)
            for bug, why in TRAIN_STEP_BUGS.items()
        ]

    check_close(losses[0], expected_losses[0], what="loss returned by train_step", atol=1e-5, rtol=1e-5)
    for step in range(2):
        for name, want in expected_states[step].items():
            # Measured over 10 seeds: 0 for the reference (the same ops as the replay); 1.2e-7 for
            # explicit-softmax attention in place of the fused kernel.
            check_close(
                states[step][name],
                want,
                what=f"{name} after train_step #{step + 1} (grad_clip {clips[step]})",
                atol=1e-5,
                rtol=1e-4,
                hint="set the lr, forward, backward, clip the global norm, optimizer.step(), zero the gradients.",
                diagnose=lambda step=step, name=name: variants(step, name),
            )
    for step in range(2):
        check(
            norms[step] is not None,
            "train_step returned its loss alone; it returns (loss, grad_norm), the gradient norm before "
            "clipping that metrics.csv logs.",
        )
        before, after = expected_norms[step]
        check_close(
            norms[step],
            before.float(),
            what=f"grad_norm returned by train_step #{step + 1} (grad_clip {clips[step]})",
            atol=1e-5,
            rtol=1e-4,
            hint="the global L2 norm of all gradients after backward(), before clipping: what week 7's "
            "clip_grad_norm returns (with grad_clip 0, measure it anyway).",
            diagnose=[
                (
                    after.float(),
                    "the norm was measured after clipping (it can never exceed grad_clip then); log the norm "
                    f"before clipping, which clip_grad_norm returns, to see how hard clipping works ({OPTIM}).",
                )
            ],
        )


@pytest.mark.points(2)
def test_estimate_loss(student, submission, gen):
    """estimate_loss averages seeded batches per split in eval mode, then restores train mode"""
    cfg = model_config(gen, bias=False, dropout=0.5)  # with dropout on, forgetting eval() shows
    sd = random_state(gen, cfg)
    splits = {
        name: torch.randint(cfg["vocab_size"], (randint(gen, 400, 100),), generator=gen)
        for name in ("train", "val")
    }
    kwargs = {"block_size": 8, "batch_size": 4, "eval_iters": 3, "seed": randint(gen, 10**6)}
    losses, training, modes = submission.run(evaluate, student, new_model(student, cfg), sd, splits, kwargs)
    check_equal(sorted(losses), ["train", "val"], what="keys of estimate_loss's result")

    def mean_loss(data, g):
        total = 0.0
        for _ in range(kwargs["eval_iters"]):
            x, y = _windows(data, torch.randint(len(data) - 8, (4,), generator=g), 8)
            with torch.no_grad():
                total += F.cross_entropy(
                    oracle.forward(sd, x, cfg["n_heads"]).flatten(0, 1), y.flatten()
                ).item()
        return total / kwargs["eval_iters"]

    shared = torch.Generator().manual_seed(kwargs["seed"])  # one generator for both splits, in order
    continued = {name: mean_loss(data, shared) for name, data in splits.items()}
    for name, data in splits.items():
        expected = mean_loss(data, torch.Generator().manual_seed(kwargs["seed"]))
        got = torch.tensor(float(losses[name]))
        diagnoses = [
            (
                torch.tensor(continued[name]),
                f"the {name!r} batches continued the generator of the split before: each split must draw "
                "from its own fresh torch.Generator().manual_seed(seed), so every evaluation sees the same "
                "batches and two points of a curve are comparable.",
            ),
            (
                torch.tensor(expected * kwargs["eval_iters"]),
                "the losses of the eval_iters batches were summed, not averaged.",
            ),
        ]
        if any(modes):  # what the model's mode was at each forward call, seen by the driver
            diagnoses.insert(
                0,
                (
                    got,
                    "estimate_loss ran the model in training mode, so dropout was on during evaluation: call "
                    "model.eval() before measuring (and model.train() afterwards).",
                ),
            )
        check_close(
            got,
            torch.tensor(expected),
            what=f"estimate_loss {name!r}",
            atol=1e-5,
            rtol=1e-5,
            hint="model.eval() (no dropout); a fresh torch.Generator().manual_seed(seed) per split; mean over eval_iters batches.",
            diagnose=diagnoses,
        )
    check(
        training,
        "the model is left in eval mode after estimate_loss: dropout would stay off for the rest of training; "
        "call model.train() before returning.",
    )


# --------------------------------------------------------------------------- a real run
# The run below (~7 s of one CPU core), on the reference over 8 seeds: validation loss
# 2.222, 2.222, 2.239, 2.250, 2.251, 2.262, 2.291, 2.299 nats/char (256 random windows).
# The same run without any block (embeddings straight into the tied head): 3.05 on 3 seeds.
FLOOR_RUN = dict(
    n_layers=2,
    n_heads=4,
    d_model=64,
    block_size=48,
    batch_size=24,
    max_steps=350,
    lr=5e-3,
    min_lr=5e-4,
    warmup_steps=20,
    eval_interval=350,
    eval_iters=2,
    log_interval=50,
    sample_tokens=0,  # no samples.md: this run is about the loss
    progress=False,
)


@pytest.mark.points(6)
@pytest.mark.limit(60)
def test_trains_below_bigram_floor(student, submission, gen):
    """Trained for 350 small steps on CPU, the model beats the bigram floor (2.48 nats/char)"""
    path = oracle.shakespeare()
    chars, data = oracle.sorted_char_ids(path.read_text())
    val = data[int(0.9 * len(data)) :]
    T = FLOOR_RUN["block_size"]
    x, y = _windows(val, torch.randint(len(val) - T, (128,), generator=gen), T)
    # The dataset is read where the course ships it; the run directory is the process's own.
    config = {**FLOOR_RUN, "data": str(path), "seed": randint(gen, 10**6), "out_dir": "runs"}
    logits = submission.run(train_and_predict, student, config, x)
    check_equal(tuple(logits.shape), (128, T, len(chars)), what="logits of the trained model")
    loss = F.cross_entropy(logits.flatten(0, 1).double(), y.flatten()).item()
    check(
        math.isfinite(loss) and loss < BIGRAM_FLOOR,
        f"after training, the validation loss is {loss:.3f} nats/char, not below the bigram floor {BIGRAM_FLOOR} "
        "(a model that only looks at the previous character gets there).",
        "check that training actually updates the model (train_step), that targets are shifted (get_batch), "
        "and that your CharTokenizer numbers characters in sorted order.",
    )


def _named(actual, why: str) -> list:
    """A diagnosis that fits whatever came back: for mistakes recognised from evidence other
    than the compared value (what the run drew, what it saved)."""
    return [(actual, why)] if why else []


def _adam_steps(checkpoint: dict) -> list[float] | None:
    """The step counts in a checkpoint's torch optimizer state (None when it has another form)."""
    try:
        return sorted({float(v["step"]) for v in checkpoint["optimizer"]["state"].values()})
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _resume_diagnosis(out: dict, stop_at: int, total: int) -> str:
    """Which piece of state a resume lost, judged from the training batches both runs drew (and
    the RNG state at each), and from the optimizer state the resumed run saved."""
    a, b = out["draws"]["straight"], out["draws"]["resumed"]
    left = total - stop_at
    if len(a["x"]) == total:  # the run draws its batches through its own get_batch: comparable
        if len(b["x"]) != left:
            return (
                f"the resumed run drew {len(b['x'])} training batches, not the {left} left after step {stop_at}: "
                "it started over from scratch (step 0, fresh weights) instead of continuing from the "
                f"checkpoint's step, weights and optimizer ({OPTIM})."
            )
        if any(not torch.equal(x, y) for x, y in zip(b["x"], a["x"][stop_at:])):
            return (
                "after resuming, the training batches are not those the uninterrupted run drew at the same "
                "steps: the batch generator's state was not restored from the checkpoint (it was seeded "
                f"afresh) ({OPTIM})."
            )
        if any(not torch.equal(x, y) for x, y in zip(b["rng"], a["rng"][stop_at:])):
            return (
                "after resuming, the random stream that dropout draws from is not the uninterrupted run's: "
                f"restore the global RNG state saved in the checkpoint (torch.set_rng_state) ({OPTIM})."
            )
    try:
        straight = _adam_steps(_checkpoint(out, "ckpt.pt"))
        resumed = _adam_steps(_checkpoint(out["resumed_files"], "ckpt.pt"))
    except GradingFailure:  # a checkpoint that cannot be read: the test says so on its own
        return ""
    if straight and resumed and straight != resumed:
        return (
            f"the resumed run's optimizer has counted {resumed[0]:g} steps, not {straight[0]:g}: the optimizer "
            "state (Adam's moments and step count) was not restored from the checkpoint, so Adam started "
            f"over ({OPTIM})."
        )
    return ""


@pytest.mark.points(3)
def test_checkpoint_round_trip_and_exact_resume(student, submission, gen):
    """A run stopped and resumed from its checkpoint ends bit-identical to an uninterrupted one"""
    config = dict(
        data=CORPUS_FILE,
        n_layers=1,
        n_heads=2,
        d_model=32,
        block_size=16,
        batch_size=8,
        max_steps=12,
        warmup_steps=3,
        dropout=0.1,  # dropout draws random numbers: the RNG state must be resumed too
        eval_interval=4,
        eval_iters=1,
        log_interval=2,
        sample_tokens=4,  # samples at each evaluation must leave the resume exact
        seed=randint(gen, 10**6),
        out_dir="runs",
        progress=False,
    )
    # The resuming call gets another seed: everything must come from the checkpoint, so a
    # train() that ignores resume and starts over ends elsewhere.
    resume_seed = config["seed"] + 1 + randint(gen, 10**6)
    out = submission.run(resume_runs, student, config, 6, resume_seed, small_corpus())
    check_equal(int(out["step"]), 12, what="step reached by the resumed run")
    for name, want in out["straight"].items():
        check_close(
            out["resumed"][name],
            want,
            what=f"{name} after stopping at step 6 and resuming to 12",
            atol=0.0,
            rtol=0.0,
            hint="resume from the checkpoint: the model, the optimizer state, the step, the batch generator and "
            "the RNG (dropout). The resuming call was given another seed, so none of these may come from it.",
            diagnose=lambda name=name: _named(out["resumed"][name], _resume_diagnosis(out, 6, 12)),
        )
    saved = _checkpoint(out, "ckpt.pt")
    check(
        {"model", "optimizer", "step"} <= set(saved),
        "ckpt.pt misses model / optimizer / step.",
    )
    check_equal(int(saved["step"]), 12, what="step stored in ckpt.pt")
    for name, want in out["straight"].items():
        check_close(saved["model"][name], want, what=f"ckpt.pt model[{name!r}]", atol=0.0, rtol=0.0)
    check(
        "optimizer" in saved and saved["optimizer"],
        "ckpt.pt holds no optimizer state: resuming would reset Adam's moments.",
    )


@pytest.mark.points(2)
def test_run_directory_holds_what_the_notes_promise(student, submission, gen):
    """The run directory holds config, metrics, log, checkpoints, gallery, maps and a perplexity report"""
    max_steps, log_interval, eval_interval = 10, 2, 5
    config = dict(
        data=CORPUS_FILE,
        n_layers=2,
        n_heads=2,
        d_model=32,
        block_size=16,
        batch_size=8,
        max_steps=max_steps,
        warmup_steps=4,
        lr_decay_steps=8,  # before max_steps: the last rows are at min_lr
        lr=2e-3,
        min_lr=2e-4,
        grad_clip=0.05,  # far below these models' gradient norms: a norm logged after clipping shows
        eval_interval=eval_interval,
        eval_iters=1,
        log_interval=log_interval,
        sample_tokens=12,
        seed=randint(gen, 10**6),
        out_dir="runs",
        run_id="inspect",
        progress=False,
    )
    out = submission.run(run_with_artifacts, student, config, "To be or not", small_corpus())
    if not out["run_dir_is_expected"]:  # the same directory written another way is fine
        check_equal(out["run_dir"].rstrip("/"), "runs/inspect", what="run directory (out_dir / run_id)")
    for name in RUN_FILES:
        _file(out, name)  # "the run directory has no …" when it is missing
    saved = _json(out, "config.json")
    check(isinstance(saved, dict), "config.json does not hold a JSON object of settings.")
    for key, value in config.items():
        check_equal(saved.get(key), value, what=f"config.json[{key!r}]")
    reader = csv.DictReader(io.StringIO(_text(out, "metrics.csv"), newline=""))
    check_equal(reader.fieldnames, METRIC_COLUMNS, what="metrics.csv columns")
    rows = list(reader)
    steps = [int(r["step"]) for r in rows]
    logged = {
        0,
        max_steps,
        *range(log_interval, max_steps, log_interval),
        *range(eval_interval, max_steps, eval_interval),
    }
    check_equal(
        steps, sorted(logged), what="metrics.csv steps (every log_interval, every eval_interval, the last)"
    )
    for r in rows:
        step = int(r["step"])
        has_val = step % eval_interval == 0
        check(
            bool(r["val_loss"]) == has_val,
            f"metrics.csv step {step}: val_loss should be filled exactly on eval steps.",
        )
        if has_val:
            check_close(
                torch.tensor(float(r["perplexity"])),
                torch.tensor(math.exp(float(r["val_loss"]))),
                what=f"perplexity at step {step}",
                rtol=1e-4,
            )
        if step > 0:
            check(
                float(r["tokens_per_s"]) > 0 and float(r["train_loss"]) > 0,
                f"metrics.csv step {step}: empty values.",
            )
            check(
                bool(r["grad_norm"]) and math.isfinite(float(r["grad_norm"])) and float(r["grad_norm"]) > 0,
                f"metrics.csv step {step}: grad_norm should be the gradient norm of that step (finite, > 0).",
            )
        else:
            check(not r["grad_norm"], "metrics.csv step 0: grad_norm should be empty (no step taken yet).")
    logged_norms = [float(r["grad_norm"]) for r in rows if int(r["step"]) > 0]
    check(
        max(logged_norms) > config["grad_clip"],
        f"every grad_norm logged is at most grad_clip ({config['grad_clip']}), where these models' gradients are "
        "far larger: the norm was measured after clipping. Log the norm before clipping (what clip_grad_norm "
        f"returns) ({OPTIM}).",
    )
    _check_samples(_text(out, "samples.md"), rows, config)
    # The row of step s logs the rate of the update that led to it, number s - 1 (0-based).
    trained = [int(r["step"]) for r in rows if int(r["step"]) > 0]
    check_close(
        torch.tensor([float(r["lr"]) for r in rows if int(r["step"]) > 0], dtype=torch.float64),
        torch.tensor([oracle_lr(s - 1, config) for s in trained], dtype=torch.float64),
        what=f"learning rates logged at steps {trained} (warm-up {config['warmup_steps']}, cosine to "
        f"lr_decay_steps {config['lr_decay_steps']}, max_steps {max_steps})",
        rtol=1e-4,
        hint=f"update s (0-based) uses lr_schedule(s); min_lr from lr_decay_steps on ({OPTIM}).",
        diagnose=[
            (
                torch.tensor([oracle_lr(s, config) for s in trained], dtype=torch.float64),
                "the schedule runs one step ahead: the first update must use lr_schedule(0) (rate 0 at the "
                f"start of warm-up), update s uses lr_schedule(s) ({OPTIM}).",
            ),
            (
                torch.tensor(
                    [oracle_lr(s - 1, {**config, "lr_decay_steps": 0}) for s in trained], dtype=torch.float64
                ),
                "the cosine ends at max_steps, ignoring lr_decay_steps: it must reach min_lr at lr_decay_steps "
                f"and stay there ({OPTIM}).",
            ),
        ],
    )
    check(len(_text(out, "log.txt").strip().splitlines()) >= 3, "log.txt says almost nothing.")
    ckpt = _checkpoint(out, "ckpt.pt")
    check(
        {"model", "optimizer", "step", "config", "tokenizer"} <= set(ckpt),
        "ckpt.pt misses model / optimizer / step / config / tokenizer.",
    )
    best = _checkpoint(out, "best.pt")
    check({"model", "config", "tokenizer"} <= set(best), "best.pt misses model / config / tokenizer.")
    check("To be or not" in _text(out, "gallery.md"), "gallery.md does not show its prompt.")
    check_equal(len(out["maps"]), config["n_layers"], what="attention-map PNGs (one per layer)")
    for path in out["maps"]:
        png = _file(
            out["map_files"], path, f"save_attention_maps returned {path[:200]}, which does not exist."
        )
        check(png[:8] == b"\x89PNG\r\n\x1a\n", f"{path[:200]} is not a PNG file.")
    report = _json(out, "perplexity.json")
    check(isinstance(report, dict), "perplexity.json does not hold a JSON object.")
    check_close(
        torch.tensor(float(report["perplexity"])),
        torch.tensor(math.exp(float(report["nats_per_token"]))),
        what="perplexity.json: perplexity = exp(nats_per_token)",
        rtol=1e-5,
    )


def _check_samples(text: str, rows: list[dict], config: dict) -> None:
    """samples.md: one section per evaluation, in order, each with its step and the validation loss
    metrics.csv logged there, and the prompt continued."""
    sections = re.findall(r"^## step (\d+) · val loss ([0-9.]+)\n+```text\n(.*?)\n```", text, re.M | re.S)
    evals = [(int(r["step"]), float(r["val_loss"])) for r in rows if r["val_loss"]]
    check_equal(
        [int(step) for step, _, _ in sections],
        [step for step, _ in evals],
        what="the steps of samples.md's sections (one per evaluation)",
        hint="'## step N · val loss L' then the sample in a ```text block, appended at every evaluation.",
    )
    for (step, loss, sample), (_, val) in zip(sections, evals):
        check(
            abs(float(loss) - val) < 1e-3,
            f"samples.md step {step}: val loss {loss} is not the {val:.4f} of metrics.csv.",
        )
        check(
            sample.startswith(config.get("sample_prompt", "\n")) and len(sample) > 1,
            f"samples.md step {step}: the sample does not continue the prompt.",
        )


def oracle_lr(step: int, config: dict) -> float:
    """Warm-up then cosine to ``lr_decay_steps`` (``max_steps`` when 0), then ``min_lr``: the
    course convention, written out here."""
    max_lr, min_lr, warmup = config["lr"], config["min_lr"], config["warmup_steps"]
    total = config.get("lr_decay_steps") or config["max_steps"]
    if step < warmup:
        return max_lr * step / warmup
    if step >= total:
        return min_lr
    progress = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (max_lr - min_lr)
