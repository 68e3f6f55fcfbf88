from . import Bug

BUGS = [
    Bug(
        "split_heads views without transposing",
        "return x.view(*lead, T, n_heads, d_model // n_heads).transpose(-3, -2)",
        "return x.view(*lead, n_heads, T, d_model // n_heads)",
        catches="test_split_heads_layout",
    ),
    Bug(
        "merge_heads reshapes without transposing back",
        "return x.transpose(-3, -2).reshape(*lead, T, h * d_head)",
        "return x.reshape(*lead, T, h * d_head)",
        catches="test_merge_heads_inverts_split",
    ),
    Bug(
        "heads take strided channels",
        "return x.view(*lead, T, n_heads, d_model // n_heads).transpose(-3, -2)",
        "return x.view(*lead, T, d_model // n_heads, n_heads).permute(*range(len(lead)), -1, -3, -2)",
        catches="test_split_heads_layout",
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
    ),
    Bug(
        "output projection forgotten",
        "            out = self.attn_dropout(weights) @ v\n        out = self.out_proj(merge_heads(out))",
        "            out = self.attn_dropout(weights) @ v\n        out = merge_heads(out)",
        catches="test_matches_torch_multihead_attention",
    ),
    Bug(
        "mask convention of nn.MultiheadAttention (True = ignore)",
        "        out, weights = scaled_dot_product_attention(q, k, v, mask)  # (B, h, T_q, d_head)\n",
        "        mask = None if mask is None else ~mask\n"
        "        out, weights = scaled_dot_product_attention(q, k, v, mask)\n",
        catches="test_mask_broadcasting",
    ),
    Bug(
        "cross-attention keys and values taken from x",
        "source = x if context is None else context  # keys/values: self- or cross-attention",
        "source = x",
        catches="test_cross_attention",
    ),
    Bug(
        "F.dropout without training flag (active in eval)",
        "        if self.training and self.attn_dropout.p > 0:\n            out = self.attn_dropout(weights) @ v",
        "        if self.attn_dropout.p > 0:\n"
        "            out = torch.nn.functional.dropout(weights, self.attn_dropout.p) @ v",
        catches="test_dropout_only_in_training",
    ),
    Bug(
        "dropout never applied",
        "        if self.training and self.attn_dropout.p > 0:\n            out = self.attn_dropout(weights) @ v",
        "        if self.training and self.attn_dropout.p > 1:\n            out = self.attn_dropout(weights) @ v",
        catches="test_dropout_only_in_training",
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
    ),
    Bug(
        "parameter count forgets the output projection",
        "return 4 * per_projection  # q, k, v and out",
        "return 3 * per_projection",
        catches="test_mha_param_count_closed_form",
    ),
    Bug(
        "parameter count gives every head its own d_model x d_model projections",
        "return 4 * per_projection  # q, k, v and out",
        "return 4 * n_heads * per_projection",
        catches="test_mha_param_count_closed_form",
    ),
    Bug(
        "GQA kv heads tiled with repeat instead of repeat_interleave",
        "        k = k.repeat_interleave(g, dim=-3)  # (B, h, T_k, d_head)\n        v = v.repeat_interleave(g, dim=-3)",
        "        k = k.repeat(1, g, 1, 1)\n        v = v.repeat(1, g, 1, 1)",
        catches="test_gqa_head_mapping",
    ),
    Bug(
        "GQA key/value projections at full width",
        "d_kv = n_kv_heads * self.d_head  # the KV cache shrinks by n_heads / n_kv_heads",
        "d_kv = d_model",
        catches="test_gqa_projection_shapes",
    ),
]
