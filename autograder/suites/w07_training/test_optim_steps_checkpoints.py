"""Week 7 hidden suite, part 2: AdamW, the decay rule, train_step, seeding and checkpoints.

Oracles: ``torch.optim.AdamW`` over hundreds of steps, a big-batch gradient computed here
with autograd, the seeded generators of torch / NumPy / Python, and an uninterrupted run
recomputed on this side. Inputs are drawn from the grading seed (`gen`).
"""

from __future__ import annotations

import io
import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.optim.adamw import adamw

from autograder.checks import GradingFailure, check, check_close, check_equal
from autograder.drivers.common import one_thread
from autograder.drivers.w07 import (
    GroupsModel,
    TinyLM,
    TinyMLP,
    _optimizer,
    _reseed,
    _train,
    adamw_trajectory,
    lm_loss,
    param_group_names,
    resume_run,
    seeded_draws,
    train_step_run,
)

pytestmark = pytest.mark.w07


@pytest.fixture(autouse=True)
def _one_thread():
    """The oracles' tiny models run on one thread too (see drivers.common.one_thread)."""
    with one_thread():
        yield


# --------------------------------------------------------------------------- AdamW
def _regression(gen, n: int = 32):
    x = torch.randn(n, 6, generator=gen)
    y = torch.randn(n, 3, generator=gen)
    init = {k: torch.randn(*v.shape, generator=gen) * 0.4 for k, v in TinyMLP().state_dict().items()}
    return x, y, init


def _reference_trajectory(init, x, y, steps, groups, defaults, lrs, snapshots, variant=None):
    """torch.optim.AdamW's update (variant None) or a known wrong Adam, on the same problem.

    The oracle is ``torch.optim.adamw.adamw``, the function ``torch.optim.AdamW.step`` runs
    (single-tensor path): calling it directly skips the optimizer class, whose constructor
    imports ``torch._dynamo`` (seconds). tests/test_oracles_w07_w08.py checks the two agree."""
    model = TinyMLP(x.size(1), 10, y.size(1))
    model.load_state_dict(init)
    named = dict(model.named_parameters())
    options = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2, **defaults}
    if groups is None:
        param_groups = [{"params": list(model.parameters()), **options}]
    else:
        param_groups = [
            {
                **options,
                "params": [named[n] for n in g["names"]],
                **{k: v for k, v in g.items() if k != "names"},
            }
            for g in groups
        ]
    state = {id(p): (torch.zeros_like(p), torch.zeros_like(p), torch.tensor(0.0)) for p in model.parameters()}
    out = {}
    for t in range(1, steps + 1):
        if lrs is not None:
            for group in param_groups:
                group["lr"] = lrs[t - 1]
        model.zero_grad()
        F.mse_loss(model(x), y).backward()
        with torch.no_grad():
            for group in param_groups:
                for p in group["params"]:
                    m, v, step = state[id(p)]
                    if variant is None:
                        adamw(
                            [p], [p.grad], [m], [v], [], [step], foreach=False, amsgrad=False,
                            beta1=group["betas"][0], beta2=group["betas"][1], lr=group["lr"],
                            weight_decay=group["weight_decay"], eps=group["eps"], maximize=False,
                        )  # fmt: skip
                    else:
                        _wrong_adam_step(p, m, v, t, group, variant)
        if t in snapshots:
            out[t] = torch.cat([p.detach().flatten() for p in model.parameters()])
    return out


def _wrong_adam_step(p, m, v, t: int, group: dict, variant: str) -> None:
    lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
    b1, b2 = group["betas"]
    g = p.grad + wd * p if variant == "l2" else p.grad
    m.mul_(b1).add_(g, alpha=1 - b1)
    v.mul_(b2).addcmul_(g, g, value=1 - b2)
    m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
    if variant == "no_bias_correction":
        m_hat, v_hat = m, v
    denom = (v_hat + eps).sqrt() if variant == "eps_inside" else v_hat.sqrt() + eps
    decay = {"l2": 0.0, "wd_without_lr": wd}.get(variant, lr * wd)
    p.mul_(1 - decay).sub_(lr * m_hat / denom)


ADAM_BUGS = {
    "l2": "weight decay was added to the gradient (Adam + L2): AdamW decays the weights directly, p ← p·(1 − lr·wd), outside the adaptive update.",
    "no_bias_correction": "the moments are not bias-corrected: divide m by 1 − β1^t and v by 1 − β2^t (t counts from 1).",
    "eps_inside": "eps is added inside the square root: the denominator is sqrt(v̂) + eps.",
    "wd_without_lr": "the decay is not multiplied by the learning rate: p ← p·(1 − lr·wd).",
}

# Tolerance, measured: an algebraically equal AdamW (bias-corrected m̂ / (sqrt(v̂) + eps),
# decay folded into the update) drifts from torch's by at most 2.2e-6 after 200 steps at
# lr 1e-3 (5 seeds); putting eps inside the square root drifts by at least 2.4e-4.
ADAM_ATOL = 2e-5


def _check_trajectory(got, init, x, y, steps, groups, defaults, lrs, snapshots, what):
    check(isinstance(got, dict) and set(got) == set(snapshots), f"{what}: the training run did not complete.")
    expected = _reference_trajectory(init, x, y, steps, groups, defaults, lrs, snapshots)
    failure = None
    for t in snapshots:
        try:
            check_close(
                got[t],
                expected[t],
                what=f"{what}: parameters after step {t}",
                atol=ADAM_ATOL,
                rtol=1e-5,
                hint="step t: p·(1−lr·wd); m, v moving averages; p − lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + eps).",
            )
        except GradingFailure as exc:
            failure = (t, exc)
            break
    if failure is None:
        return
    t, exc = failure
    # Name the mistake when a known wrong Adam explains the trajectory (computed only on failure).
    for variant, text in ADAM_BUGS.items():
        wrong = _reference_trajectory(init, x, y, t, groups, defaults, lrs, [t], variant)[t]
        if torch.allclose(got[t], wrong, atol=ADAM_ATOL, rtol=1e-5):
            raise GradingFailure(f"{what}: {text}")
    raise exc


@pytest.mark.points(4)
def test_adamw_trajectory_defaults(submission, gen):
    """AdamW with its defaults follows torch.optim.AdamW for 200 steps; its state_dict is plain data"""
    x, y, init = _regression(gen)
    snapshots = [1, 2, 10, 200]
    got = submission.run(
        adamw_trajectory, submission.module(), init, x, y, 200, None, {}, None, snapshots, check_state=True
    )
    ok, message = got.pop("state", (False, "the run did not finish"))
    _check_trajectory(got, init, x, y, 200, None, {}, None, snapshots, "AdamW(model.parameters())")
    check(
        ok,
        f"AdamW's state_dict could not be saved and read back with weights_only=True ({message}).",
        "subclass torch.optim.Optimizer and keep only tensors and numbers in self.state.",
    )


@pytest.mark.points(3)
def test_adamw_groups_and_schedule(submission, gen):
    """Per-group lr / weight_decay and an lr changed every step, for 150 steps, match torch"""
    x, y, init = _regression(gen)
    steps = 150
    groups = [
        {"names": ["fc1.weight", "fc2.weight"], "weight_decay": 0.1},
        {"names": ["fc1.bias", "fc2.bias"], "weight_decay": 0.0, "lr": 5e-4},
    ]
    defaults = {"lr": 1e-3, "betas": (0.85, 0.99), "eps": 1e-7}
    lrs = [1e-3 * min(1.0, (t + 1) / 20) * (0.5 + 0.5 * math.cos(math.pi * t / steps)) for t in range(steps)]
    snapshots = [1, 20, steps]
    for schedule in (None, lrs):
        got = submission.run(
            adamw_trajectory, submission.module(), init, x, y, steps, groups, defaults, schedule, snapshots
        )
        label = "AdamW with two param groups" + (" and an lr schedule" if schedule else "")
        _check_trajectory(got, init, x, y, steps, groups, defaults, schedule, snapshots, label)


# --------------------------------------------------------------------------- param_groups
@pytest.mark.points(3)
def test_param_groups_decay_rule(submission, gen):
    """Only trainable tensors of 2+ dims decay; biases, norm gains and 0-dim scalars do not"""
    wd = round(0.01 + 0.2 * float(torch.rand((), generator=gen)), 3)
    groups = submission.run(param_group_names, submission.module(), wd)
    check(
        isinstance(groups, list) and groups,
        "param_groups must return a list of dicts with 'params' and 'weight_decay'.",
    )
    model = GroupsModel()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    want_decay = {n for n, p in trainable.items() if p.dim() >= 2}
    want_plain = set(trainable) - want_decay
    decay = [n for g in groups if g["weight_decay"] == wd for n in g["names"]]
    plain = [n for g in groups if g["weight_decay"] == 0.0 for n in g["names"]]
    listed = [n for g in groups for n in g["names"]]
    check(all(g["weight_decay"] is not None for g in groups), "every group needs a 'weight_decay' entry.")
    check(
        sum(g["unknown"] for g in groups) == 0,
        "param_groups returned tensors that are not the model's parameters.",
    )
    frozen = sorted({n for n in listed if n.startswith("frozen.")})
    check(
        not frozen,
        f"frozen parameters {frozen} were put in an optimizer group: keep only requires_grad ones.",
    )
    check(
        len(listed) == len(set(listed)),
        "a parameter appears twice (a tied embedding/head weight?): model.parameters() lists shared tensors once.",
    )
    decayed_plain = sorted(set(decay) & want_plain)
    check(
        not decayed_plain,
        f"{decayed_plain} are decayed: biases, norm gains and other 0/1-dim tensors must get weight_decay 0.",
    )
    check(
        set(decay) == want_decay,
        f"the decayed parameters are {sorted(decay)}; expected every trainable tensor of 2+ dims.",
        "decide by p.dim() >= 2, not by module type: embeddings and conv weights decay too.",
    )
    check(
        set(plain) == want_plain,
        f"the weight_decay=0 group holds {sorted(plain)}; expected {sorted(want_plain)}.",
    )


# --------------------------------------------------------------------------- train_step
def _lm_setup(gen, n_micro=4, b=2, T=5):
    init = {k: torch.randn(*v.shape, generator=gen) * 0.5 for k, v in TinyLM().state_dict().items()}
    x = torch.randint(0, 11, (n_micro * b, T), generator=gen)
    y = torch.randint(0, 11, (n_micro * b, T), generator=gen)
    micro = [(x[i * b : (i + 1) * b], y[i * b : (i + 1) * b]) for i in range(n_micro)]
    return init, x, y, micro


def _big_batch_grads(params: dict, x, y):
    model = TinyLM()
    model.load_state_dict(params)
    loss = lm_loss(model(x), y)
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters()}


def _result(result, what):
    check(
        isinstance(result, dict) and {"loss", "grad_norm"} <= set(result),
        f"{what}: train_step must return a dict with 'loss' and 'grad_norm'.",
    )
    return torch.tensor(float(result["loss"])), torch.tensor(float(result["grad_norm"]))


@pytest.mark.points(4)
def test_accumulation_equals_one_big_batch(submission, gen):
    """4 accumulated micro-batches give the same SGD step as one batch 4× larger, and grads are reset"""
    init, x, y, micro = _lm_setup(gen)
    x2, y2 = torch.randint(0, 11, x.shape, generator=gen), torch.randint(0, 11, y.shape, generator=gen)
    micro2 = [(x2[2 * i : 2 * i + 2], y2[2 * i : 2 * i + 2]) for i in range(4)]
    lr = 0.5
    out = submission.run(train_step_run, submission.module(), init, [micro, micro2], sgd_lr=lr, options={})
    loss, grads = _big_batch_grads(init, x, y)
    after1 = {n: init[n] - lr * grads[n] for n in init}
    got_loss, _ = _result(out["results"][0], "train_step")
    for name, expected in after1.items():
        check_close(
            out["params"][0][name],
            expected,
            what=f"{name} after one accumulated step (SGD, lr={lr})",
            atol=1e-6,
            rtol=1e-5,
            hint="divide each micro-batch loss by the number of micro-batches before backward().",
            diagnose=[
                (
                    init[name] - 4 * lr * grads[name],
                    "the gradient is 4× too large: divide each micro-batch loss by the number of micro-batches.",
                ),
                (
                    init[name] - lr * grads[name] / 4,
                    "the gradient is 4× too small: the loss was divided twice.",
                ),
                (init[name] - lr * grads[name] * 4 / 4, "only one micro-batch was used."),
            ],
        )
    check_close(got_loss, loss, what="the returned loss (mean over micro-batches)", atol=1e-5, rtol=1e-5)
    _, grads2 = _big_batch_grads(after1, x2, y2)
    for name in init:
        check_close(
            out["params"][1][name],
            after1[name] - lr * grads2[name],
            what=f"{name} after a second train_step",
            atol=2e-6,
            rtol=1e-5,
            hint="zero the gradients after optimizer.step(), or the next step adds the old ones.",
            diagnose=[
                (
                    after1[name] - lr * (grads2[name] + grads[name]),
                    "gradients were not zeroed after the step: the second step also applied the first step's gradients.",
                )
            ],
        )
    check(not out["leftover"], "train_step left gradients behind: call optimizer.zero_grad() after the step.")


@pytest.mark.points(3)
def test_train_step_clips_and_sets_lr(submission, gen):
    """max_norm clips the accumulated gradient, lr sets every group's rate, grad_norm is the pre-clip norm"""
    init, x, y, micro = _lm_setup(gen, n_micro=2)
    out = submission.run(
        train_step_run, submission.module(), init, [micro], sgd_lr=1.0, options={"max_norm": 0.05, "lr": 0.3}
    )
    _, grads = _big_batch_grads(init, x, y)
    norm = torch.sqrt(sum(g.pow(2).sum() for g in grads.values()))
    coef = min(1.0, 0.05 / (float(norm) + 1e-6))
    _, got_norm = _result(out["results"][0], "train_step")
    check_close(
        got_norm,
        norm,
        what="grad_norm returned by train_step",
        atol=1e-5,
        rtol=1e-5,
        hint="the global norm before clipping.",
    )
    for name in init:
        check_close(
            out["params"][0][name],
            init[name] - 0.3 * coef * grads[name],
            what=f"{name} after train_step(max_norm=0.05, lr=0.3)",
            atol=1e-6,
            rtol=1e-5,
            hint="backward over all micro-batches, then clip the summed gradient, set the lr, step.",
            diagnose=[
                (
                    init[name] - 1.0 * coef * grads[name],
                    "the lr argument was ignored: set group['lr'] for every param group before stepping.",
                ),
                (
                    init[name] - 0.3 * grads[name],
                    "max_norm was ignored: clip the gradients before optimizer.step().",
                ),
            ],
        )


@pytest.mark.points(1)
def test_train_step_default_loss_is_cross_entropy(submission, gen):
    """Without loss_fn, train_step uses the week's cross_entropy on (B, T, C) logits"""
    init, x, y, micro = _lm_setup(gen, n_micro=2)
    out = submission.run(
        train_step_run, submission.module(), init, [micro], sgd_lr=0.5, options={}, use_default_loss=True
    )
    loss, grads = _big_batch_grads(init, x, y)
    check_close(
        _result(out["results"][0], "train_step")[0],
        loss,
        what="the loss train_step reports by default",
        atol=1e-5,
        rtol=1e-5,
    )
    check_close(
        out["params"][0]["head.weight"],
        init["head.weight"] - 0.5 * grads["head.weight"],
        what="head.weight after a default train_step",
        atol=1e-6,
        rtol=1e-5,
    )


@pytest.mark.points(2)
def test_bf16_autocast_step_on_cpu(submission, gen):
    """amp_dtype=torch.bfloat16 runs the forward under CPU autocast; weights stay float32"""
    init, x, y, micro = _lm_setup(gen, n_micro=2)
    out = submission.run(
        train_step_run,
        submission.module(),
        init,
        [micro],
        sgd_lr=0.5,
        options={"amp_dtype": torch.bfloat16},
        record_dtypes=True,
    )
    check(
        out["seen"] and all(d == "torch.bfloat16" for d in out["seen"]),
        f"inside train_step the linear layers produced {sorted(set(out['seen']))}: run the forward under "
        "torch.autocast(device_type='cpu', dtype=amp_dtype).",
    )
    check(
        out["param_dtypes"] == ["torch.float32"],
        f"parameters became {out['param_dtypes']}: autocast must not change their dtype.",
    )
    loss, grads = _big_batch_grads(init, x, y)
    got_loss, _ = _result(out["results"][0], "train_step")
    check(math.isfinite(float(got_loss)), "the bf16 loss is not finite: compute the loss in float32.")
    # Measured: the bf16 forward's loss differs from float32 by ≤ 2.6e-4 relative (5 seeds).
    check_close(
        got_loss,
        loss,
        what="the loss under bf16 autocast",
        atol=0.0,
        rtol=1e-2,
        hint="compute the loss from the logits in float32.",
    )
    moved = any(not torch.equal(out["params"][0][n], init[n]) for n in init)
    check(moved, "the bf16 train_step did not change the parameters.")


# --------------------------------------------------------------------------- set_seed
@pytest.mark.points(2)
def test_set_seed_reproducible(submission, gen):
    """set_seed(s) seeds torch, NumPy and Python's random with s: draws repeat and match fresh generators"""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
    first, second = submission.run(seeded_draws, submission.module(), seed)
    expected = {
        "torch": torch.rand(4, generator=torch.Generator().manual_seed(seed)),
        "numpy": torch.from_numpy(np.random.RandomState(seed).rand(4)),
        "python": torch.tensor(_py_draws(seed), dtype=torch.float64),
    }
    names = {"torch": "torch.manual_seed", "numpy": "np.random.seed", "python": "random.seed"}
    for key in ("torch", "numpy", "python"):
        a, b = (torch.as_tensor(d[key], dtype=expected[key].dtype) for d in (first, second))
        check(
            torch.equal(a, b),
            f"two runs after set_seed({seed}) drew different {key} numbers: call {names[key]}(seed).",
        )
        check_equal(
            a,
            expected[key],
            what=f"{key} draws after set_seed({seed})",
            hint=f"seed with {names[key]}(seed), the seed itself.",
        )


def _py_draws(seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.random() for _ in range(4)]


# --------------------------------------------------------------------------- checkpoints
def _resume_case(gen):
    init = {k: torch.randn(*v.shape, generator=gen) * 0.5 for k, v in TinyLM().state_dict().items()}
    data = torch.randint(0, 11, (600,), generator=gen)
    seed = int(torch.randint(0, 10_000, (1,), generator=gen))
    total, resume_at = 14, int(torch.randint(4, 10, (1,), generator=gen))
    return init, data, seed, total, resume_at


def _find_state(obj, names, depth=0):
    """The first dict inside ``obj`` whose keys include every name in ``names``."""
    if depth > 6:
        return None
    if isinstance(obj, dict):
        if names <= set(obj):
            return obj
        values = obj.values()
    elif isinstance(obj, (list, tuple)):
        values = obj
    else:
        return None
    for v in values:
        found = _find_state(v, names, depth + 1)
        if found is not None:
            return found
    return None


@pytest.mark.points(2)
def test_checkpoint_loads_with_weights_only(submission, gen):
    """The checkpoint file loads with torch.load(weights_only=True) and holds the model and optimizer state"""
    init, data, seed, total, resume_at = _resume_case(gen)
    out = submission.run(resume_run, submission.module(), init, data, total, resume_at, seed)
    try:
        loaded = torch.load(io.BytesIO(out["file"]), weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the message tells the student what to fix
        raise GradingFailure(
            f"the checkpoint does not load with torch.load(weights_only=True): {type(exc).__name__}: {str(exc)[:300]}"
            " Hint: store only tensors, numbers, strings and dicts/lists/tuples of them (no NumPy arrays, no objects)."
        ) from None
    names = set(out["at_save"])
    state = _find_state(loaded, names)
    check(
        state is not None,
        "no model state_dict found in the checkpoint (expected every parameter name as a key).",
    )
    for name in sorted(names):
        check_equal(
            state[name],
            out["at_save"][name],
            what=f"checkpointed {name}",
            hint="save model.state_dict() at the step you checkpoint.",
        )
    check(
        _find_state(loaded, {"state", "param_groups"}) is not None,
        "no optimizer state_dict (with 'state' and 'param_groups') in the checkpoint: save optimizer.state_dict().",
    )


RESUME_DIAGNOSES = {
    "model": "load_checkpoint did not restore the model's weights.",
    "optimizer": "the optimizer state (AdamW's moments and step count) was not restored: save and load optimizer.state_dict().",
    "torch_rng": "torch's RNG state was not restored, so dropout and random batches differ after resuming (torch.get_rng_state / set_rng_state).",
    "numpy_rng": "NumPy's RNG state was not restored (np.random.get_state / set_state).",
    "python_rng": "Python's random state was not restored (random.getstate / setstate).",
}


@pytest.mark.points(4)
def test_resume_reproduces_uninterrupted_run(submission, gen):
    """Resuming from a checkpoint at step n reproduces the uninterrupted run bit for bit"""
    init, data, seed, total, resume_at = _resume_case(gen)
    out = submission.run(resume_run, submission.module(), init, data, total, resume_at, seed)
    info = out["info"]
    check(
        info.get("step") == resume_at,
        f"load_checkpoint returned step {info.get('step')!r}; expected the saved step {resume_at}.",
        "return {'step': step, **extra}.",
    )
    check(
        info.get("data_pos") == resume_at * 4 * 6,
        f"load_checkpoint returned data_pos={info.get('data_pos')!r}: extra keyword arguments of save_checkpoint must come back.",
        "return {'step': step, **extra}.",
    )
    # The uninterrupted run, recomputed here (the same code and seeds, no submission involved).
    _reseed(seed)
    model = TinyLM(dropout=0.2)
    model.load_state_dict(init)
    _train(model, _optimizer(model), data, 0, total, 4, 6)
    for name, p in model.named_parameters():
        check_close(out["straight"][name], p.detach(), what=f"{name} of the uninterrupted run", atol=1e-6)
    diagnostics = out["diagnostics"]
    for name in out["straight"]:
        if not torch.equal(out["resumed"][name], out["straight"][name]):
            problems = [text for key, text in RESUME_DIAGNOSES.items() if not diagnostics.get(key, True)]
            raise GradingFailure(
                f"after resuming at step {resume_at}, {name} differs from the uninterrupted run at step {total}: "
                + (" ".join(problems) if problems else "some state was not saved or not restored.")
                + " Hint: a checkpoint holds the model, the optimizer, every RNG state and the data position."
            )
