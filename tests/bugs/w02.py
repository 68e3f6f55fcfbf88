from . import Bug

ATTENTION = "Masks and attention"

BUGS = [
    Bug(
        "split_heads views without transposing",
        "return x.view(*lead, T, n_heads, d_model // n_heads).transpose(-3, -2)",
        "return x.view(*lead, n_heads, T, d_model // n_heads)",
        catches="test_split_heads_layout",
        keywords=("without transposing",),
        convention=ATTENTION,
    ),
    Bug(
        "merge_heads reshapes without transposing back",
        "return x.transpose(-3, -2).reshape(*lead, T, h * d_head)",
        "return x.reshape(*lead, T, h * d_head)",
        catches="test_merge_heads_inverts_split",
        keywords=("without transposing back",),
        convention=ATTENTION,
    ),
    Bug(
        "heads take strided channels",
        "return x.view(*lead, T, n_heads, d_model // n_heads).transpose(-3, -2)",
        "return x.view(*lead, T, d_model // n_heads, n_heads).permute(*range(len(lead)), -1, -3, -2)",
        catches="test_split_heads_layout",
        keywords=("strided",),
        convention=ATTENTION,
    ),
    Bug(
        "split_heads slices d_model // n_heads channels per head, silently dropping the rest",
        "    *lead, T, d_model = x.shape\n"
        "    if d_model % n_heads:\n"
        '        raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")\n',
        "    *lead, T, d_model = x.shape\n"
        "    d_head = d_model // n_heads\n"
        "    return torch.stack([x[..., i * d_head : (i + 1) * d_head] for i in range(n_heads)], dim=-3)\n",
        catches="test_heads_must_divide_d_model",
        keywords=("instead of raising ValueError",),
        convention=ATTENTION,
    ),
    Bug(
        "split_heads without the divisibility check (view raises RuntimeError)",
        "    if d_model % n_heads:\n"
        '        raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")\n'
        "    # view splits",
        "    # view splits",
        catches="test_heads_must_divide_d_model",
        keywords=("RuntimeError instead of ValueError",),
        convention=ATTENTION,
    ),
    Bug(
        "scores scaled by sqrt(d_model) instead of sqrt(d_head)",
        "        out, weights = scaled_dot_product_attention(q, k, v, mask)  # (B, h, T_q, d_head)\n",
        "        scores = q @ k.transpose(-2, -1) / self.d_model**0.5\n"
        "        if mask is not None:\n"
        '            scores = scores.masked_fill(~mask, float("-inf"))\n'
        "        weights = torch.softmax(scores, dim=-1)\n"
        "        out = weights @ v\n",
        catches="test_matches_torch_multihead_attention",
        keywords=("√d_model",),
        convention=ATTENTION,
    ),
    Bug(
        "output projection forgotten",
        "            out = self.attn_dropout(weights) @ v\n        out = self.out_proj(merge_heads(out))",
        "            out = self.attn_dropout(weights) @ v\n        out = merge_heads(out)",
        catches="test_matches_torch_multihead_attention",
        keywords=("out_proj", "missing"),
    ),
    Bug(
        "output projection weight applied transposed (the paper's x·W with an nn.Linear weight)",
        "            out = self.attn_dropout(weights) @ v\n        out = self.out_proj(merge_heads(out))",
        "            out = self.attn_dropout(weights) @ v\n"
        "        out = merge_heads(out) @ self.out_proj.weight + self.out_proj.bias",
        catches="test_matches_torch_multihead_attention",
        keywords=("transposed",),
        convention="Tensors and weights",
    ),
    Bug(
        "mask convention of nn.MultiheadAttention (True = ignore)",
        "        out, weights = scaled_dot_product_attention(q, k, v, mask)  # (B, h, T_q, d_head)\n",
        "        mask = None if mask is None else ~mask\n"
        "        out, weights = scaled_dot_product_attention(q, k, v, mask)\n",
        catches="test_mask_broadcasting",
        keywords=("inverted",),
        convention=ATTENTION,
    ),
    Bug(
        "mask multiplied into the weights after the softmax",
        "        out, weights = scaled_dot_product_attention(q, k, v, mask)  # (B, h, T_q, d_head)\n",
        "        weights = torch.softmax(q @ k.transpose(-2, -1) / self.d_head**0.5, dim=-1)\n"
        "        if mask is not None:\n"
        "            weights = weights * mask\n"
        "        out = weights @ v\n",
        catches="test_mask_broadcasting",
        keywords=("after the softmax",),
        convention=ATTENTION,
    ),
    Bug(
        "own attention without the fully-masked-row rule (NaN for a query that may see nothing)",
        "        out, weights = scaled_dot_product_attention(q, k, v, mask)  # (B, h, T_q, d_head)\n",
        "        scores = q @ k.transpose(-2, -1) / self.d_head**0.5\n"
        "        if mask is not None:\n"
        '            scores = scores.masked_fill(~mask, float("-inf"))\n'
        "        weights = torch.softmax(scores, dim=-1)\n"
        "        out = weights @ v\n",
        catches="test_fully_masked_query_gives_zero_weights",
        keywords=("NaN",),
        convention=ATTENTION,
    ),
    Bug(
        "cross-attention keys and values taken from x",
        "source = x if context is None else context  # keys/values: self- or cross-attention",
        "source = x",
        catches="test_cross_attention",
        keywords=("come from x",),
    ),
    Bug(
        "returned weights squeezed (size-1 head or query axis dropped)",
        "            out = self.attn_dropout(weights) @ v\n"
        "        out = self.out_proj(merge_heads(out))  # (B, T_q, d_model)\n"
        "        return (out, weights)",
        "            out = self.attn_dropout(weights) @ v\n"
        "        out = self.out_proj(merge_heads(out))\n"
        "        return (out, weights.squeeze())",
        catches="test_one_head_and_one_token",
        keywords=("squeezed",),
        convention=ATTENTION,
    ),
    Bug(
        "F.dropout without training flag (active in eval)",
        "        if self.training and self.attn_dropout.p > 0:\n            out = self.attn_dropout(weights) @ v",
        "        if self.attn_dropout.p > 0:\n"
        "            out = torch.nn.functional.dropout(weights, self.attn_dropout.p) @ v",
        catches="test_dropout_only_in_training",
        keywords=("active in eval mode",),
    ),
    Bug(
        "dropout never applied",
        "        if self.training and self.attn_dropout.p > 0:\n            out = self.attn_dropout(weights) @ v",
        "        if self.training and self.attn_dropout.p > 1:\n            out = self.attn_dropout(weights) @ v",
        catches="test_dropout_only_in_training",
        keywords=("never applied",),
    ),
    Bug(
        "returned weights taken after dropout",
        "        if self.training and self.attn_dropout.p > 0:\n            out = self.attn_dropout(weights) @ v",
        "        if self.training and self.attn_dropout.p > 0:\n"
        "            weights = self.attn_dropout(weights)\n"
        "            out = weights @ v",
        catches="test_dropout_acts_on_the_weights",
        keywords=("before dropout",),
    ),
    Bug(
        "dropout on the attention output instead of the weights",
        "        if self.training and self.attn_dropout.p > 0:\n"
        "            out = self.attn_dropout(weights) @ v\n"
        "        out = self.out_proj(merge_heads(out))  # (B, T_q, d_model)\n",
        "        out = self.attn_dropout(self.out_proj(merge_heads(out)))\n",
        catches="test_dropout_acts_on_the_weights",
        keywords=("acts on the output",),
    ),
    Bug(
        "weights averaged over heads (nn.MultiheadAttention's default)",
        "            out = self.attn_dropout(weights) @ v\n"
        "        out = self.out_proj(merge_heads(out))  # (B, T_q, d_model)\n"
        "        return (out, weights)",
        "            out = self.attn_dropout(weights) @ v\n"
        "        out = self.out_proj(merge_heads(out))\n"
        "        return (out, weights.mean(1))",
        catches="test_matches_torch_multihead_attention",
        keywords=("averaged over heads",),
    ),
    Bug(
        "parameter count forgets the output projection",
        "return 4 * per_projection  # q, k, v and out",
        "return 3 * per_projection",
        catches="test_mha_param_count_closed_form",
        keywords=("three projections",),
        convention="Blocks",
    ),
    Bug(
        "parameter count gives every head its own d_model x d_model projections",
        "return 4 * per_projection  # q, k, v and out",
        "return 4 * n_heads * per_projection",
        catches="test_mha_param_count_closed_form",
        keywords=("every head",),
        convention="Blocks",
    ),
    Bug(
        "parameter count ignores bias=False",
        "per_projection = d_model * d_model + (d_model if bias else 0)",
        "per_projection = d_model * d_model + d_model",
        catches="test_mha_param_count_closed_form",
        keywords=("although bias=False",),
        convention="Blocks",
    ),
    Bug(
        "parameter count forgets the biases",
        "per_projection = d_model * d_model + (d_model if bias else 0)",
        "per_projection = d_model * d_model",
        catches="test_mha_param_count_closed_form",
        keywords=("forgets the four bias",),
        convention="Blocks",
    ),
    Bug(
        "GQA kv heads tiled with repeat instead of repeat_interleave",
        "        k = k.repeat_interleave(g, dim=-3)  # (B, h, T_k, d_head)\n        v = v.repeat_interleave(g, dim=-3)",
        "        k = k.repeat(1, g, 1, 1)\n        v = v.repeat(1, g, 1, 1)",
        catches="test_gqa_head_mapping",
        keywords=("i % n_kv_heads",),
        convention=ATTENTION,
    ),
    Bug(
        "GQA key/value projections at full width",
        "d_kv = n_kv_heads * self.d_head  # the KV cache shrinks by n_heads / n_kv_heads",
        "d_kv = d_model",
        catches="test_gqa_projection_shapes",
        keywords=("full width",),
    ),
    Bug(
        "GQA keys and values taken from x in cross-attention",
        "        source = x if context is None else context\n",
        "        source = x\n",
        catches="test_gqa_cross_attention_and_weights",
        keywords=("come from x",),
    ),
]
