"""Week 4 oracles: blocks rebuilt on the trusted side from PyTorch built-ins.

Everything here reads a *state dict* (tensors the test drew and loaded into the student's
module) and recomputes the block with ``F.layer_norm``, ``F.rms_norm``,
``F.scaled_dot_product_attention``, ``F.linear`` and ``F.gelu``; RoPE uses the complex-number
formulation, independent of week 3's code. ``bug=...`` switches on one classic mistake, so a
test can recognise it in a submission's output and name it.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F

from autograder.checks import convention

EPS = 1e-5
BLOCKS = convention("Blocks")
MASKS = convention("Masks and attention")
POSITIONS = convention("Positions")


# --------------------------------------------------------------------------- norms
def layer_norm(x, weight, bias, eps=EPS):
    return F.layer_norm(x, (x.size(-1),), weight, bias, eps)


def layer_norm_bugs(x, weight, bias, eps=EPS):
    """(output, diagnosis) of the classic LayerNorm mistakes."""
    with warnings.catch_warnings():  # at d = 1 the unbiased statistics are NaN, and torch says so
        warnings.simplefilter("ignore", UserWarning)
        return _layer_norm_bugs(x, weight, bias, eps)


def _layer_norm_bugs(x, weight, bias, eps):
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, keepdim=True, unbiased=False)
    b = 0 if bias is None else bias

    def affine(y):
        return y * weight + b

    out = [
        (
            affine((x - mean) / torch.sqrt(x.var(-1, keepdim=True, unbiased=True) + eps)),
            "the variance is the unbiased one (divides by d − 1); LayerNorm uses the biased "
            f"variance, mean((x − mean)²), dividing by d ({BLOCKS}).",
        ),
        (
            affine((x - mean) / (x.std(-1, keepdim=True, unbiased=True) + eps)),
            "this is x.std() + eps: the unbiased standard deviation (divides by d − 1) with eps "
            f"outside the square root; LayerNorm divides by sqrt(biased var + eps) ({BLOCKS}).",
        ),
        (
            affine((x - mean) / (torch.sqrt(var) + eps)),
            f"eps is added outside the square root; it belongs inside: sqrt(var + eps) ({BLOCKS}).",
        ),
        (
            affine((x - mean) / torch.sqrt(var)),
            f"eps is missing: divide by sqrt(var + eps) so a constant input stays finite ({BLOCKS}).",
        ),
        (
            affine((x - mean) / (var + eps)),
            f"the square root is missing: divide by sqrt(var + eps) ({BLOCKS}).",
        ),
        (
            affine(x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)),
            f"the mean is not subtracted (that is RMSNorm): LayerNorm centres each token first ({BLOCKS}).",
        ),
        (
            (x - mean) / torch.sqrt(var + eps),
            f"weight and bias are not applied: y = x̂ · weight + bias ({BLOCKS}).",
        ),
    ]
    for dim in range(x.dim() - 1):
        m = x.mean(dim, keepdim=True)
        for unbiased in (False, True):
            v = x.var(dim, keepdim=True, unbiased=unbiased)
            out.append(
                (
                    affine((x - m) / torch.sqrt(v + eps)),
                    f"statistics are taken over axis {dim}, not over the features: normalise each "
                    f"token over the last axis (dim=-1, keepdim=True) ({BLOCKS}).",
                )
            )
    return out


def rms_norm(x, weight, eps=EPS):
    return F.rms_norm(x, (x.size(-1),), weight, eps)


def rms_norm_bugs(x, weight, eps=EPS):
    ms = x.pow(2).mean(-1, keepdim=True)
    out = [
        (
            x / (torch.sqrt(ms) + eps) * weight,
            f"eps is added outside the square root: sqrt(mean(x²) + eps) ({BLOCKS}).",
        ),
        (x / torch.sqrt(ms) * weight, f"eps is missing: x / sqrt(mean(x²) + eps) ({BLOCKS})."),
        (
            x / torch.sqrt(x.pow(2).sum(-1, keepdim=True) + eps) * weight,
            f"the sum of squares is used; RMSNorm takes their mean ({BLOCKS}).",
        ),
        (
            x / (ms + eps) * weight,
            f"the square root is missing: divide by sqrt(mean(x²) + eps) ({BLOCKS}).",
        ),
        (
            layer_norm(x, weight, None, eps),
            f"the mean is subtracted (that is LayerNorm): RMSNorm only rescales, no centring ({BLOCKS}).",
        ),
        (x / torch.sqrt(ms + eps), f"weight is not applied: y = x / rms · weight ({BLOCKS})."),
        (
            x / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + eps) * weight,
            f"the variance is used; RMSNorm divides by the root mean square, without centring ({BLOCKS}).",
        ),
    ]
    for dim in range(x.dim() - 1):
        out.append(
            (
                x / torch.sqrt(x.pow(2).mean(dim, keepdim=True) + eps) * weight,
                f"the mean of squares is taken over axis {dim}, not over the features; use the last "
                f"axis ({BLOCKS}).",
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
        (
            "gelu_tanh",
            f"this is the tanh approximation of GELU; 'gelu' is the exact, erf-based one ({BLOCKS}).",
        ),
        ("relu", f"this is ReLU; 'gelu' asks for GELU (exact, erf) ({BLOCKS})."),
    ],
    "gelu_tanh": [
        ("gelu", f"this is the exact GELU; 'gelu_tanh' asks for the tanh approximation ({BLOCKS}).")
    ],
    "relu": [("gelu", "this is GELU; 'relu' asks for ReLU.")],
    "swiglu": [
        (
            "gate_swapped",
            "SiLU is applied to the w3 branch: the gate and the up projection are swapped; SwiGLU is "
            f"w2(SiLU(w1 x) ⊙ w3 x), w1 is the gate ({BLOCKS}).",
        ),
        (
            "sigmoid_gate",
            f"the gate uses sigmoid; SwiGLU's gate is SiLU(w1 x) = w1x · sigmoid(w1x) ({BLOCKS}).",
        ),
        ("gelu_gate", f"the gate uses GELU (that is GeGLU); SwiGLU uses SiLU ({BLOCKS})."),
        ("no_gate", f"the w3 branch is not multiplied in: w2(SiLU(w1 x) ⊙ w3 x) ({BLOCKS})."),
    ],
}
COMMON_FFN_BUGS = [
    ("act_after", "the activation is applied after w2; it goes between w1 and w2."),
    ("no_act", "there is no activation between w1 and w2: the FFN collapses to one linear map."),
]


def dropout_still_active(what: str) -> str:
    """The message for a module whose eval-mode outputs differ from call to call."""
    return (
        f"{what} gave two different outputs in eval mode: dropout is still active after eval(). "
        "F.dropout(x, p) defaults to training=True; use the nn.Dropout module (self.dropout), which "
        f"eval() switches off, or pass training=self.training ({BLOCKS})."
    )


def llama_widths(d_model):
    """Hidden widths a SwiGLU FFN gets from Llama's rule: int(2·4d/3), rounded up to a multiple."""
    base = int(2 * 4 * d_model / 3)
    return {base, round(8 * d_model / 3)} | {m * math.ceil(base / m) for m in (2, 4, 8, 16, 32, 64, 128, 256)}


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
    """Multi-head attention from the state dict: ``{prefix}.{q,k,v,out}_proj``.

    A query whose every key is masked gets a zero output (the course's convention; SDPA alone
    would give NaN there)."""
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
    if mask is not None:
        out = out.masked_fill(~mask.any(-1, keepdim=True), 0.0)  # fully masked rows: zeros
    if bug == "no_out_proj":
        return merge(out)
    return linear(merge(out), sd, f"{prefix}.out_proj")


# --------------------------------------------------------------------------- blocks
MASK_BUGS = ("no_causal", "no_diagonal", "causal_replaces_mask", "mask_or")


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
        tri = torch.ones(T, T, dtype=torch.bool).tril(-1) if bug == "no_diagonal" else causal(T)
        if mask is None or bug == "causal_replaces_mask":
            mask = tri
        else:
            mask = mask | tri if bug == "mask_or" else mask & tri
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
    "post_ln": "this is a post-LN block (the norm sits after each residual sum); norm_first=True asks "
    f"for pre-LN: x = x + attn(norm1(x)) ({BLOCKS}).",
    "pre_ln": "this is a pre-LN block; norm_first=False asks for post-LN: x = norm1(x + attn(x)) "
    f"({BLOCKS}).",
    "no_attn_residual": f"the residual connection around attention is missing: x = x + attn(…) ({BLOCKS}).",
    "no_ffn_residual": f"the residual connection around the FFN is missing: x = x + ffn(…) ({BLOCKS}).",
    "no_out_proj": "attention's output projection (out_proj) is missing after merging the heads.",
    "norm_stream": "the residual stream itself is normalised (x = norm(x) before adding); pre-LN "
    f"normalises a copy for the sublayer and adds to the un-normalised x ({BLOCKS}).",
    "one_norm": f"norm1 is used before both sublayers; the FFN reads norm2(x) ({BLOCKS}).",
    "ffn_first": f"the FFN runs before attention; a block is attention first, then the FFN ({BLOCKS}).",
    "parallel": "both sublayers read the block's input (parallel form); the FFN must read the "
    f"output of the attention sublayer ({BLOCKS}).",
    "final_norm": "a norm is applied at the end of the pre-LN block; a pre-LN block ends with the "
    f"residual sum (the model has one final norm after the last block) ({BLOCKS}).",
    "no_causal": f"causal=True is ignored: the causal mask must be combined with the mask ({BLOCKS}).",
    "no_diagonal": "the causal mask leaves out its diagonal: a token may not attend to itself, and the "
    f"first token sees nothing. Position i may attend to every j ≤ i, itself included ({MASKS}).",
    "causal_replaces_mask": "with causal=True the mask you were given is dropped: the causal mask "
    f"replaces it instead of being combined with it (mask & causal) ({BLOCKS}).",
    "mask_or": "the causal mask and the given mask are combined with | (or): a key may be attended "
    f"if it passes either; it must pass both, mask & causal ({BLOCKS}).",
    "rope_ignored": f"rope=True has no effect: rotate q and k with apply_rope after the projections ({POSITIONS}).",
    "rope_on_v": f"RoPE is applied to the values too; it rotates queries and keys only ({POSITIONS}).",
    "rope_on_input": "RoPE is applied to the input before the projections; rotate q and k after them "
    f"({POSITIONS}).",
    "rope_k_only": f"RoPE is applied to the keys only; rotate the queries as well ({POSITIONS}).",
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
    if self_mask is not None and bug != "self_mask_ignored":
        self_m = self_mask if self_m is None else self_mask & self_m

    def n(i, t):
        return norm(norm_kind, t, sd, f"norm{i}")

    def self_attn(t):
        return attention(t, sd, "self_attn", n_heads, mask=self_m)

    def cross_attn(t):
        if bug == "cross_over_x":
            return attention(t, sd, "cross_attn", n_heads, context=t, mask=None)
        context = n(2, memory) if bug == "memory_normed" else memory
        mask = None if bug == "memory_mask_ignored" else memory_mask
        return attention(t, sd, "cross_attn", n_heads, context=context, mask=mask)

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
    f"from the encoder's memory, the queries from x ({BLOCKS}).",
    "memory_normed": "memory is passed through norm2; the decoder reads the encoder's memory as it is "
    f"(only its queries are normalised) ({BLOCKS}).",
    "no_causal": "the decoder's self-attention is not causal: each position must see only itself and "
    f"earlier positions ({BLOCKS}).",
    "self_mask_ignored": "self_mask is ignored: the decoder's self-attention must combine it with the "
    f"causal mask (self_mask & causal) ({BLOCKS}).",
    "memory_mask_ignored": "memory_mask is ignored: pass it to the cross-attention so that hidden "
    f"memory positions get no weight ({MASKS}).",
    "post_ln": f"this is a post-LN decoder block; it is pre-LN: x = x + sublayer(norm(x)) ({BLOCKS}).",
    "cross_first": "cross-attention runs before self-attention; the order is self-attention, "
    f"cross-attention, FFN ({BLOCKS}).",
    "no_cross_residual": f"the residual connection around cross-attention is missing ({BLOCKS}).",
}


def decoder_bugs(sd, x, memory, bugs, **kwargs):
    return [(decoder(sd, x, memory, bug=b, **kwargs), DECODER_BUGS[b]) for b in bugs]


# --------------------------------------------------------------------------- parameter counts
def param_count(d, d_ff=None, norm="layernorm", activation="gelu", bias=True, cross=False, bug=None):
    """A block's parameter count in closed form, or with ``bug`` a classic miscount (COUNT_BUGS).

    The tests' expected value comes from PyTorch modules; this closed form only names mistakes."""
    d_ff = 4 * d if d_ff is None else d_ff
    attention = 4 * d * d + (4 * d if bias else 0)
    n_in = 2 if activation == "swiglu" and bug != "swiglu_two" else 1
    ffn_bias = (n_in * d_ff + d) if bias else 0
    if bug == "w2_bias_d_ff" and bias:
        ffn_bias = (n_in + 1) * d_ff
    ffn_count = (n_in + 1) * d * d_ff + ffn_bias
    ln_bias = (bias or bug == "ln_bias_always") and bug != "ln_no_bias"
    one_norm = 2 * d if (norm == "layernorm" and ln_bias) else d
    if norm == "rmsnorm" and bug == "rms_bias":
        one_norm = 2 * d
    n_attn, n_norms = (2, 3) if cross else (1, 2)
    if cross and bug == "two_norms":
        n_norms = 2
    if cross and bug == "one_attention":
        n_attn = 1
    return n_attn * attention + ffn_count + n_norms * one_norm


COUNT_BUGS = {
    "swiglu_two": f"SwiGLU has a third matrix w3 (d_model → d_ff) to count ({BLOCKS}).",
    "ln_no_bias": "LayerNorm's bias is not counted: a LayerNorm has a weight and a bias, 2·d_model "
    f"parameters ({BLOCKS}).",
    "ln_bias_always": "with bias=False the LayerNorms' biases are still counted; bias=False removes every "
    "bias, the LayerNorms' included (d_model each).",
    "rms_bias": f"RMSNorm is counted with a bias; it has a weight only, d_model parameters ({BLOCKS}).",
    "w2_bias_d_ff": "w2's bias is counted with d_ff entries; w2 maps d_ff → d_model, so its bias has "
    "d_model (w1's, and w3's, have d_ff).",
    "two_norms": "the decoder block's third norm (norm3) is not counted: it has three norms.",
    "one_attention": "the decoder block's cross-attention is not counted: it has two attentions.",
}


def count_bugs(d, d_ff=None, norm="layernorm", activation="gelu", bias=True, cross=False):
    right = param_count(d, d_ff, norm, activation, bias, cross)
    out = []
    for bug, message in COUNT_BUGS.items():
        n = param_count(d, d_ff, norm, activation, bias, cross, bug=bug)
        if n != right:
            out.append((n, message))
    return out
