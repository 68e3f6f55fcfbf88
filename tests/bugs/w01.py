from . import Bug

BUGS = [
    Bug(
        "no scaling",
        "scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)",
        "scores = q @ k.transpose(-2, -1)",
        catches="test_sdpa_matches_pytorch_3d",
    ),
    Bug(
        "scaled by d_k instead of its square root",
        "scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)",
        "scores = q @ k.transpose(-2, -1) / d_k",
        catches="test_sdpa_matches_pytorch_3d",
    ),
    Bug(
        "softmax over the query axis",
        "weights = softmax(scores, dim=-1)  # normalise over keys",
        "weights = softmax(scores, dim=-2)",
        catches="test_sdpa_matches_pytorch_3d",
    ),
    Bug(
        "inverted mask",
        'scores = scores.masked_fill(~mask, float("-inf"))\n    weights = softmax(scores, dim=-1)  # normalise',
        'scores = scores.masked_fill(mask, float("-inf"))\n    weights = softmax(scores, dim=-1)  # normalise',
        catches="test_sdpa_matches_pytorch_4d_masked",
    ),
    Bug(
        "mask applied after softmax",
        '    if mask is not None:\n        scores = scores.masked_fill(~mask, float("-inf"))\n    weights = softmax(scores, dim=-1)  # normalise over keys\n',
        "    weights = softmax(scores, dim=-1)\n    if mask is not None:\n        weights = weights * mask\n",
        catches="test_sdpa_matches_pytorch_4d_masked",
    ),
    Bug(
        "strictly lower-triangular causal mask",
        "return key_pos <= query_pos  # (T_q, T_k)",
        "return key_pos < query_pos",
        catches="test_causal_mask_square",
    ),
    Bug(
        "causal mask aligned top-left",
        "query_pos = torch.arange(T_q, device=device).unsqueeze(1) + (T_k - T_q)  # (T_q, 1)",
        "query_pos = torch.arange(T_q, device=device).unsqueeze(1)",
        catches="test_causal_mask_bottom_right",
    ),
    Bug(
        "unstable softmax (no max subtraction)",
        "exp = torch.exp(x - x_max)",
        "exp = torch.exp(x)",
        catches="test_softmax_is_stable",
    ),
    Bug(
        "library softmax looked up by name (past the source check)",
        "    return exp / torch.where(total > 0, total, torch.ones_like(total))\n",
        '    return getattr(torch, "soft" + "max")(x, dim).nan_to_num(0.0)\n',
        catches="test_builds_softmax_and_attention_itself",
    ),
    Bug(
        "NaN on fully masked rows",
        "    x_max = torch.where(torch.isfinite(x_max), x_max, torch.zeros_like(x_max))\n",
        "",
        catches="test_fully_masked_rows_are_zero",
    ),
    Bug(
        "transpose(1, 2) breaks 4-D inputs",
        "scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)",
        "scores = q @ k.transpose(1, 2) / math.sqrt(d_k)",
        catches="test_sdpa_matches_pytorch_4d_masked",
    ),
    Bug(
        "softmax normalised over the whole tensor",
        "total = exp.sum(dim=dim, keepdim=True)",
        "total = exp.sum()",
        catches="test_softmax_matches_torch",
    ),
    Bug(
        "library softmax instead of building it",
        "weights = softmax(scores, dim=-1)  # normalise over keys",
        "weights = torch.softmax(scores, dim=-1)",
        catches="test_builds_softmax_and_attention_itself",
    ),
    Bug(
        "additive attention with biases",
        "self.W_q = nn.Linear(d_query, d_hidden, bias=False)",
        "self.W_q = nn.Linear(d_query, d_hidden)",
        catches="test_additive_attention_parameters",
    ),
    Bug(
        "padding mask inverted",
        "return positions.unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)",
        "return positions.unsqueeze(0) >= lengths.unsqueeze(1)",
        catches="test_padding_mask",
    ),
    Bug(
        "head ignores its causal flag",
        "        if self.causal:\n            causal = causal_mask",
        "        if False:\n            causal = causal_mask",
        catches="test_causal_head_ignores_the_future",
    ),
]
