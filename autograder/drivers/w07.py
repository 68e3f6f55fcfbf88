"""Drivers for week 7 (run beside the submission through ``submission.run``): training loops,
backward passes and checkpoint round trips that a proxy call cannot express.

Every model here is built by the driver itself (plain ``torch.nn``), so the only student
code on the path is the function under test. Drivers return data; the tests decide, and
recompute whatever they can on the trusted side.
"""

from __future__ import annotations

import io
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .common import single_threaded


class TinyLM(nn.Module):
    """Embedding -> Linear + GELU -> LayerNorm -> Linear head: logits (B, T, V) for ids (B, T)."""

    def __init__(self, vocab: int = 11, d: int = 8, dropout: float = 0.0):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.hidden = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(d, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        h = self.embed(idx)
        h = self.drop(F.gelu(self.hidden(h)))
        return self.head(self.norm(h))


class TinyMLP(nn.Module):
    """Linear -> tanh -> Linear, for optimizer trajectories."""

    def __init__(self, d_in: int = 6, d_hidden: int = 10, d_out: int = 3):
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.fc2 = nn.Linear(d_hidden, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.tanh(self.fc1(x)))


class PlainSGD:
    """``p ← p − lr·grad`` with the interface train_step needs (``param_groups``, ``step``,
    ``zero_grad``). Not a ``torch.optim.Optimizer`` on purpose: constructing one imports
    ``torch._dynamo`` (seconds) in every fresh grading process."""

    def __init__(self, params, lr: float):
        self.param_groups = [{"params": list(params), "lr": lr}]
        self.state: dict = {}

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()


class PlainMomentum(PlainSGD):
    """SGD with momentum and a ``state_dict`` in ``torch.optim``'s format (``state`` keyed by
    parameter index, ``param_groups``), so a checkpoint must carry it for a run to resume."""

    def __init__(self, params, lr: float, momentum: float = 0.9):
        super().__init__(params, lr)
        self.param_groups[0]["momentum"] = momentum

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        for i, p in enumerate(group["params"]):
            if p.grad is None:
                continue
            buf = self.state.setdefault(i, {"momentum_buffer": torch.zeros_like(p)})["momentum_buffer"]
            buf.mul_(group["momentum"]).add_(p.grad)
            p.add_(buf, alpha=-group["lr"])

    def state_dict(self) -> dict:
        groups = [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups]
        groups[0]["params"] = list(range(len(self.param_groups[0]["params"])))
        state = {i: {k: v.clone() for k, v in s.items()} for i, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        self.state = {int(i): {k: v.clone() for k, v in s.items()} for i, s in state_dict["state"].items()}
        for key, value in state_dict["param_groups"][0].items():
            if key != "params":
                self.param_groups[0][key] = value


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """PyTorch's cross-entropy on (B, T, V) logits: the trusted loss for train_step tests."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


def _flat_params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


# --------------------------------------------------------------------------- schedule, clipping, loss
@single_threaded
def schedule_values(module, steps: list[int], kwargs: dict) -> list:
    """lr_schedule(step, **kwargs) for every step, in one round trip."""
    return [module.lr_schedule(s, **kwargs) for s in steps]


@single_threaded
def clip_run(module, grads: list, max_norm: float, frozen: list[int], container: str = "iter"):
    """Parameters whose .grad are ``grads`` (``None`` entries stay None; indices in ``frozen``
    have requires_grad=False and no grad); returns (returned norm, grads after clipping).

    ``container``: how the parameters are handed over: ``"iter"`` a generator (as
    ``model.parameters()`` is), ``"list"`` a list, ``"single"`` the first parameter alone."""
    params = []
    for i, g in enumerate(grads):
        p = nn.Parameter(
            torch.zeros_like(g) if g is not None else torch.zeros(3), requires_grad=i not in frozen
        )
        if g is not None and i not in frozen:
            p.grad = g.clone()
        params.append(p)
    handed = {"iter": lambda: iter(params), "list": lambda: list(params), "single": lambda: params[0]}
    norm = module.clip_grad_norm(handed[container](), max_norm)
    return norm, [None if p.grad is None else p.grad for p in params]


@single_threaded
def cross_entropy_grad(module, logits: torch.Tensor, targets: torch.Tensor, kwargs: dict):
    """(loss, d loss / d logits) through the student's cross_entropy."""
    logits = logits.clone().requires_grad_(True)
    loss = module.cross_entropy(logits, targets, **kwargs)
    loss.backward()
    return loss.detach(), logits.grad


# --------------------------------------------------------------------------- optimizer
@single_threaded
def adamw_trajectory(
    module,
    init: dict,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    groups: list[dict] | None,
    defaults: dict,
    lrs: list[float] | None,
    snapshots: list[int],
    check_state: bool = False,
):
    """Full-batch MSE training of TinyMLP with the student's AdamW.

    ``groups``: None for ``AdamW(model.parameters(), **defaults)``, else a list of
    ``{"names": [...], **options}`` turned into param groups. ``lrs``: when given, every
    group's ``lr`` is set to ``lrs[t]`` before step t (a schedule). Returns the flattened
    parameters (in ``named_parameters`` order) after each step listed in ``snapshots``, and
    with ``check_state`` also ``"state"``: whether the optimizer's state_dict is plain data.
    """
    torch.manual_seed(0)
    model = TinyMLP(x.size(1), 10, y.size(1))
    model.load_state_dict(init)
    named = dict(model.named_parameters())
    if groups is None:
        opt = module.AdamW(model.parameters(), **defaults)
    else:
        param_groups = [
            {"params": [named[n] for n in g["names"]], **{k: v for k, v in g.items() if k != "names"}}
            for g in groups
        ]
        opt = module.AdamW(param_groups, **defaults)
    out = {}
    for t in range(1, steps + 1):
        if lrs is not None:
            for group in opt.param_groups:
                group["lr"] = lrs[t - 1]
        opt.zero_grad()
        F.mse_loss(model(x), y).backward()
        opt.step()
        if t in snapshots:
            out[t] = torch.cat([p.detach().flatten() for p in model.parameters()])
    if check_state:
        out["state"] = _state_is_data(opt)
    return out


@single_threaded
def adamw_steps(module, p0: torch.Tensor, grads: list, kwargs: dict) -> torch.Tensor:
    """One parameter ``p0`` stepped by the student's AdamW with the given gradients, one step
    each: the parameter after every step, stacked (steps, *p0.shape). For worked examples."""
    p = nn.Parameter(p0.clone())
    opt = module.AdamW([p], **kwargs)
    out = []
    for g in grads:
        p.grad = g.clone()
        opt.step()
        out.append(p.detach().clone())
    return torch.stack(out)


@single_threaded
def adamw_unused_param(module, init: dict, x: torch.Tensor, y: torch.Tensor, steps: int, kwargs: dict):
    """TinyMLP trained with the student's AdamW over its parameters plus ``spare``, a (3, 3)
    parameter of ones that the loss never uses (its .grad stays None). Returns ``spare``
    after ``steps`` steps."""
    model = TinyMLP(x.size(1), 10, y.size(1))
    model.load_state_dict(init)
    spare = nn.Parameter(torch.ones(3, 3))
    opt = module.AdamW([*model.parameters(), spare], **kwargs)
    for _ in range(steps):
        for q in model.parameters():
            q.grad = None
        F.mse_loss(model(x), y).backward()
        opt.step()
    return {"spare": spare.detach().clone()}


def _state_is_data(opt) -> tuple[bool, str]:
    """Whether ``opt`` is a torch Optimizer whose state_dict survives torch.save and
    torch.load(weights_only=True), as a checkpoint needs: (ok, message)."""
    if not isinstance(opt, torch.optim.Optimizer):
        return False, "AdamW is not a subclass of torch.optim.Optimizer"
    buf = io.BytesIO()
    try:
        torch.save(opt.state_dict(), buf)
        buf.seek(0)
        torch.load(buf, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - reported to the test as text
        return False, f"{type(exc).__name__}: {str(exc)[:300]}"
    return True, ""


class GroupsModel(nn.Module):
    """Every kind of tensor the decay rule must sort: embeddings, weights, biases, norm gains,
    a frozen linear, a bias-free linear, and a head tied to the embedding."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(7, 4)
        self.proj = nn.Linear(4, 5)
        self.norm = nn.LayerNorm(5)
        self.conv = nn.Conv1d(5, 3, 2)  # a 3-D weight decays too
        self.frozen = nn.Linear(3, 3)
        self.out = nn.Linear(3, 4, bias=False)
        self.head = nn.Linear(4, 7, bias=False)
        self.scale = nn.Parameter(torch.ones(()))  # a 0-dim gain: no decay
        self.head.weight = self.embed.weight  # tied
        for p in self.frozen.parameters():
            p.requires_grad_(False)


@single_threaded
def param_group_names(module, weight_decay: float):
    """The student's param_groups on GroupsModel, translated to parameter names.

    Returns a list of ``{"names": [...], "weight_decay": value or None, "unknown": n}``,
    ``unknown`` counting entries that are not parameters of the model."""
    model = GroupsModel()
    by_id = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        by_id.setdefault(id(p), name)
    groups = module.param_groups(model, weight_decay)
    out = []
    for g in groups:
        params = g["params"] if isinstance(g, dict) else g
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        names = [by_id.get(id(p)) for p in params]
        out.append(
            {
                "names": [n for n in names if n is not None],
                "weight_decay": float(g["weight_decay"])
                if isinstance(g, dict) and "weight_decay" in g
                else None,
                "unknown": sum(n is None for n in names),
            }
        )
    return out


# --------------------------------------------------------------------------- train_step
@single_threaded
def train_step_run(
    module,
    init: dict,
    steps: list[list[tuple[torch.Tensor, torch.Tensor]]],
    *,
    sgd_lr: float,
    options: dict,
    use_default_loss: bool = False,
    record_dtypes: bool = False,
):
    """TinyLM trained with plain SGD through the student's train_step, one call per
    entry of ``steps`` (each a list of micro-batches). Returns the results, the parameters
    after every step, and (with ``record_dtypes``) the dtypes seen at the hidden layer's
    output and the parameters' dtypes."""
    model = TinyLM()
    model.load_state_dict(init)
    opt = PlainSGD(model.parameters(), lr=sgd_lr)
    seen: list[str] = []
    if record_dtypes:
        model.hidden.register_forward_hook(lambda m, i, o: seen.append(str(o.dtype)))
    kwargs = dict(options)
    if not use_default_loss:
        kwargs["loss_fn"] = lm_loss
    results, params = [], []
    for micro in steps:
        results.append(module.train_step(model, opt, micro, **kwargs))
        params.append(_flat_params(model))
    leftover = [n for n, p in model.named_parameters() if p.grad is not None and bool(p.grad.any())]
    dtypes = sorted({str(p.dtype) for p in model.parameters()})
    return {"results": results, "params": params, "seen": seen, "param_dtypes": dtypes, "leftover": leftover}


# --------------------------------------------------------------------------- seeding
@single_threaded
def seeded_draws(module, seed: int):
    """Draws from torch, NumPy and Python's random right after set_seed(seed), twice."""
    out = []
    for _ in range(2):
        module.set_seed(seed)
        out.append(
            {
                "torch": torch.rand(4),
                "numpy": torch.from_numpy(np.random.rand(4)),
                "python": [random.random() for _ in range(4)],
            }
        )
    return out


# --------------------------------------------------------------------------- checkpoints
def _reseed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _batch(data: torch.Tensor, pos: int, B: int, T: int):
    """Sequential data with random parts: the next B windows from ``pos`` (the data
    position), each shifted by a random offset (torch), with a random token swapped in
    (NumPy) and a coin flip that reverses the batch order (Python's random)."""
    starts = torch.arange(B) * T + pos + torch.randint(0, 3, (B,))
    idx = torch.stack([data[s : s + T + 1] for s in starts.tolist()])
    swap = int(np.random.randint(0, T))
    idx[:, swap] = (idx[:, swap] + 1) % 11
    if random.random() < 0.5:
        idx = idx.flip(0)
    return idx[:, :-1], idx[:, 1:], pos + B * T


def _train(model, opt, data, pos, steps, B, T):
    for _ in range(steps):
        x, y, pos = _batch(data, pos, B, T)
        loss = lm_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return pos


def _optimizer(model):
    return PlainMomentum(model.parameters(), lr=0.05)


@single_threaded
def checkpoint_file(module, init: dict, data: torch.Tensor, steps: int, seed: int, B: int = 4, T: int = 6):
    """A short run (``steps`` steps, so the optimizer has state) saved by the student's
    save_checkpoint: the file's bytes and the model's parameters at save time."""
    _reseed(seed)
    model = TinyLM(dropout=0.2)
    model.load_state_dict(init)
    opt = _optimizer(model)
    pos = _train(model, opt, data, 0, steps, B, T)
    folder = tempfile.mkdtemp(prefix="w07-")
    path = Path(folder) / "checkpoint.pt"
    try:
        module.save_checkpoint(path, model, opt, steps, data_pos=pos)
        file = path.read_bytes()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"file": file, "at_save": _flat_params(model)}


@single_threaded
def resume_run(
    module, init: dict, data: torch.Tensor, total: int, resume_at: int, seed: int, B: int = 4, T: int = 6
):
    """The same run twice: uninterrupted for ``total`` steps, and interrupted at
    ``resume_at`` by save_checkpoint, a few stray steps, a fresh model and optimizer with
    other weights and other RNG states, load_checkpoint, and the rest of the steps.

    Returns both final parameter sets, what load_checkpoint returned, the checkpoint
    file's bytes, the model's parameters at save time, and diagnostics (whether each
    piece of state came back), which the test only uses to word its message."""
    # Uninterrupted.
    _reseed(seed)
    model = TinyLM(dropout=0.2)
    model.load_state_dict(init)
    opt = _optimizer(model)
    _train(model, opt, data, 0, total, B, T)
    straight = _flat_params(model)

    # Interrupted.
    _reseed(seed)
    model = TinyLM(dropout=0.2)
    model.load_state_dict(init)
    opt = _optimizer(model)
    pos = _train(model, opt, data, 0, resume_at, B, T)
    at_save = _flat_params(model)
    rng_at_save = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    folder = tempfile.mkdtemp(prefix="w07-")
    path = Path(folder) / "checkpoint.pt"
    module.save_checkpoint(path, model, opt, resume_at, data_pos=pos)
    _train(model, opt, data, pos, 3, B, T)  # the run goes on a little before it "crashes"

    _reseed(seed + 1)
    model = TinyLM(dropout=0.2)  # other initial weights
    opt = _optimizer(model)
    info = module.load_checkpoint(path, model, opt)
    diagnostics = {
        "model": all(torch.equal(p, at_save[n]) for n, p in model.named_parameters()),
        "optimizer": len(opt.state) > 0,
        "torch_rng": torch.equal(torch.get_rng_state(), rng_at_save[0]),
        "numpy_rng": bool(np.array_equal(np.random.get_state()[1], rng_at_save[1])),
        "python_rng": random.getstate() == rng_at_save[2],
    }
    info = dict(info) if isinstance(info, dict) else {"returned": repr(info)[:200]}
    # The test checks the returned step itself; the data position is taken from the checkpoint.
    pos = info.get("data_pos")
    _train(model, opt, data, pos if isinstance(pos, int) else 0, total - resume_at, B, T)
    resumed = _flat_params(model)
    file = path.read_bytes()
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "straight": straight,
        "resumed": resumed,
        "info": {k: v for k, v in info.items() if isinstance(v, (int, float, str))},
        "file": file,
        "at_save": at_save,
        "diagnostics": diagnostics,
    }
