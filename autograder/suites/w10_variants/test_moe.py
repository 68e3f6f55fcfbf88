"""Week 10 hidden suite, part 2: top-k routing, expert counts, the load-balancing loss, the MoE layer.

Routing, counts and the loss are recomputed here by explicit loops over tokens; the layer is
rebuilt token by token from its state dict with F.linear and F.gelu. Counts and expert indices
are compared exactly.
"""

from __future__ import annotations

import pytest
import torch

from autograder.checks import Example, check, check_close, check_equal, convention
from autograder.drivers.w10 import balancing_loss_grad, moe_grads
from autograder.suites.w10_variants import oracle

pytestmark = pytest.mark.w10

BLOCKS = convention("Blocks")
# Largest |reference − token-by-token oracle| of the layer over 20 seeds: 4e-7; composites get 1e-5.
ATOL = 1e-5


def randn(gen, *shape):
    return torch.randn(*shape, generator=gen)


def route_bugs(logits, top_k, renormalize):
    def bugs():
        weights, experts = oracle.route(logits, top_k, renormalize)
        return [
            (
                oracle.route(logits, top_k, not renormalize)[0],
                (
                    "the kept weights are not renormalised: with renormalize=True divide the top-k "
                    "probabilities by their sum (Mixtral), so they sum to 1"
                    if renormalize
                    else "the kept weights are renormalised although renormalize=False: keep the softmax "
                    "probabilities themselves (Switch Transformer)"
                )
                + f" ({BLOCKS}).",
            ),
            (
                torch.gather(logits, -1, experts),
                f"the weights are raw router logits: route takes the softmax over all experts first ({BLOCKS}).",
            ),
            (
                torch.full_like(weights, 1 / top_k),
                f"the weights are uniform (1/top_k): they are the router's probabilities ({BLOCKS}).",
            ),
        ]

    return bugs


# --------------------------------------------------------------------------- routing
@pytest.mark.points(3)
def test_route_matches_loops(student, gen):
    """route: softmax, top-k in decreasing order, renormalised or not; experts compared exactly"""
    E = 5  # not a power of two
    logits = randn(gen, 3, 4, E) * 2
    for top_k in (1, 2, 3):
        for renormalize in (True, False):
            weights, experts = student.route(logits, top_k, renormalize)
            ew, ee = oracle.route(logits, top_k, renormalize)
            label = f"route(logits of shape (3, 4, {E}), top_k={top_k}, renormalize={renormalize})"
            check_equal(
                experts,
                ee,
                what=f"experts of {label}",
                hint="the top_k most probable experts per token, most probable first, int64.",
                diagnose=[
                    (
                        ee.flip(-1),
                        f"the experts are in increasing order of probability: list the most probable first ({BLOCKS}).",
                    ),
                    (
                        torch.sort(ee, dim=-1).values,
                        f"the experts are sorted by index: list them by decreasing probability ({BLOCKS}).",
                    ),
                    (
                        torch.topk(logits, top_k, dim=-1, largest=False).indices,
                        f"these are the least probable experts: take the largest probabilities ({BLOCKS}).",
                    ),
                ],
            )
            check_close(
                weights,
                ew,
                what=f"weights of {label}",
                atol=1e-6,
                hint="weights are softmax probabilities of the chosen experts, divided by their sum when "
                "renormalize is true.",
                diagnose=route_bugs(logits, top_k, renormalize),
            )


@pytest.mark.points(2)
def test_route_ties_go_to_lower_index(student, gen):
    """Equal probabilities go to the lower expert index first (a zero router routes everyone alike)"""
    E = 6
    logits = torch.zeros(4, E)
    logits[1] = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 0.0])
    logits[2] = torch.tensor([2.0, 2.0, -1.0, 2.0, 2.0, 2.0])
    logits[3] = randn(gen, E).round()  # random small integers: ties are likely
    for top_k in (2, 3):
        _, experts = student.route(logits, top_k)
        expected = oracle.route(logits, top_k)[1]
        check_equal(
            experts,
            expected,
            what=f"experts of route with tied logits, top_k={top_k}",
            hint="sort the probabilities with torch.sort(descending=True, stable=True): a stable sort "
            "keeps tied experts in index order.",
            diagnose=[
                (
                    oracle.route(logits, top_k, order="high")[1],
                    f"ties go to the higher expert index; the course breaks ties toward the lower index "
                    f"({BLOCKS}).",
                ),
                (
                    torch.topk(torch.softmax(logits, -1), top_k, dim=-1).indices,
                    "torch.topk orders tied values in no documented order (this is its choice); the course "
                    f"breaks ties toward the lower expert index: use a stable descending sort ({BLOCKS}).",
                ),
            ],
            example=Example(
                "route(torch.zeros(1, 4), top_k=2)",
                torch.tensor([[0, 1]]),
                lambda: student.route(torch.zeros(1, 4), 2)[1],
            ),
        )


@pytest.mark.points(1)
def test_expert_counts(student, gen):
    """expert_counts counts every (token, slot) assignment, int64, unused experts 0"""
    E = 7
    experts = torch.randint(0, E - 2, (5, 3, 2), generator=gen)  # the last two experts are unused
    expected = oracle.counts(experts, E)
    check_equal(
        student.expert_counts(experts, E),
        expected,
        what=f"expert_counts(experts of shape (5, 3, 2), n_experts={E})",
        hint="torch.bincount over all the flattened indices, with minlength=n_experts.",
        diagnose=[
            (
                oracle.counts(experts[..., :1], E),
                "only the first choice of each token is counted: every slot counts.",
            ),
            (expected[: E - 2], "unused experts are missing: give n_experts counts (minlength)."),
        ],
    )


# --------------------------------------------------------------------------- load balancing
def loss_bugs(logits, experts):
    def bugs():
        return [
            (
                oracle.balancing_loss(logits, experts, "no_E"),
                f"the loss lacks the factor n_experts: Switch Transformer's loss is E · Σ f_i P_i, "
                f"which is 1 at perfect balance ({BLOCKS}).",
            ),
            (
                oracle.balancing_loss(logits, experts, "per_token"),
                f"f_i is divided by the number of tokens, not by the N · k assignments: with top_k > 1 "
                f"the fractions must still sum to 1 ({BLOCKS}).",
            ),
            (
                oracle.balancing_loss(logits, experts, "top1_only"),
                f"f_i counts only each token's first choice: every assignment of every slot counts ({BLOCKS}).",
            ),
        ]

    return bugs


@pytest.mark.points(3)
def test_load_balancing_loss(student, gen):
    """E · Σ f_i P_i by loops; 1 at perfect balance, E when one sure expert takes everything"""
    E = 6
    logits = randn(gen, 2, 9, E)
    for top_k in (1, 2, 3):
        experts = oracle.route(logits, top_k)[1]
        check_close(
            student.load_balancing_loss(logits, experts),
            oracle.balancing_loss(logits, experts),
            what=f"load_balancing_loss(logits (2, 9, {E}), experts of top_k={top_k})",
            atol=1e-6,
            hint="f_i = assignments to i / (N · k), P_i = mean router probability of i, loss = E · Σ f_i P_i.",
            diagnose=loss_bugs(logits, experts),
        )
    # Balanced: every expert gets the same share and the same mean probability.
    balanced = torch.zeros(E, E)
    experts = torch.arange(E)[:, None]
    check_close(
        student.load_balancing_loss(balanced, experts),
        torch.tensor(1.0),
        what="load_balancing_loss at perfect balance (uniform router, each expert chosen once)",
        atol=1e-6,
        diagnose=loss_bugs(balanced, experts),
        example=Example(
            "load_balancing_loss(torch.zeros(2, 2), torch.tensor([[0], [1]]))",
            torch.tensor(1.0),
            lambda: student.load_balancing_loss(torch.zeros(2, 2), torch.tensor([[0], [1]])),
        ),
    )
    collapsed = torch.full((5, E), -30.0)
    collapsed[:, 2] = 30.0
    check_close(
        student.load_balancing_loss(collapsed, torch.full((5, 1), 2)),
        torch.tensor(float(E)),
        what="load_balancing_loss when one certain expert takes every token",
        atol=1e-5,
        diagnose=loss_bugs(collapsed, torch.full((5, 1), 2)),
    )


@pytest.mark.points(1)
def test_load_balancing_loss_gradient(submission, gen):
    """The loss is differentiable through P (the router's probabilities), not through the counts"""
    logits, E = randn(gen, 8, 4), 4
    experts = oracle.route(logits, 2)[1]
    loss, grad = submission.run(balancing_loss_grad, submission.module(), logits, experts)
    check(
        grad is not None, "no gradient reaches the router logits: P_i must be the mean of a softmax of them."
    )
    leaf = logits.clone().requires_grad_(True)
    f = oracle.counts(experts, E).float() / experts.numel()
    (E * (f * torch.softmax(leaf, -1).mean(0)).sum()).backward()
    check_close(
        grad,
        leaf.grad,
        what="d(load_balancing_loss)/d(router logits)",
        atol=1e-6,
        hint="f_i comes from counts (no gradient); the gradient flows through P_i = mean softmax.",
    )


# --------------------------------------------------------------------------- the layer
def moe_state(layer, gen):
    """Random weights for a MoE layer: router ~ N(0, 1), linear weights ~ N(0, 1/d_in)."""
    sd = {}
    for name, t in layer.state_dict().items():
        if name == "router.weight":
            sd[name] = randn(gen, *t.shape)
        elif name.endswith("bias"):
            sd[name] = randn(gen, *t.shape) * 0.3
        else:
            sd[name] = randn(gen, *t.shape) / t.shape[-1] ** 0.5
    layer.load_state_dict(sd)
    return sd


@pytest.mark.points(2)
def test_moe_parameters(submission, gen):
    """router (E, d) without bias; E week-4 FeedForward experts; exact counts"""
    module = submission.module()
    for d, E, k, d_ff, act, bias in ((8, 3, 2, None, "gelu", True), (6, 5, 1, 10, "swiglu", False)):
        layer = module.MoEFeedForward(d, E, k, d_ff, act, bias)
        shapes = {name: tuple(t.shape) for name, t in layer.state_dict().items()}
        check(
            shapes.get("router.weight") == (E, d) and "router.bias" not in shapes,
            f"MoEFeedForward({d}, {E}): router parameters {[n for n in shapes if n.startswith('router')]}, "
            f"router.weight {shapes.get('router.weight')}; expected router.weight ({E}, {d}) and no bias.",
            "self.router = nn.Linear(d_model, n_experts, bias=False).",
        )
        first = {n.split(".", 2)[2]: s for n, s in shapes.items() if n.startswith("experts.0.")}
        width = 4 * d if d_ff is None else d_ff
        want = {"w1.weight": (width, d), "w2.weight": (d, width)}
        check(
            all(first.get(n) == s for n, s in want.items()),
            f"experts.0 holds {first}; expected week 4's FeedForward(d_model={d}, d_ff={width}).",
            "self.experts = nn.ModuleList(FeedForward(d_model, d_ff, activation, bias) for each expert).",
        )
        total = sum(t.numel() for t in layer.state_dict().values())
        check_equal(
            total,
            oracle.moe_param_counts(d, E, k, d_ff, act, bias)[0],
            what=f"parameters of MoEFeedForward({d}, {E}, top_k={k}, d_ff={d_ff}, {act!r}, bias={bias})",
        )


@pytest.mark.points(2)
def test_moe_param_counts(student, gen):
    """moe_param_counts: (total, active) by closed form, Mixtral-like anchor included"""
    d = int(torch.randint(3, 40, (1,), generator=gen))
    cases = [
        (4096, 8, 2, 14336, "swiglu", False),  # Mixtral 8x7B's FFN layer
        (d, 5, 1, None, "gelu", True),
        (d, 6, 3, 2 * d + 1, "swiglu", True),
        (d, 4, 4, 7, "relu", False),
    ]
    for args in cases:
        expected = oracle.moe_param_counts(*args)
        total, active = expected
        router = args[0] * args[1]
        check_equal(
            tuple(student.moe_param_counts(*args)),
            expected,
            what=f"moe_param_counts{args}",
            hint="every expert is stored (total); a token runs through top_k experts (active); the router "
            "(d_model × n_experts, no bias) is in both; SwiGLU experts have three matrices (w1, w2, w3).",
            diagnose=[
                (
                    (total - router, active - router),
                    "the router's d_model × n_experts weights are missing from both counts.",
                ),
                ((total, total), "active counts every expert: a token uses only top_k of them."),
                ((active, total), "the two counts are swapped: the result is (total, active)."),
                *(
                    [
                        (
                            oracle.moe_param_counts(*args[:4], "gelu", args[5]),
                            "SwiGLU experts are counted with two matrices: they have three (w1, w2, w3).",
                        )
                    ]
                    if args[4] == "swiglu"
                    else []
                ),
            ],
        )


@pytest.mark.points(4)
def test_moe_forward_matches_loops(student, gen):
    """MoE output, counts and aux_loss equal a token-by-token oracle (top 1 and top 2, both weightings)"""
    d, E = 8, 5
    x = randn(gen, 2, 6, d)
    for top_k, renormalize in ((2, True), (1, False), (3, False)):
        layer = student.MoEFeedForward(d, E, top_k, 12, "gelu", True, renormalize)
        sd = moe_state(layer, gen)
        expected, aux, counts = oracle.moe_forward(sd, x, E, top_k, renormalize)
        label = f"MoEFeedForward(top_k={top_k}, renormalize={renormalize})"
        check_close(
            layer(x),
            expected,
            what=f"{label} output on (2, 6, {d})",
            atol=ATOL,
            hint="out[token] = Σ over its top_k experts of weight · expert(x[token]); accumulate (index_add), "
            "never assign, since a token has several experts.",
            diagnose=lambda sd=sd, top_k=top_k, renormalize=renormalize: [
                (
                    oracle.moe_forward(sd, x, E, top_k, renormalize, bug="renormalize_flip")[0],
                    f"the layer ignores its renormalize flag: pass it to route ({BLOCKS}).",
                ),
                (
                    oracle.moe_forward(sd, x, E, top_k, renormalize, bug="overwrite")[0],
                    "a token keeps the output of one expert only: out[tokens] = … overwrites the "
                    "contributions of the token's other experts; add them (index_add).",
                ),
                (
                    oracle.moe_forward(sd, x, E, top_k, renormalize, bug="unweighted")[0],
                    f"the expert outputs are added without their routing weights ({BLOCKS}).",
                ),
            ],
        )
        check_equal(
            layer.last_counts,
            counts,
            what=f"{label}.last_counts",
            hint="expert_counts of this call's routing, (n_experts,) int64.",
        )
        check_close(
            layer.aux_loss,
            aux,
            what=f"{label}.aux_loss",
            atol=1e-5,
            hint="load_balancing_loss(router logits of this call, chosen experts).",
        )
    layer = student.MoEFeedForward(d, E, 2)
    sd = moe_state(layer, gen)
    flat = randn(gen, 7, d)
    check_close(
        layer(flat),
        oracle.moe_forward(sd, flat, E, 2)[0],
        what="MoE output on 2-D (N, d_model) input",
        atol=ATOL,
        hint="flatten the leading axes to tokens and restore them at the end.",
    )


@pytest.mark.points(2)
def test_moe_gradients(submission, gen):
    """The router learns from the output (through the weights) and from aux_loss"""
    module = submission.module()
    d, E = 6, 4
    layer = module.MoEFeedForward(d, E, 2, 8)
    sd = moe_state(layer, gen)
    x, upstream = randn(gen, 9, d), randn(gen, 9, d)
    got = submission.run(moe_grads, layer, x, upstream)
    router = sd["router.weight"].clone().requires_grad_(True)
    sd_grad = {**sd, "router.weight": router}
    logits = x @ router.T
    weights, experts = oracle.route(logits.detach(), 2)
    probs = torch.softmax(logits, -1)
    kept = torch.gather(probs, -1, experts)
    kept = kept / kept.sum(-1, keepdim=True)
    outs = torch.stack(
        [
            sum(
                kept[n, s] * oracle.ffn(sd_grad, f"experts.{int(experts[n, s])}.", x[n], "gelu")
                for s in range(2)
            )
            for n in range(x.size(0))
        ]
    )
    (from_out,) = torch.autograd.grad((outs * upstream).sum(), router, retain_graph=True)
    f = oracle.counts(experts, E).float() / experts.numel()
    (from_aux,) = torch.autograd.grad(E * (f * probs.mean(0)).sum(), router)
    check(
        got["from_out"] is not None and bool(got["from_out"].abs().sum() > 0),
        "no gradient reaches the router from the layer's output: the expert outputs must be multiplied "
        "by the routing weights (a differentiable function of the router's logits), not detached.",
    )
    check_close(got["from_out"], from_out, what="d(<output, upstream>)/d router.weight", atol=1e-5, rtol=1e-4)
    check(
        got["from_aux"] is not None,
        "aux_loss does not depend on the router's weights: compute it from this call's router logits, "
        "keeping the graph (no detach, no .item()).",
    )
    check_close(got["from_aux"], from_aux, what="d(aux_loss)/d router.weight", atol=1e-6, rtol=1e-4)


@pytest.mark.points(1)
def test_moe_unused_experts(student, gen):
    """A zero router sends every token to experts 0 … k−1 (ties); unused experts get count 0"""
    d, E = 6, 4
    layer = student.MoEFeedForward(d, E, 2, 8)
    sd = moe_state(layer, gen)
    sd["router.weight"] = torch.zeros(E, d)
    layer.load_state_dict(sd)
    x = randn(gen, 3, 5, d)
    out = layer(x)
    check_equal(
        layer.last_counts,
        torch.tensor([15, 15, 0, 0]),
        what="last_counts with a zero router (all logits tied), 15 tokens, top_k=2",
        hint="ties go to the lower expert index; each of the 15 tokens is assigned to experts 0 and 1.",
    )
    check_close(out, oracle.moe_forward(sd, x, E, 2)[0], what="output with a zero router", atol=ATOL)
