"""Week 7 hidden suite, part 1: learning-rate schedule, gradient clipping, cross-entropy.

Oracles: the closed form of the schedule and Hugging Face's cosine-with-warmup formula,
``torch.nn.utils.clip_grad_norm_``, ``torch.nn.functional.cross_entropy`` and autograd.
Inputs are drawn from the grading seed (`gen`).
"""

from __future__ import annotations

import ast
import math

import pytest
import torch
import torch.nn.functional as F

from autograder.checks import check, check_close
from autograder.drivers.common import one_thread
from autograder.drivers.w07 import clip_run, cross_entropy_grad, schedule_values

pytestmark = pytest.mark.w07


@pytest.fixture(autouse=True)
def _one_thread():
    """The oracles' tiny models run on one thread too (see drivers.common.one_thread)."""
    with one_thread():
        yield


def randint(gen, low: int, high: int) -> int:
    return int(torch.randint(low, high, (1,), generator=gen))


def uniform(gen, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen))


def as_floats(values, what: str) -> torch.Tensor:
    check(
        isinstance(values, list) and all(isinstance(v, (int, float, torch.Tensor)) for v in values),
        f"{what}: lr_schedule must return a number (a Python float).",
    )
    return torch.tensor([float(v) for v in values], dtype=torch.float64)


# --------------------------------------------------------------------------- lr_schedule
def closed_form(step: int, max_lr: float, warmup: int, total: int, min_lr: float) -> float:
    if step < warmup:
        return max_lr * step / warmup
    if step >= total:
        return min_lr
    progress = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (max_lr - min_lr)


def hf_cosine_with_warmup(step: int, max_lr: float, warmup: int, total: int) -> float:
    """transformers.get_cosine_schedule_with_warmup (num_cycles=0.5) times the base lr, written
    out because importing transformers costs seconds. tests/test_oracles_w07_w08.py checks this
    function against the library itself."""
    if step < warmup:
        return max_lr * float(step) / float(max(1, warmup))
    progress = float(step - warmup) / float(max(1, total - warmup))
    return max_lr * max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))


def schedule_bugs(steps, max_lr, warmup, total, min_lr):
    """Schedules of the classic mistakes, one value per step."""

    def cosine(step, span_from, span):
        progress = (step - span_from) / span
        return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (max_lr - min_lr)

    variants = {
        "warmup is one step ahead: at step s the rate is max_lr·s/warmup_steps (0 at step 0), not max_lr·(s+1)/warmup_steps.": lambda s: (
            max_lr * (s + 1) / warmup if s < warmup else closed_form(s, max_lr, warmup, total, min_lr)
        ),
        "warmup divides by warmup_steps + 1: the rate must reach max_lr exactly at step warmup_steps.": lambda s: (
            max_lr * (s + 1) / (warmup + 1) if s < warmup else closed_form(s, max_lr, warmup, total, min_lr)
        ),
        "the cosine never reaches min_lr at total_steps: its progress must run from 0 at warmup_steps to 1 at total_steps (divide by total_steps - warmup_steps).": lambda s: (
            closed_form(s, max_lr, warmup, total, min_lr)
            if s < warmup or s >= total
            else cosine(s, warmup, total)
        ),
        "the cosine ends at 0 instead of min_lr: decay from max_lr to min_lr, min_lr + ½(1 + cos πp)(max_lr - min_lr).": lambda s: (
            closed_form(s, max_lr, warmup, total, 0.0) if s < total else 0.0
        ),
        "after total_steps the rate climbs back up: the cosine must stop at min_lr once step >= total_steps.": lambda s: (
            cosine(s, warmup, total - warmup) if s >= total else closed_form(s, max_lr, warmup, total, min_lr)
        ),
    }
    return [(torch.tensor([f(s) for s in steps], dtype=torch.float64), text) for text, f in variants.items()]


def _schedule_config(gen):
    warmup = randint(gen, 3, 20)
    total = warmup + randint(gen, 10, 100)
    max_lr = uniform(gen, 1e-4, 1e-2)
    return warmup, total, max_lr


@pytest.mark.points(3)
def test_lr_schedule_closed_form(submission, gen):
    """lr_schedule equals the warmup + cosine closed form at 0, warmup−1, warmup, total and beyond"""
    warmup, total, max_lr = _schedule_config(gen)
    min_lr = max_lr * uniform(gen, 0.02, 0.2)
    inner = sorted({randint(gen, warmup + 1, total) for _ in range(6)})
    steps = [0, 1, warmup - 1, warmup, warmup + 1, *inner, total - 1, total, total + 1, total + 37]
    kwargs = dict(max_lr=max_lr, warmup_steps=warmup, total_steps=total, min_lr=min_lr)
    got = as_floats(submission.run(schedule_values, submission.module(), steps, kwargs), "lr_schedule")
    expected = torch.tensor(
        [closed_form(s, max_lr, warmup, total, min_lr) for s in steps], dtype=torch.float64
    )
    check_close(
        got,
        expected,
        what=f"lr_schedule at steps {steps} (warmup_steps={warmup}, total_steps={total}, min_lr>0)",
        atol=1e-12,
        rtol=1e-9,
        hint="warmup max_lr·step/warmup_steps for step < warmup_steps, cosine to min_lr at total_steps, min_lr after.",
        diagnose=schedule_bugs(steps, max_lr, warmup, total, min_lr),
    )


@pytest.mark.points(2)
def test_lr_schedule_matches_hugging_face(submission, gen):
    """With min_lr = 0 the schedule equals Hugging Face's get_cosine_schedule_with_warmup"""
    warmup, total, max_lr = _schedule_config(gen)
    for w in (warmup, 0):  # warmup_steps = 0 starts the cosine at once (and must not divide by zero)
        steps = list(range(total + 1))
        kwargs = dict(max_lr=max_lr, warmup_steps=w, total_steps=total)
        got = as_floats(submission.run(schedule_values, submission.module(), steps, kwargs), "lr_schedule")
        expected = torch.tensor(
            [hf_cosine_with_warmup(s, max_lr, w, total) for s in steps], dtype=torch.float64
        )
        check_close(
            got,
            expected,
            what=f"lr_schedule over steps 0…{total} (warmup_steps={w}, min_lr=0) against Hugging Face",
            atol=1e-12,
            rtol=1e-9,
            hint="Hugging Face starts at 0, reaches max_lr at step warmup_steps and 0 at total_steps.",
            diagnose=schedule_bugs(steps, max_lr, w, total, 0.0) if w else (),
        )


# --------------------------------------------------------------------------- clip_grad_norm
def _grads(gen, scale: float):
    shapes = [(4, 3), (5,), (2, 2, 3), (6,)]
    grads = [torch.randn(*s, generator=gen) * scale for s in shapes]
    grads[1] = None  # a parameter that received no gradient
    return grads


def _torch_clip(grads, frozen, max_norm):
    params = []
    for i, g in enumerate(grads):
        p = torch.nn.Parameter(torch.zeros_like(g) if g is not None else torch.zeros(1))
        if g is not None and i not in frozen:
            p.grad = g.clone()
        params.append(p)
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    return norm, [p.grad for p in params]


def _norm_value(norm, what):
    check(
        isinstance(norm, (int, float, torch.Tensor)) and torch.as_tensor(norm).numel() == 1,
        f"{what}: clip_grad_norm must return the total norm (a number or a 0-dim tensor).",
    )
    return torch.as_tensor(float(norm), dtype=torch.float64)


@pytest.mark.points(3)
def test_clip_matches_torch(submission, gen):
    """clip_grad_norm scales every gradient like torch.nn.utils.clip_grad_norm_ (None and frozen skipped)"""
    grads, frozen = _grads(gen, 2.0), [3]  # parameter 3 is frozen: requires_grad=False, no grad
    max_norm = uniform(gen, 0.5, 2.0)
    norm, got = submission.run(clip_run, submission.module(), grads, max_norm, frozen)
    expected_norm, expected = _torch_clip(grads, frozen, max_norm)
    check(got[1] is None, "a parameter whose .grad is None must keep .grad = None (skip it).")
    live = [g for i, g in enumerate(grads) if g is not None and i not in frozen]
    per_tensor = [g * min(1.0, max_norm / (float(g.norm()) + 1e-6)) for g in live]
    for k, (i, e) in enumerate((i, e) for i, e in enumerate(expected) if e is not None):
        check_close(
            got[i],
            e,
            what=f"gradient {i} after clip_grad_norm(max_norm={max_norm:.3f})",
            atol=1e-6,
            hint="one global norm over all gradients, sqrt(Σ_p ||g_p||²); every gradient scaled by the same max_norm / (norm + 1e-6).",
            diagnose=[
                (
                    per_tensor[k],
                    "each gradient was clipped by its own norm: the norm is one global L2 norm over all of them.",
                )
            ],
        )
    check_close(
        _norm_value(norm, "clip_grad_norm"),
        expected_norm.double(),
        what="the norm returned by clip_grad_norm",
        atol=1e-5,
        rtol=1e-5,
        hint="return the total norm computed before scaling, as torch.nn.utils.clip_grad_norm_ does.",
        diagnose=[
            (
                torch.tensor(max_norm, dtype=torch.float64),
                "you returned the norm after clipping: return the norm before it.",
            )
        ],
    )


@pytest.mark.points(2)
def test_clip_returns_pre_clip_norm_and_never_scales_up(submission, gen):
    """Returns the pre-clip norm; gradients already below max_norm stay bit-identical"""
    grads = _grads(gen, 0.05)
    live = torch.cat([g.flatten() for g in grads if g is not None])
    true_norm = float(live.norm())
    norm, got = submission.run(clip_run, submission.module(), grads, 10 * true_norm, [])
    check_close(
        _norm_value(norm, "clip_grad_norm"),
        torch.tensor(true_norm, dtype=torch.float64),
        what="the norm returned when no clipping is needed",
        atol=1e-6,
        rtol=1e-5,
    )
    for i, g in enumerate(grads):
        if g is not None:
            check_close(
                got[i],
                g,
                what=f"gradient {i} when the norm is below max_norm",
                atol=1e-7,
                rtol=1e-6,
                hint="the coefficient max_norm / (norm + 1e-6) is clamped at 1: clipping never scales gradients up.",
                diagnose=[
                    (
                        g * (10 * true_norm) / (true_norm + 1e-6),
                        "gradients were scaled *up* to max_norm: clamp the coefficient at 1.",
                    )
                ],
            )
    big = [g * 1e3 if g is not None else None for g in grads]
    norm, _ = submission.run(clip_run, submission.module(), big, 1.0, [])
    check_close(
        _norm_value(norm, "clip_grad_norm"),
        torch.tensor(true_norm * 1e3, dtype=torch.float64),
        what="the norm returned when clipping does happen",
        rtol=1e-5,
        hint="return the norm before clipping.",
        diagnose=[
            (
                torch.tensor(1.0, dtype=torch.float64),
                "you returned the norm after clipping (≈ max_norm): return the norm before it.",
            )
        ],
    )


# --------------------------------------------------------------------------- cross_entropy
def torch_ce(logits, targets, eps=0.0, ignore_index=-100):
    C = logits.size(-1)
    return F.cross_entropy(
        logits.reshape(-1, C), targets.reshape(-1), label_smoothing=eps, ignore_index=ignore_index
    )


def ce_bugs(logits, targets, eps=0.0, ignore_index=-100):
    """Losses of the classic mistakes."""
    C = logits.size(-1)
    logits, targets = logits.reshape(-1, C).double(), targets.reshape(-1)
    keep = targets != ignore_index
    logp = logits.log_softmax(-1)
    nll = -logp.gather(1, targets.clamp(0, C - 1).unsqueeze(1)).squeeze(1)
    others = (-logp.sum(-1) - nll) / (C - 1)
    bugs = []

    def mean(v):
        return ((v * keep).sum() / keep.sum()).float()

    if eps:
        bugs.append(
            (
                mean((1 - eps) * nll + eps * others),
                "label smoothing spreads ε/(C−1) over the other classes; the convention is ε/C over all C classes (the true one included), as in PyTorch.",
            )
        )
        bugs.append((mean((1 - eps) * nll), "the smoothing term is missing: add (ε/C) Σ_c −log p_c."))
        bugs.append((mean(nll), "label_smoothing was ignored."))
    full = (1 - eps) * nll + eps * (-logp.mean(-1))
    if not bool(keep.all()):
        bugs.append(
            (
                (full * keep).sum().float() / targets.numel(),
                "ignored positions are counted in the mean: divide by the number of non-ignored targets.",
            )
        )
        bugs.append(
            (full.mean().float(), "positions with target == ignore_index still contribute to the loss.")
        )
    bugs.append(((full * keep).sum().float(), "the loss is summed, not averaged over the targets."))
    return bugs


@pytest.mark.points(2)
def test_cross_entropy_matches_torch(student, gen):
    """cross_entropy equals F.cross_entropy on (N, C) and (B, T, C) logits"""
    logits = torch.randn(7, 5, generator=gen) * 3
    targets = torch.randint(0, 5, (7,), generator=gen)
    check_close(
        student.cross_entropy(logits, targets),
        torch_ce(logits, targets),
        what="cross_entropy of (7, 5) logits",
        hint="mean over targets of −log softmax(logits)[target]; log-softmax = x − max − log Σ exp(x − max).",
        diagnose=ce_bugs(logits, targets),
    )
    logits = torch.randn(2, 6, 11, generator=gen) * 3
    targets = torch.randint(0, 11, (2, 6), generator=gen)
    check_close(
        student.cross_entropy(logits, targets),
        torch_ce(logits, targets),
        what="cross_entropy of (B=2, T=6, C=11) logits with (2, 6) targets",
        hint="the class axis is the last one: flatten to (B·T, C) and (B·T,).",
    )


@pytest.mark.points(2)
def test_cross_entropy_label_smoothing(student, gen):
    """Label smoothing ε: (1−ε)(−log p_y) + (ε/C) Σ_c (−log p_c), as in PyTorch"""
    eps = round(uniform(gen, 0.05, 0.3), 3)
    logits = torch.randn(3, 5, 9, generator=gen) * 2
    targets = torch.randint(0, 9, (3, 5), generator=gen)
    check_close(
        student.cross_entropy(logits, targets, label_smoothing=eps),
        torch_ce(logits, targets, eps),
        what=f"cross_entropy with label_smoothing={eps}",
        hint="the smoothed target puts 1−ε+ε/C on the true class and ε/C on every class.",
        diagnose=ce_bugs(logits, targets, eps),
    )


@pytest.mark.points(2)
def test_cross_entropy_ignore_index(student, gen):
    """Targets equal to ignore_index (−100 by default, or any id) are left out of the mean"""
    logits = torch.randn(4, 6, 7, generator=gen) * 2
    targets = torch.randint(0, 7, (4, 6), generator=gen)
    targets[torch.rand(4, 6, generator=gen) < 0.3] = -100
    targets[0, 0] = -100
    check_close(
        student.cross_entropy(logits, targets, label_smoothing=0.1),
        torch_ce(logits, targets, 0.1),
        what="cross_entropy with some targets = -100 (and label_smoothing=0.1)",
        hint="mask the ignored positions and divide by how many targets remain.",
        diagnose=ce_bugs(logits, targets, 0.1),
    )
    targets = torch.randint(0, 7, (4, 6), generator=gen)
    targets[0, :3] = 3
    check_close(
        student.cross_entropy(logits, targets, ignore_index=3),
        torch_ce(logits, targets, ignore_index=3),
        what="cross_entropy with ignore_index=3 (a real class id)",
        hint="compare targets with the ignore_index argument, not with -100.",
        diagnose=ce_bugs(logits, targets, ignore_index=3),
    )


@pytest.mark.points(2)
def test_cross_entropy_stable_at_1000x(student, gen):
    """No overflow, NaN or inf at 1000× logits; equal to PyTorch's"""
    logits = torch.randn(6, 10, generator=gen) * 1000
    targets = torch.randint(0, 10, (6,), generator=gen)
    loss = student.cross_entropy(logits, targets, label_smoothing=0.1)
    check(
        isinstance(loss, torch.Tensor) and bool(torch.isfinite(loss).all()),
        "cross_entropy of logits around ±1000 is not finite.",
        "exp(1000) overflows: subtract the row maximum before exponentiating (log-sum-exp trick).",
    )
    check_close(loss, torch_ce(logits, targets, 0.1), what="cross_entropy at 1000× logits", rtol=1e-5)


@pytest.mark.points(2)
def test_cross_entropy_gradients(submission, gen):
    """d loss / d logits equals PyTorch's (softmax − smoothed one-hot, averaged)"""
    logits = torch.randn(3, 4, 6, generator=gen)
    targets = torch.randint(0, 6, (3, 4), generator=gen)
    targets[1, 2] = -100
    kwargs = {"label_smoothing": 0.2}
    loss, grad = submission.run(cross_entropy_grad, submission.module(), logits, targets, kwargs)
    leaf = logits.clone().requires_grad_(True)
    torch_ce(leaf, targets, 0.2).backward()
    check(grad is not None, "no gradient reached the logits: is the graph cut (detach, .item(), numpy)?")
    check_close(grad, leaf.grad, what="d cross_entropy / d logits", atol=1e-6, rtol=1e-5)


@pytest.mark.points(1)
def test_cross_entropy_built_from_scratch(submission, student, gen):
    """cross_entropy is built from tensor operations, not F.cross_entropy / F.nll_loss"""
    logits, targets = torch.randn(4, 3, generator=gen), torch.randint(0, 3, (4,), generator=gen)
    check_close(
        student.cross_entropy(logits, targets),
        torch_ce(logits, targets),
        what="cross_entropy (checked first)",
    )
    forbidden = {"cross_entropy", "nll_loss", "CrossEntropyLoss", "NLLLoss"}
    offences = [
        f"line {node.lineno}: {node.func.attr}"
        for node in ast.walk(ast.parse(submission.source()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in forbidden
    ]
    check(not offences, "this week builds the loss itself; found " + "; ".join(offences) + ".")
