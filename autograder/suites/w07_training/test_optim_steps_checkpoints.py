"""Week 7 hidden suite, part 2: AdamW, the decay rule, train_step, seeding and checkpoints.

Oracles: ``torch.optim.AdamW`` over hundreds of steps, a big-batch gradient computed here
with autograd, the seeded generators of torch / NumPy / Python, and an uninterrupted run
recomputed on this side. Inputs are drawn from the grading seed (`gen`).
"""

# What this part holds the student to, and where each edge is tested (CONVENTIONS.md
# § Optimisation, and the docstrings of solutions/w07_training.py):
#
# AdamW
#   bias correction from t = 1 (the first step moves by about lr), decoupled decay applied
#   to the weights and scaled by lr, eps outside the root, betas (0.9, 0.999) by default,
#   torch's update over 200 steps; state_dict plain data ......... adamw_trajectory_defaults
#   each group's own lr / weight_decay / betas, re-read at every step (a schedule) .. groups_and_schedule
#   a parameter without a gradient is left alone (no decay, no state) .... skips_parameters_without_grad
# param_groups
#   decay exactly the trainable tensors with 2+ dims (a 3-D conv kernel too, a 0-dim gain
#   not); frozen ones left out; a tied weight listed once ............. param_groups_decay_rule
# train_step
#   k micro-batches: each loss divided by k, gradients reset once after the step, the mean
#   loss reported ............................................ accumulation_equals_one_big_batch
#   clip the summed gradient, then set lr, then step; the pre-clip norm ... clips_and_sets_lr
#   default loss; bf16 autocast on the CPU ............... default_loss_… / bf16_autocast_…
# set_seed / checkpoints
#   torch, NumPy and Python's random, each seeded with the seed itself .... set_seed_reproducible
#   weights_only loading (no NumPy objects), model and optimizer state .. checkpoint_loads_…
#   exact resume: model, optimizer, every RNG, the step counter, extras .. resume_reproduces_…

from __future__ import annotations

import io
import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.optim.adamw import adamw

from autograder.checks import Example, GradingFailure, check, check_close, check_equal, convention
from autograder.drivers.common import one_thread
from autograder.drivers.w07 import (
    GroupsModel,
    TinyLM,
    TinyMLP,
    _optimizer,
    _reseed,
    _train,
    adamw_steps,
    adamw_trajectory,
    adamw_unused_param,
    checkpoint_file,
    lm_loss,
    param_group_names,
    resume_run,
    seeded_draws,
    train_step_run,
)
from autograder.isolation import SubmissionError

pytestmark = pytest.mark.w07

OPT = convention("Optimisation")


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
                        _wrong_adam_step(p, m, v, t, group, variant, options)
        if t in snapshots:
            out[t] = torch.cat([p.detach().flatten() for p in model.parameters()])
    return out


def _wrong_adam_step(p, m, v, t: int, group: dict, variant: str, options: dict) -> None:
    lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
    b1, b2 = (0.9, 0.999) if variant == "default_betas" else group["betas"]
    lr = options["lr"] if variant == "constructor_lr" else lr
    wd = options["weight_decay"] if variant == "constructor_wd" else wd
    g = p.grad + wd * p if variant == "l2" else p.grad
    if variant == "m_weights_swapped":
        m.mul_(1 - b1).add_(g, alpha=b1)
    else:
        m.mul_(b1).add_(g, alpha=1 - b1)
    v.mul_(b2).addcmul_(g, g, value=1 - b2)
    m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
    if variant == "no_bias_correction":
        m_hat, v_hat = m, v
    if variant == "v_uncorrected":
        v_hat = v
    denom = (v_hat + eps).sqrt() if variant == "eps_inside" else v_hat.sqrt() + eps
    decay = {"l2": 0.0, "wd_without_lr": wd}.get(variant, lr * wd)
    p.mul_(1 - decay).sub_(lr * m_hat / denom)


ADAM_BUGS = {
    "l2": "weight decay was added to the gradient (Adam + L2): AdamW decays the weights directly, p ← p·(1 − lr·wd), outside the adaptive update.",
    "no_bias_correction": "the moments are not bias-corrected: divide m by 1 − β1^t and v by 1 − β2^t (t counts from 1).",
    "v_uncorrected": "only the first moment is bias-corrected: the second moment v needs it too, v / (1 − β2^t) (sqrt(1 − β2^t) in the denominator); it matters most at step 1.",
    "eps_inside": "eps is added inside the square root: the denominator is sqrt(v̂) + eps.",
    "wd_without_lr": "the decay is not multiplied by the learning rate: p ← p·(1 − lr·wd).",
    "m_weights_swapped": "the moving average of the gradient is weighted the wrong way round: m ← β1·m + (1 − β1)·g (β1 weighs the old average).",
    "default_betas": "the betas passed to AdamW were not used (β1 = 0.9, β2 = 0.999 whatever was asked): read them from group['betas'].",
    "constructor_lr": "the learning rate came from the constructor, not from each param group: read group['lr'] at every step (a group's own lr and a schedule change it).",
    "constructor_wd": "the weight decay came from the constructor, not from each param group: read group['weight_decay'] at every step (a no-decay group has 0).",
}

# Tolerance, measured: an algebraically equal AdamW (bias-corrected m̂ / (sqrt(v̂) + eps),
# decay folded into the update) drifts from torch's by at most 2.2e-6 after 200 steps at
# lr 1e-3 (5 seeds); putting eps inside the square root drifts by at least 2.4e-4.
ADAM_ATOL = 2e-5

FIRST_STEP = (
    "the bias corrections 1 − β1^t and 1 − β2^t are 0 when the step count t is 0: t counts the updates, "
    f"so increment it before using it (t = 1 at the first step) ({OPT})."
)


def _run_adamw(submission, *args, **kwargs):
    """The AdamW driver; a division by zero in the student's step is named (t started at 0)."""
    try:
        return submission.run(adamw_trajectory, submission.module(), *args, **kwargs)
    except SubmissionError as exc:
        if exc.exc_type == "ZeroDivisionError":
            raise GradingFailure(f"AdamW divided by zero at its first step: {FIRST_STEP}") from None
        raise


def _adam_example(submission) -> Example:
    """Two steps on p = [1, -1] with the same gradient [0.5, -2]: lr 0.1, wd 0.1, so each step
    decays p by 1% and then moves it by about lr against the gradient's sign."""
    p0, g = torch.tensor([1.0, -1.0]), torch.tensor([0.5, -2.0])
    expected = []
    p, m, v, step = p0.clone(), torch.zeros(2), torch.zeros(2), torch.tensor(0.0)
    for _ in range(2):
        adamw(
            [p], [g], [m], [v], [], [step], foreach=False, amsgrad=False, beta1=0.9, beta2=0.999,
            lr=0.1, weight_decay=0.1, eps=1e-8, maximize=False,
        )  # fmt: skip
        expected.append(p.clone())
    return Example(
        "p = [1., -1.], the same gradient [0.5, -2.] twice, AdamW([p], lr=0.1, weight_decay=0.1): p after each step",
        torch.stack(expected),
        lambda: submission.run(
            adamw_steps, submission.module(), p0, [g, g], {"lr": 0.1, "weight_decay": 0.1}
        ),
    )


def _check_trajectory(got, init, x, y, steps, groups, defaults, lrs, snapshots, what, submission):
    check(isinstance(got, dict) and set(got) == set(snapshots), f"{what}: the training run did not complete.")
    expected = _reference_trajectory(init, x, y, steps, groups, defaults, lrs, snapshots)
    for t in snapshots:
        if t == snapshots[0] and not bool(torch.isfinite(got[t]).all()):
            raise GradingFailure(
                f"{what}: after step {t} some parameters are NaN or inf. A likely cause: {FIRST_STEP}"
            )

        def variants(t=t):
            # Name the mistake when a known wrong Adam explains the trajectory (only on failure).
            return [
                (
                    _reference_trajectory(init, x, y, t, groups, defaults, lrs, [t], variant)[t],
                    f"{text} ({OPT})",
                )
                for variant, text in ADAM_BUGS.items()
            ]

        check_close(
            got[t],
            expected[t],
            what=f"{what}: parameters after step {t}",
            atol=ADAM_ATOL,
            rtol=1e-5,
            hint="step t: p·(1−lr·wd); m, v moving averages; p − lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + eps).",
            diagnose=variants,
            example=_adam_example(submission),
        )


@pytest.mark.points(4)
def test_adamw_trajectory_defaults(submission, gen):
    """AdamW with its defaults follows torch.optim.AdamW for 200 steps; its state_dict is plain data"""
    x, y, init = _regression(gen)
    snapshots = [1, 2, 10, 200]
    got = _run_adamw(submission, init, x, y, 200, None, {}, None, snapshots, check_state=True)
    ok, message = got.pop("state", (False, "the run did not finish"))
    _check_trajectory(
        got, init, x, y, 200, None, {}, None, snapshots, "AdamW(model.parameters())", submission
    )
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
        got = _run_adamw(submission, init, x, y, steps, groups, defaults, schedule, snapshots)
        label = "AdamW with two param groups" + (" and an lr schedule" if schedule else "")
        _check_trajectory(got, init, x, y, steps, groups, defaults, schedule, snapshots, label, submission)


@pytest.mark.points(1)
def test_adamw_skips_parameters_without_grad(submission, gen):
    """A parameter whose .grad is None is left alone by AdamW: no decay, no update"""
    x, y, init = _regression(gen, 8)
    lr, wd, steps = 1e-2, 0.1, 3
    out = submission.run(
        adamw_unused_param, submission.module(), init, x, y, steps, {"lr": lr, "weight_decay": wd}
    )
    spare = out["spare"]
    if torch.allclose(spare, torch.full((3, 3), (1 - lr * wd) ** steps), atol=1e-7, rtol=0):
        raise GradingFailure(
            "a parameter that received no gradient (.grad is None) was decayed: skip such a parameter "
            f"entirely, weight decay included, as torch.optim.AdamW does ({OPT})."
        )
    check(
        torch.equal(spare, torch.ones(3, 3)),
        f"a parameter that received no gradient (.grad is None) changed during {steps} AdamW steps: "
        f"skip it entirely, as torch.optim.AdamW does ({OPT}).",
    )


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
        "a parameter appears twice (a tied embedding/head weight, shared by two modules): an optimizer must "
        "see each tensor once, and model.parameters() lists shared tensors once.",
    )
    decayed_plain = sorted(set(decay) & want_plain)
    check(
        not decayed_plain,
        f"{decayed_plain} are decayed: biases, norm gains and other 0/1-dim tensors must get weight_decay 0 "
        f"({OPT}).",
    )
    missing = sorted(want_decay - set(decay))
    dims = {n: p.dim() for n, p in trainable.items()}
    check(
        not missing or not all(dims[n] > 2 for n in missing),
        f"{missing} (more than 2 dims) are not decayed: the rule is p.dim() >= 2, so a conv kernel decays "
        f"too, not p.dim() == 2 ({OPT}).",
    )
    check(
        set(decay) == want_decay,
        f"the decayed parameters are {sorted(decay)}; expected every trainable tensor of 2+ dims ({OPT}).",
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
    last_loss, last_grads = _big_batch_grads(init, *micro[-1])
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
                    "the gradient is 4× too large: divide each micro-batch loss by the number of micro-batches "
                    f"before backward(), so that the summed gradient is the mean's ({OPT}).",
                ),
                (
                    init[name] - lr * grads[name] / 4,
                    f"the gradient is 4× too small: the loss was divided twice ({OPT}).",
                ),
                (
                    init[name] - lr * last_grads[name] / 4,
                    "only the last micro-batch's gradient reached the step: the gradients were reset inside the "
                    f"accumulation loop. Zero them once per step, after optimizer.step() ({OPT}).",
                ),
            ],
        )
    check_close(
        got_loss,
        loss,
        what="the returned loss (mean over micro-batches)",
        atol=1e-5,
        rtol=1e-5,
        diagnose=[
            (4 * loss, "the returned loss is the sum over micro-batches: report their mean."),
            (
                last_loss,
                "the returned loss is the last micro-batch's only: report the mean over all of them.",
            ),
        ],
    )
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
                    "gradients were not zeroed after the step: the second step also applied the first step's "
                    "gradients (call optimizer.zero_grad() after optimizer.step()).",
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
                    "the step did not use the lr argument (it ran at the optimizer's old rate): set "
                    "group['lr'] = lr on every param group before optimizer.step().",
                ),
                (
                    init[name] - 0.3 * grads[name],
                    "the step used unclipped gradients: clip the accumulated gradient to max_norm after all "
                    f"backward passes and before optimizer.step() ({OPT}).",
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
        f"inside train_step the linear layers produced {sorted(set(out['seen']))}: autocast is not on; run "
        "the forward under torch.autocast(device_type='cpu', dtype=amp_dtype).",
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
            f"two runs after set_seed({seed}) drew different {key} numbers: set_seed must also call "
            f"{names[key]}(seed) ({OPT}).",
        )
        check_equal(
            a,
            expected[key],
            what=f"{key} draws after set_seed({seed})",
            hint=f"seed with {names[key]}(seed), the seed itself ({OPT}).",
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
    init, data, seed, _, _ = _resume_case(gen)
    out = submission.run(checkpoint_file, submission.module(), init, data, 2, seed)
    try:
        loaded = torch.load(io.BytesIO(out["file"]), weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the message tells the student what to fix
        text = f"{type(exc).__name__}: {str(exc)[:300]}"
        if "numpy" in str(exc).lower():
            raise GradingFailure(
                "the checkpoint holds NumPy objects (np.random.get_state() returns an ndarray and NumPy "
                "numbers), which torch.load(weights_only=True) refuses: store the key array as a tensor and "
                f"the numbers as Python ints and floats ({OPT}). The loader said: {text}"
            ) from None
        raise GradingFailure(
            f"the checkpoint does not load with torch.load(weights_only=True): {text}"
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
RESUME_RULE = (
    f"a checkpoint holds the model, the optimizer, every RNG state, the step and the data position ({OPT})."
)


@pytest.mark.points(4)
def test_resume_reproduces_uninterrupted_run(submission, gen):
    """Resuming from a checkpoint at step n reproduces the uninterrupted run bit for bit"""
    init, data, seed, total, resume_at = _resume_case(gen)
    out = submission.run(resume_run, submission.module(), init, data, total, resume_at, seed)
    info = out["info"]
    check(
        info.get("step") != resume_at + 1,
        f"load_checkpoint returned step {resume_at + 1} for a checkpoint saved at step {resume_at}: one too "
        "high. Return the step that was saved: it already counts the steps done, so it is the index of the "
        f"next step to run ({OPT}).",
    )
    check(
        info.get("step") == resume_at,
        f"load_checkpoint returned step {info.get('step')!r}; expected the saved step {resume_at}.",
        "return {'step': step, **extra}.",
    )
    check(
        info.get("data_pos") == resume_at * 4 * 6,
        f"load_checkpoint returned data_pos={info.get('data_pos')!r}: extra keyword arguments of "
        "save_checkpoint must come back.",
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
                + " Hint: "
                + RESUME_RULE
            )
