"""Week 7 hidden suite, part 1: learning-rate schedule, gradient clipping, cross-entropy.

Oracles: the closed form of the schedule and Hugging Face's cosine-with-warmup formula,
``torch.nn.utils.clip_grad_norm_``, ``torch.nn.functional.cross_entropy`` and autograd.
Inputs are drawn from the grading seed (`gen`).
"""

# What this part holds the student to, and where each edge is tested (CONVENTIONS.md
# § Optimisation and § Objectives and data, and the docstrings of solutions/w07_training.py):
#
# lr_schedule
#   step 0 gives 0; the last warmup step (warmup−1) is below max_lr; the first decay step
#   (warmup) is max_lr exactly; progress counted from warmup_steps, reaching 1 at total_steps
#   (min_lr there); min_lr floor after total; steps far past the end ......... closed_form
#   warmup_steps = 0 (cosine from step 0, no division by zero); min_lr = 0 equals
#   Hugging Face on every step 0…total ................................. matches_hugging_face
# clip_grad_norm
#   one global norm over every parameter (not per tensor, not a sum of norms); None and
#   frozen gradients skipped and left None; a generator of parameters ...... clip_matches_torch
#   pre-clip norm returned; coefficient clamped at 1 ......... clip_returns_pre_clip_norm_…
#   tiny norms (the + 1e-6); a norm exactly at max_norm; one tensor instead of an iterable;
#   no gradients at all (returns 0) ........................................... clip_edges
# cross_entropy
#   ε = 0 is plain cross-entropy on (N, C) and (B, T, C) ............ cross_entropy_matches_torch
#   ε/C over all C classes, the (1 − ε) on the true class ......... cross_entropy_label_smoothing
#   ignore_index −100 (never used as a class index) and a custom one; the mean over kept
#   targets only ................................................... cross_entropy_ignore_index
#   max-subtracted log-softmax at 1000× logits ..................... cross_entropy_stable_at_1000x
#   gradients; built from tensor operations ................ cross_entropy_gradients / …from_scratch

from __future__ import annotations

import ast
import math

import pytest
import torch
import torch.nn.functional as F

from autograder.checks import Example, GradingFailure, check, check_close, convention, matches
from autograder.drivers.common import one_thread
from autograder.drivers.w07 import clip_run, cross_entropy_grad, schedule_values
from autograder.isolation import SubmissionError

pytestmark = pytest.mark.w07

OPT = convention("Optimisation")
OBJ = convention("Objectives and data")


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


def _not_ours(exc: SubmissionError) -> bool:
    """A stub's NotImplementedError is reported as it is, never re-worded."""
    return exc.exc_type == "NotImplementedError"


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
    """Schedules of the classic mistakes, one value per step (each evaluated only where its
    formula applies, so warmup_steps = 0 divides nothing)."""

    def cosine(step, span_from, span):
        progress = (step - span_from) / span
        return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (max_lr - min_lr)

    def right(s):
        return closed_form(s, max_lr, warmup, total, min_lr)

    def decay(s, value):  # the right warmup and tail, another decay in between
        return right(s) if s < warmup or s >= total else value(s)

    variants = {
        "warmup is one step ahead: at step s the rate is max_lr·s/warmup_steps (0 at step 0, just "
        "below max_lr at the last warmup step), not max_lr·(s+1)/warmup_steps.": lambda s: (
            max_lr * (s + 1) / warmup if s < warmup else right(s)
        ),
        "warmup divides by warmup_steps + 1 (the rate is not 0 at step 0): it is max_lr·s/warmup_steps, "
        "0 at step 0 and max_lr exactly at step warmup_steps.": lambda s: (
            max_lr * (s + 1) / (warmup + 1) if s < warmup else right(s)
        ),
        "the cosine never reaches min_lr at total_steps: its progress must run from 0 at warmup_steps "
        "to 1 at total_steps (divide by total_steps - warmup_steps).": lambda s: decay(
            s, lambda s: cosine(s, warmup, total)
        ),
        "the cosine's progress is counted from step 0 instead of from the end of warmup: progress = "
        "(step - warmup_steps) / (total_steps - warmup_steps), 0 at the first decay step (rate "
        "max_lr) and 1 at total_steps.": lambda s: decay(s, lambda s: cosine(s, 0, total)),
        "the cosine ends at 0 instead of min_lr: decay from max_lr to min_lr, "
        "min_lr + ½(1 + cos πp)(max_lr - min_lr), so the rate at total_steps is the min_lr floor.": lambda s: (
            decay(s, lambda s: closed_form(s, max_lr, warmup, total, 0.0))
        ),
        "the cosine ends at 0 and stays there instead of the min_lr floor: decay from max_lr to min_lr, "
        "min_lr + ½(1 + cos πp)(max_lr - min_lr), and hold min_lr after total_steps.": lambda s: (
            closed_form(s, max_lr, warmup, total, 0.0) if s < total else 0.0
        ),
        "the cosine's amplitude is max_lr instead of max_lr - min_lr: the decay starts at max_lr + min_lr. "
        "Use min_lr + ½(1 + cos πp)(max_lr - min_lr).": lambda s: decay(
            s, lambda s: min_lr + 0.5 * (1 + math.cos(math.pi * (s - warmup) / (total - warmup))) * max_lr
        ),
        "after total_steps the rate climbs back up: the cosine must stop at the min_lr floor once "
        "step >= total_steps.": lambda s: cosine(s, warmup, total - warmup) if s >= total else right(s),
    }
    return [
        (torch.tensor([f(s) for s in steps], dtype=torch.float64), f"{text} ({OPT})")
        for text, f in variants.items()
    ]


def _schedule_config(gen):
    warmup = randint(gen, 3, 20)
    total = warmup + randint(gen, 10, 100)
    max_lr = uniform(gen, 1e-4, 1e-2)
    return warmup, total, max_lr


def _schedule_example(submission, min_lr: float = 0.1, warmup: int = 2) -> Example:
    steps = list(range(8))
    kwargs = dict(max_lr=1.0, warmup_steps=warmup, total_steps=6, min_lr=min_lr)
    return Example(
        f"lr_schedule(s, max_lr=1.0, warmup_steps={warmup}, total_steps=6, min_lr={min_lr}) for s = 0…7",
        torch.tensor([closed_form(s, 1.0, warmup, 6, min_lr) for s in steps], dtype=torch.float64),
        lambda: as_floats(submission.run(schedule_values, submission.module(), steps, kwargs), "lr_schedule"),
    )


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
        hint="warmup max_lr·step/warmup_steps for step < warmup_steps, cosine to min_lr at total_steps, "
        f"min_lr after ({OPT}).",
        diagnose=schedule_bugs(steps, max_lr, warmup, total, min_lr),
        example=_schedule_example(submission),
    )


ZERO_WARMUP = (
    "lr_schedule with warmup_steps=0 divides by zero: zero warmup steps means no warmup at all, so "
    "step 0 is already on the cosine (rate max_lr); only a step with step < warmup_steps is a warmup "
    f"step ({OPT})."
)


@pytest.mark.points(2)
def test_lr_schedule_matches_hugging_face(submission, gen):
    """With min_lr = 0 the schedule equals Hugging Face's get_cosine_schedule_with_warmup"""
    warmup, total, max_lr = _schedule_config(gen)
    for w in (warmup, 0):  # warmup_steps = 0 starts the cosine at once (and must not divide by zero)
        steps = list(range(total + 1))
        kwargs = dict(max_lr=max_lr, warmup_steps=w, total_steps=total)
        try:
            values = submission.run(schedule_values, submission.module(), steps, kwargs)
        except SubmissionError as exc:
            if w == 0 and exc.exc_type == "ZeroDivisionError":
                raise GradingFailure(ZERO_WARMUP) from None
            raise
        got = as_floats(values, "lr_schedule")
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
            diagnose=schedule_bugs(steps, max_lr, w, total, 0.0),
            example=_schedule_example(submission, 0.0, 2 if w else 0),
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


def _scaled(grads, max_norm: float, norm: torch.Tensor):
    """Each gradient times min(1, max_norm / (norm + 1e-6)), in float32 as the reference does."""
    coef = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
    return [g * coef for g in grads]


NO_GRAD_CRASH = (
    "clip_grad_norm fails on a parameter without a gradient (its .grad is None: frozen, or not used "
    "by the loss): skip such parameters, as torch.nn.utils.clip_grad_norm_ does "
    f"({OPT})."
)
GENERATOR = (
    "the norm is right but your gradients came back unscaled, although a list of the same parameters "
    "is clipped: `parameters` may be a generator (model.parameters()), which is empty the second time "
    f"you loop over it. Turn it into a list first ({OPT})."
)
PER_TENSOR = (
    f"each gradient was clipped by its own norm: the norm is one global L2 norm over all of them ({OPT})."
)
SUMMED = (
    "the per-tensor norms were added: the global norm is sqrt(Σ_p ||g_p||²), the L2 norm of all "
    f"gradient entries together, not Σ_p ||g_p|| ({OPT})."
)


@pytest.mark.points(3)
def test_clip_matches_torch(submission, gen):
    """clip_grad_norm scales every gradient like torch.nn.utils.clip_grad_norm_ (None and frozen skipped)"""
    grads, frozen = _grads(gen, 2.0), [3]  # parameter 3 is frozen: requires_grad=False, no grad
    max_norm = uniform(gen, 0.5, 2.0)
    live = [g for i, g in enumerate(grads) if g is not None and i not in frozen]
    try:
        norm, got = submission.run(clip_run, submission.module(), grads, max_norm, frozen)
    except SubmissionError as exc:
        if _not_ours(exc):
            raise
        try:  # the same gradients, with no None among them: does that work?
            submission.run(clip_run, submission.module(), live, max_norm, [])
        except SubmissionError:
            raise exc from None
        raise GradingFailure(NO_GRAD_CRASH) from None
    expected_norm, expected = _torch_clip(grads, frozen, max_norm)
    check(got[1] is None, "a parameter whose .grad is None must keep .grad = None (skip it).")
    norms = torch.stack([g.norm() for g in live])
    per_tensor = [g * min(1.0, max_norm / (float(g.norm()) + 1e-6)) for g in live]
    summed = _scaled(live, max_norm, norms.sum())

    def diagnoses(k: int, i: int):
        def make():
            found = [(per_tensor[k], PER_TENSOR), (summed[k], SUMMED)]
            if isinstance(got[i], torch.Tensor) and torch.equal(got[i], grads[i]):
                _, as_list = submission.run(
                    clip_run, submission.module(), grads, max_norm, frozen, container="list"
                )
                if all(matches(as_list[j], e, 1e-6, 1e-5) for j, e in enumerate(expected) if e is not None):
                    found.append((got[i], GENERATOR))
            return found

        return make

    for k, (i, e) in enumerate((i, e) for i, e in enumerate(expected) if e is not None):
        check_close(
            got[i],
            e,
            what=f"gradient {i} after clip_grad_norm(max_norm={max_norm:.3f})",
            atol=1e-6,
            hint="one global norm over all gradients, sqrt(Σ_p ||g_p||²); every gradient scaled by the same "
            f"max_norm / (norm + 1e-6) ({OPT}).",
            diagnose=diagnoses(k, i),
            example=Example(
                "gradients [3.] and [4.], max_norm = 1",
                torch.tensor([0.6, 0.8]),
                lambda: torch.cat(
                    submission.run(
                        clip_run, submission.module(), [torch.tensor([3.0]), torch.tensor([4.0])], 1.0, []
                    )[1]
                ),
            ),
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
                f"you returned the norm after clipping: return the norm before it ({OPT}).",
            ),
            (norms.sum().double(), SUMMED),
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
                        "gradients were scaled up to max_norm: the coefficient is min(1, max_norm / (norm + 1e-6)), "
                        f"clamped at 1 ({OPT}).",
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
                "you returned the norm after clipping (≈ max_norm): return the norm before it, as "
                f"torch.nn.utils.clip_grad_norm_ does ({OPT}).",
            )
        ],
    )


SINGLE = (
    "clip_grad_norm(p, max_norm) with a single tensor p found no gradient: a lone tensor must be "
    "treated as [p] (looping over a tensor walks its rows, which have no .grad)."
)


@pytest.mark.points(2)
def test_clip_edges(submission, gen):
    """clip_grad_norm at its edges: tiny norms (the + 1e-6), a norm exactly at max_norm, one tensor, no gradients"""
    module = submission.module()
    # Tiny gradients: the + 1e-6 in the denominator changes the coefficient by about 0.25%.
    tiny = [torch.randn(4, 3, generator=gen) * 1e-4, None, torch.randn(5, generator=gen) * 1e-4]
    present = [g for g in tiny if g is not None]
    f32_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in present]))
    max_norm = float(f32_norm) / 2
    _, got = submission.run(clip_run, module, tiny, max_norm, [])
    _, expected = _torch_clip(tiny, [], max_norm)
    without_eps = [g * torch.clamp(max_norm / f32_norm, max=1.0) for g in present]
    for k, i in enumerate((0, 2)):
        check_close(
            got[i],
            expected[i],
            what=f"gradient {i} after clipping gradients of norm {float(f32_norm):.2e} to half of it",
            atol=1e-12,
            rtol=1e-5,
            hint=f"every gradient is multiplied by min(1, max_norm / (norm + 1e-6)) ({OPT}).",
            diagnose=[
                (
                    without_eps[k],
                    "the coefficient has no + 1e-6: it is max_norm / (norm + 1e-6), which matters when the "
                    f"norm itself is tiny ({OPT}).",
                )
            ],
        )
    # A norm exactly at max_norm: 3/1024 and 4/1024 have norm 5/1024, exact in float32.
    exact = [torch.tensor([3.0]) / 1024, None, torch.tensor([4.0]) / 1024]
    _, got = submission.run(clip_run, module, exact, 5.0 / 1024, [])
    _, expected = _torch_clip(exact, [], 5.0 / 1024)
    for i in (0, 2):
        check_close(
            got[i],
            expected[i],
            what=f"gradient {i} of [3/1024], None, [4/1024] (norm 5/1024) clipped to max_norm = 5/1024",
            atol=1e-12,
            rtol=1e-5,
            hint=f"the coefficient min(1, max_norm / (norm + 1e-6)) is applied whatever the norm ({OPT}).",
            diagnose=[
                (
                    exact[i],
                    "with the norm exactly at max_norm your gradients were left unchanged: the coefficient "
                    "min(1, max_norm / (norm + 1e-6)) multiplies every gradient whatever the norm, and here it "
                    f"is just below 1, as in torch.nn.utils.clip_grad_norm_ ({OPT}).",
                )
            ],
        )
    # One tensor instead of an iterable of tensors.
    single = [torch.randn(6, generator=gen) * 3]
    norm, got = submission.run(clip_run, module, single, 1.0, [], container="single")
    expected_norm, expected = _torch_clip(single, [], 1.0)
    check_close(
        _norm_value(norm, "clip_grad_norm of one tensor"),
        expected_norm.double(),
        what="the norm returned by clip_grad_norm(p, 1.0) for a single tensor p",
        atol=1e-5,
        rtol=1e-5,
        diagnose=[(torch.tensor(0.0, dtype=torch.float64), SINGLE)],
    )
    check_close(
        got[0],
        expected[0],
        what="the gradient of a single tensor after clip_grad_norm(p, 1.0)",
        atol=1e-6,
        diagnose=[(single[0], SINGLE)],
    )
    # No gradient at all: the norm is 0 and nothing fails.
    try:
        norm, got = submission.run(clip_run, module, [None, None], 1.0, [])
    except SubmissionError as exc:
        if _not_ours(exc):
            raise
        raise GradingFailure(
            "with no gradients at all (every .grad is None) clip_grad_norm must return 0, as "
            f"torch.nn.utils.clip_grad_norm_ does; yours raised {exc}"
        ) from None
    check_close(
        _norm_value(norm, "clip_grad_norm with no gradients at all"),
        torch.tensor(0.0, dtype=torch.float64),
        what="the norm returned when every .grad is None (no gradients at all)",
        atol=0.0,
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
                "label smoothing spreads ε/(C−1) over the other classes; the convention is ε/C over all C "
                f"classes (the true one included), as in PyTorch ({OBJ}).",
            )
        )
        bugs.append(
            (
                mean((1 - eps) * nll + eps * -logp.sum(-1)),
                "the smoothing term is C times too large: it is (ε/C) Σ_c −log p_c, a mean over the C "
                f"classes, not a sum ({OBJ}).",
            )
        )
        bugs.append(
            (
                mean(nll + eps * -logp.mean(-1)),
                "the true class keeps its full weight: the one-hot target is scaled by (1 − ε) before ε/C "
                f"is added to every class, so the smoothed target still sums to 1 ({OBJ}).",
            )
        )
        bugs.append(
            (mean((1 - eps) * nll), f"the smoothing term is missing: add (ε/C) Σ_c −log p_c ({OBJ}).")
        )
        bugs.append((mean(nll), f"label_smoothing was ignored: the loss is plain cross-entropy ({OBJ})."))
    full = (1 - eps) * nll + eps * (-logp.mean(-1))
    if not bool(keep.all()):
        bugs.append(
            (
                (full * keep).sum().float() / targets.numel(),
                "ignored positions are counted in the mean: divide by the number of non-ignored targets "
                f"({OBJ}).",
            )
        )
        if ignore_index != -100:
            bugs.append(
                (
                    full.mean().float(),
                    f"positions whose target is ignore_index={ignore_index} still count: compare the targets "
                    f"with the ignore_index argument, not with the literal -100 ({OBJ}).",
                )
            )
        else:
            bugs.append(
                (
                    full.mean().float(),
                    f"positions with target == ignore_index still contribute to the loss ({OBJ}).",
                )
            )
    bugs.append(((full * keep).sum().float(), f"the loss is summed, not averaged over the targets ({OBJ})."))
    return bugs


TWO = torch.tensor([[0.0, math.log(3.0)]])  # p = [¼, ¾]: the notes' worked example


def _ce_example(student, eps: float = 0.0) -> Example:
    text = "logits = [[0., ln 3]], targets = [1]" + (f", label_smoothing={eps}" if eps else "")
    return Example(
        text,
        torch_ce(TWO, torch.tensor([1]), eps),
        lambda: student.cross_entropy(TWO, torch.tensor([1]), label_smoothing=eps),
    )


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
        example=_ce_example(student),
    )
    logits = torch.randn(2, 6, 11, generator=gen) * 3
    targets = torch.randint(0, 11, (2, 6), generator=gen)
    check_close(
        student.cross_entropy(logits, targets),
        torch_ce(logits, targets),
        what="cross_entropy of (B=2, T=6, C=11) logits with (2, 6) targets",
        hint="the class axis is the last one: flatten to (B·T, C) and (B·T,).",
        example=_ce_example(student),
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
        example=_ce_example(student, 0.2),
    )


IGNORE_CRASH = (
    "cross_entropy fails when some targets are -100: -100 is not a valid class index for gather or "
    "indexing. Replace the ignored targets by any valid class (0, say) before gathering, then mask "
    f"those positions out of the mean ({OBJ})."
)


@pytest.mark.points(2)
def test_cross_entropy_ignore_index(student, gen):
    """Targets equal to ignore_index (−100 by default, or any id) are left out of the mean"""
    logits = torch.randn(4, 6, 7, generator=gen) * 2
    targets = torch.randint(0, 7, (4, 6), generator=gen)
    targets[torch.rand(4, 6, generator=gen) < 0.3] = -100
    targets[0, 0] = -100
    try:
        got = student.cross_entropy(logits, targets, label_smoothing=0.1)
    except SubmissionError as exc:
        if _not_ours(exc):
            raise
        try:  # the same call with no ignored target
            student.cross_entropy(logits, targets.clamp(min=0), label_smoothing=0.1)
        except SubmissionError:
            raise exc from None
        raise GradingFailure(IGNORE_CRASH) from None
    both = torch.cat([TWO, torch.zeros(1, 2)])
    check_close(
        got,
        torch_ce(logits, targets, 0.1),
        what="cross_entropy with some targets = -100 (and label_smoothing=0.1)",
        hint="mask the ignored positions and divide by how many targets remain.",
        diagnose=ce_bugs(logits, targets, 0.1),
        example=Example(
            "logits = [[0., ln 3], [0., 0.]], targets = [1, -100]",
            torch_ce(both, torch.tensor([1, -100])),
            lambda: student.cross_entropy(both, torch.tensor([1, -100])),
        ),
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
        "cross_entropy of logits around ±1000 is not finite: exp(1000) overflows. Subtract each row's "
        f"maximum before exponentiating (the log-sum-exp trick) ({OBJ}).",
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
