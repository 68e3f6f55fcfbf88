"""Week 4 oracles: blocks rebuilt on the trusted side from PyTorch built-ins.

Everything here reads a *state dict* (tensors the test drew and loaded into the student's
module) and recomputes the block with ``F.layer_norm``, ``F.rms_norm``,
``F.scaled_dot_product_attention``, ``F.linear`` and ``F.gelu``; RoPE uses the complex-number
formulation, independent of week 3's code. ``bug=...`` switches on one classic mistake, so a
test can recognise it in a submission's output and name it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-5


# --------------------------------------------------------------------------- norms
def layer_norm(x, weight, bias, eps=EPS):
    return F.layer_norm(x, (x.size(-1),), weight, bias, eps)


def layer_norm_bugs(x, weight, bias, eps=EPS):
    """(output, diagnosis) of the classic LayerNorm mistakes."""
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, keepdim=True, unbiased=False)
    b = 0 if bias is None else bias

    def affine(y):
        return y * weight + b

    out = [
        (
            affine((x - mean) / torch.sqrt(x.var(-1, keepdim=True, unbiased=True) + eps)),
            "the variance is the unbiased one (divides by d − 1); LayerNorm uses the biased "
            "variance, mean((x − mean)²), dividing by d.",
        ),
        (
            affine((x - mean) / (torch.sqrt(var) + eps)),
            "eps is added outside the square root; it belongs inside: sqrt(var + eps).",
        ),
        (
            affine((x - mean) / torch.sqrt(var)),
            "eps is missing: divide by sqrt(var + eps) so a constant input stays finite.",
        ),
        (affine((x - mean) / (var + eps)), "the square root is missing: divide by sqrt(var + eps)."),
        (
            affine(x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)),
            "the mean is not subtracted (that is RMSNorm): LayerNorm centres each token first.",
        ),
        (
            (x - mean) / torch.sqrt(var + eps),
            "weight and bias are not applied: y = x̂ · weight + bias.",
        ),
    ]
    for dim in range(x.dim() - 1):
        m = x.mean(dim, keepdim=True)
        for unbiased in (False, True):
            v = x.var(dim, keepdim=True, unbiased=unbiased)
            out.append(
                (
                    affine((x - m) / torch.sqrt(v + eps)),
                    f"statistics are taken over axis {dim}; normalise each token over its "
                    "features, the last axis (dim=-1, keepdim=True).",
                )
            )
    return out


def rms_norm(x, weight, eps=EPS):
    return F.rms_norm(x, (x.size(-1),), weight, eps)


def rms_norm_bugs(x, weight, eps=EPS):
    ms = x.pow(2).mean(-1, keepdim=True)
    out = [
        (x / (torch.sqrt(ms) + eps) * weight, "eps is added outside the square root: sqrt(mean(x²) + eps)."),
        (x / torch.sqrt(ms) * weight, "eps is missing: x / sqrt(mean(x²) + eps)."),
        (
            x / torch.sqrt(x.pow(2).sum(-1, keepdim=True) + eps) * weight,
            "the sum of squares is used; RMSNorm takes their mean.",
        ),
        (x / (ms + eps) * weight, "the square root is missing: divide by sqrt(mean(x²) + eps)."),
        (
            layer_norm(x, weight, None, eps),
            "the mean is subtracted (that is LayerNorm): RMSNorm only rescales.",
        ),
        (x / torch.sqrt(ms + eps), "weight is not applied: y = x / rms · weight."),
        (
            x / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + eps) * weight,
            "the variance is used; RMSNorm divides by the root mean square, without centring.",
        ),
    ]
    for dim in range(x.dim() - 1):
        out.append(
            (
                x / torch.sqrt(x.pow(2).mean(dim, keepdim=True) + eps) * weight,
                f"the mean of squares is taken over axis {dim}; use the last axis.",
            )
        )
    return out


def norm(kind, x, sd, prefix):
    if kind == "layernorm":
        return layer_norm(x, sd[f"{prefix}.weight"], sd.get(f"{prefix}.bias"))
    return rms_norm(x, sd[f"{prefix}.weight"])


# --------------------------------------------------------------------------- FFN
def linear(x, sd, prefix):
    return F.linear(x, sd[f"{prefix}.weight"], sd.get(f"{prefix}.bias"))


ACT = {
    "gelu": F.gelu,
    "gelu_tanh": lambda h: F.gelu(h, approximate="tanh"),
    "relu": F.relu,
}


def ffn(x, sd, prefix, activation, bug=None):
    """w2(act(w1 x)) or w2(SiLU(w1 x) ⊙ w3 x); ``bug`` replaces the activation part."""
    h1 = linear(x, sd, f"{prefix}.w1")
    if activation == "swiglu":
        h3 = linear(x, sd, f"{prefix}.w3")
        hidden = {
            None: lambda: F.silu(h1) * h3,
            "gate_swapped": lambda: F.silu(h3) * h1,
            "sigmoid_gate": lambda: torch.sigmoid(h1) * h3,
            "gelu_gate": lambda: F.gelu(h1) * h3,
            "no_gate": lambda: F.silu(h1),
        }[bug]()
        return linear(hidden, sd, f"{prefix}.w2")
    if bug == "act_after":
        return ACT[activation](linear(h1, sd, f"{prefix}.w2"))
    if bug == "no_act":
        return linear(h1, sd, f"{prefix}.w2")
    act = ACT[bug] if bug in ACT else ACT[activation]
    return linear(act(h1), sd, f"{prefix}.w2")


FFN_BUGS = {
    "gelu": [
        ("gelu_tanh", "this is the tanh approximation of GELU; 'gelu' is the exact, erf-based one."),
        ("relu", "this is ReLU; 'gelu' asks for GELU (exact, erf)."),
    ],
    "gelu_tanh": [("gelu", "this is the exact GELU; 'gelu_tanh' asks for the tanh approximation.")],
    "relu": [("gelu", "this is GELU; 'relu' asks for ReLU.")],
    "swiglu": [
        ("gate_swapped", "SiLU is applied to the w3 branch; SwiGLU is w2(SiLU(w1 x) ⊙ w3 x), w1 gates."),
        ("sigmoid_gate", "the gate uses sigmoid; SwiGLU's gate is SiLU(w1 x) = w1x · sigmoid(w1x)."),
        ("gelu_gate", "the gate uses GELU (that is GeGLU); SwiGLU uses SiLU."),
        ("no_gate", "the w3 branch is not multiplied in: w2(SiLU(w1 x) ⊙ w3 x)."),
    ],
}
COMMON_FFN_BUGS = [
    ("act_after", "the activation is applied after w2; it goes between w1 and w2."),
    ("no_act", "there is no activation between w1 and w2: the FFN collapses to one linear map."),
]


def ffn_bugs(x, sd, prefix, activation):
    bugs = FFN_BUGS[activation] + (COMMON_FFN_BUGS if activation != "swiglu" else [])
    return [(ffn(x, sd, prefix, activation, bug), message) for bug, message in bugs]


# --------------------------------------------------------------------------- attention
def rope_complex(x, positions, base=10000.0):
    """Interleaved RoPE through complex numbers: pair (2i, 2i+1) is x_2i + j·x_2i+1, times e^{j·p·θ_i}."""
    d = x.size(-1)
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)
    angles = positions.to(torch.float64)[:, None] * theta  # (T, d/2)
    z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], d // 2, 2).contiguous())
    z = z * torch.polar(torch.ones_like(angles), angles)
    return torch.view_as_real(z).reshape(x.shape).to(x.dtype)


def split(t, h):
    B, T, d = t.shape
    return t.view(B, T, h, d // h).transpose(1, 2)


def merge(t):
    B, h, T, dh = t.shape
    return t.transpose(1, 2).reshape(B, T, h * dh)


def causal(T, S=None):
    S = T if S is None else S
    return torch.ones(T, S, dtype=torch.bool).tril(S - T)


def attention(x, sd, prefix, n_heads, *, context=None, mask=None, positions=None, rope=False, bug=None):
    """Multi-head attention from the state dict: ``{prefix}.{q,k,v,out}_proj``."""
    source = x if context is None else context
    if bug == "rope_on_input":
        T = x.size(1)
        pos = torch.arange(T) if positions is None else positions
        x = source = rope_complex(x, pos)
    q = split(linear(x, sd, f"{prefix}.q_proj"), n_heads)
    k = split(linear(source, sd, f"{prefix}.k_proj"), n_heads)
    v = split(linear(source, sd, f"{prefix}.v_proj"), n_heads)
    if rope and bug not in ("rope_ignored", "rope_on_input"):
        pos = torch.arange(x.size(1)) if positions is None else positions
        q = rope_complex(q, pos) if bug != "rope_k_only" else q
        k = rope_complex(k, pos)
        if bug == "rope_on_v":
            v = rope_complex(v, pos)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if bug == "no_out_proj":
        return merge(out)
    return linear(merge(out), sd, f"{prefix}.out_proj")


# --------------------------------------------------------------------------- blocks
def block(
    sd,
    x,
    *,
    n_heads,
    norm_kind="layernorm",
    activation="gelu",
    norm_first=True,
    causal_flag=False,
    mask=None,
    positions=None,
    rope=False,
    bug=None,
):
    """The TransformerBlock, or with ``bug`` one of its classic miswirings (see BLOCK_BUGS)."""
    T = x.size(1)
    if causal_flag and bug != "no_causal":
        mask = causal(T) if mask is None else mask & causal(T)
    if bug in ("post_ln", "pre_ln"):
        norm_first = bug == "pre_ln"

    def n1(t):
        return norm(norm_kind, t, sd, "norm1")

    def n2(t):
        return norm(norm_kind, t, sd, "norm1" if bug == "one_norm" else "norm2")

    attn_bug = (
        bug if bug in ("no_out_proj", "rope_ignored", "rope_on_v", "rope_on_input", "rope_k_only") else None
    )

    def attn(t):
        return attention(t, sd, "attn", n_heads, mask=mask, positions=positions, rope=rope, bug=attn_bug)

    def mlp(t):
        return ffn(t, sd, "ffn", activation)

    if not norm_first:
        x = n1((x if bug != "no_attn_residual" else 0) + attn(x))
        return n2((x if bug != "no_ffn_residual" else 0) + mlp(x))
    if bug == "norm_stream":  # x = norm(x); x = x + sublayer(x)
        x = n1(x)
        x = x + attn(x)
        x = n2(x)
        return x + mlp(x)
    if bug == "ffn_first":
        x = x + mlp(n2(x))
        return x + attn(n1(x))
    if bug == "parallel":  # both sublayers read the same input (GPT-J style)
        return x + attn(n1(x)) + mlp(n2(x))
    x = (x if bug != "no_attn_residual" else 0) + attn(n1(x))
    x = (x if bug != "no_ffn_residual" else 0) + mlp(n2(x))
    if bug == "final_norm":
        x = n2(x)
    return x


BLOCK_BUGS = {
    "post_ln": "this is a post-LN block (norm after each residual sum); norm_first=True asks for "
    "pre-LN: x = x + attn(norm1(x)).",
    "pre_ln": "this is a pre-LN block; norm_first=False asks for post-LN: x = norm1(x + attn(x)).",
    "no_attn_residual": "the residual connection around attention is missing: x = x + attn(…).",
    "no_ffn_residual": "the residual connection around the FFN is missing: x = x + ffn(…).",
    "no_out_proj": "attention's output projection (out_proj) is missing after merging the heads.",
    "norm_stream": "the residual stream itself is normalised (x = norm(x) before adding); pre-LN "
    "normalises a copy for the sublayer and adds to the un-normalised x.",
    "one_norm": "norm1 is used before both sublayers; the FFN reads norm2(x).",
    "ffn_first": "the FFN runs before attention; a block is attention first, then the FFN.",
    "parallel": "both sublayers read the block's input (parallel form); the FFN must read the "
    "output of the attention sublayer.",
    "final_norm": "a norm is applied at the end of the pre-LN block; pre-LN blocks end with the "
    "residual sum (the model has one final norm after the last block).",
    "no_causal": "causal=True is ignored: the causal mask must be combined with the mask.",
    "rope_ignored": "rope=True has no effect: rotate q and k with apply_rope after the projections.",
    "rope_on_v": "RoPE is applied to the values too; it rotates queries and keys only.",
    "rope_on_input": "RoPE is applied to the input before the projections; rotate q and k after them.",
    "rope_k_only": "RoPE is applied to the keys only; rotate the queries as well.",
}


def block_bugs(sd, x, bugs, **kwargs):
    return [(block(sd, x, bug=b, **kwargs), BLOCK_BUGS[b]) for b in bugs]


def decoder(
    sd,
    x,
    memory,
    *,
    n_heads,
    norm_kind="layernorm",
    activation="gelu",
    self_mask=None,
    memory_mask=None,
    bug=None,
):
    """The pre-LN DecoderBlock (three sublayers), or one of its miswirings (DECODER_BUGS)."""
    T = x.size(1)
    self_m = causal(T) if bug != "no_causal" else None
    if self_mask is not None:
        self_m = self_mask if self_m is None else self_mask & self_m

    def n(i, t):
        return norm(norm_kind, t, sd, f"norm{i}")

    def self_attn(t):
        return attention(t, sd, "self_attn", n_heads, mask=self_m)

    def cross_attn(t):
        if bug == "cross_over_x":
            return attention(t, sd, "cross_attn", n_heads, context=t, mask=None)
        context = n(2, memory) if bug == "memory_normed" else memory
        return attention(t, sd, "cross_attn", n_heads, context=context, mask=memory_mask)

    def mlp(t):
        return ffn(t, sd, "ffn", activation)

    if bug == "post_ln":
        x = n(1, x + self_attn(x))
        x = n(2, x + cross_attn(x))
        return n(3, x + mlp(x))
    if bug == "cross_first":
        x = x + cross_attn(n(2, x))
        x = x + self_attn(n(1, x))
        return x + mlp(n(3, x))
    x = x + self_attn(n(1, x))
    x = (x if bug != "no_cross_residual" else 0) + cross_attn(n(2, x))
    return x + mlp(n(3, x))


DECODER_BUGS = {
    "cross_over_x": "cross-attention takes keys and values from the decoder's own stream; they come "
    "from the encoder's memory (queries from x).",
    "memory_normed": "memory is passed through norm2; the decoder reads the encoder's memory as it is "
    "(only its queries are normalised).",
    "no_causal": "the decoder's self-attention is not causal: each position must see only itself and "
    "earlier positions.",
    "post_ln": "this is a post-LN decoder block; it is pre-LN: x = x + sublayer(norm(x)).",
    "cross_first": "cross-attention runs before self-attention; the order is self-attention, "
    "cross-attention, FFN.",
    "no_cross_residual": "the residual connection around cross-attention is missing.",
}


def decoder_bugs(sd, x, memory, bugs, **kwargs):
    return [(decoder(sd, x, memory, bug=b, **kwargs), DECODER_BUGS[b]) for b in bugs]
