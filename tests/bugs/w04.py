from . import Bug

BUGS = [
    # ----------------------------------------------------------------- norms
    Bug(
        "unbiased variance in LayerNorm",
        "var = (x - mean).pow(2).mean(dim=-1, keepdim=True)  # (..., 1)",
        "var = x.var(dim=-1, keepdim=True)",
        catches="test_layernorm_matches_torch",
    ),
    Bug(
        "eps outside the square root",
        "x_hat = (x - mean) / torch.sqrt(var + self.eps)",
        "x_hat = (x - mean) / (torch.sqrt(var) + self.eps)",
        catches="test_layernorm_tiny_variance",
    ),
    Bug(
        "LayerNorm over the wrong axis",
        "mean = x.mean(dim=-1, keepdim=True)  # (..., 1): one mean per token\n"
        "        # Biased variance (divide by d): the statistics of *these* d numbers, not an estimate.\n"
        "        var = (x - mean).pow(2).mean(dim=-1, keepdim=True)",
        "mean = x.mean(dim=0, keepdim=True)\n        var = (x - mean).pow(2).mean(dim=0, keepdim=True)",
        catches="test_layernorm_matches_torch",
    ),
    Bug(
        "LayerNorm without its affine parameters",
        "y = x_hat * self.weight\n        return y + self.bias if self.bias is not None else y",
        "return x_hat",
        catches="test_layernorm_matches_torch",
    ),
    Bug(
        "RMSNorm subtracts the mean",
        "rms = torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)  # (..., 1)\n"
        "        return x / rms * self.weight",
        "x = x - x.mean(dim=-1, keepdim=True)\n"
        "        rms = torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)\n"
        "        return x / rms * self.weight",
        catches="test_rmsnorm_matches_torch",
    ),
    Bug(
        "RMSNorm with eps outside the root",
        "rms = torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)",
        "rms = torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True)) + self.eps",
        catches="test_rmsnorm_matches_torch",
    ),
    Bug(
        "LayerNorm borrowed from torch",
        "x_hat = (x - mean) / torch.sqrt(var + self.eps)  # eps inside: finite even when var = 0",
        "x_hat = F.layer_norm(x, (x.size(-1),), eps=self.eps)",
        catches="test_norms_built_not_borrowed",
    ),
    # ----------------------------------------------------------------- FFN
    Bug(
        "tanh GELU where the exact one is asked",
        "h = F.gelu(h)  # exact",
        'h = F.gelu(h, approximate="tanh")  # exact',
        catches="test_ffn_gelu_exact",
    ),
    Bug(
        "SwiGLU gate on the wrong branch",
        "h = F.silu(h) * self.w3(x)",
        "h = h * F.silu(self.w3(x))",
        catches="test_ffn_swiglu",
    ),
    Bug(
        "FFN hidden width d_model instead of 4·d_model",
        "d_ff = 4 * d_model if d_ff is None else d_ff\n        self.d_ff = d_ff",
        "d_ff = d_model if d_ff is None else d_ff\n        self.d_ff = d_ff",
        catches="test_ffn_width_and_parameters",
    ),
    Bug(
        "FFN dropout always on",
        "return self.dropout(self.w2(h))  # (..., d_model)",
        "return F.dropout(self.w2(h), self.dropout.p, training=True)",
        catches="test_block_dropout_train_eval",
    ),
    # ----------------------------------------------------------------- attention inside the block
    Bug(
        "causal flag ignored",
        "        if self.causal:\n            causal = causal_mask(T, device=x.device)",
        "        if False:\n            causal = causal_mask(T, device=x.device)",
        catches="test_block_causal_flag",
    ),
    Bug(
        "RoPE applied to the values as well",
        "q, k = apply_rope(q, positions), apply_rope(k, positions)",
        "q, k, v = apply_rope(q, positions), apply_rope(k, positions), apply_rope(v, positions)",
        catches="test_block_rope",
    ),
    Bug(
        "RoPE positions argument ignored",
        "positions = torch.arange(T, device=x.device) if positions is None else positions",
        "positions = torch.arange(T, device=x.device)",
        catches="test_block_rope_positions",
    ),
    Bug(
        "output projection forgotten",
        "return self.out_proj(merge_heads(out))  # (B, T, d_model)",
        "return merge_heads(out)",
        catches="test_pre_ln_attention_sublayer",
    ),
    # ----------------------------------------------------------------- block wiring
    Bug(
        "post-LN where pre-LN is asked",
        "x = x + self.dropout(self.attn(self.norm1(x), mask, positions))  # (B, T, d_model)\n"
        "            x = x + self.ffn(self.norm2(x))",
        "x = self.norm1(x + self.dropout(self.attn(x, mask, positions)))\n"
        "            x = self.norm2(x + self.ffn(x))",
        catches="test_pre_ln_silenced_block_is_identity",
    ),
    Bug(
        "pre-LN where post-LN is asked",
        "x = self.norm1(x + self.dropout(self.attn(x, mask, positions)))\n"
        "            x = self.norm2(x + self.ffn(x))",
        "x = x + self.dropout(self.attn(self.norm1(x), mask, positions))\n"
        "            x = x + self.ffn(self.norm2(x))",
        catches="test_post_ln_block",
    ),
    Bug(
        "residual missing around the FFN",
        "            x = x + self.ffn(self.norm2(x))\n        else:",
        "            x = self.ffn(self.norm2(x))\n        else:",
        catches="test_pre_ln_ffn_sublayer",
    ),
    Bug(
        "residual missing around attention",
        "x = x + self.dropout(self.attn(self.norm1(x), mask, positions))  # (B, T, d_model)",
        "x = self.dropout(self.attn(self.norm1(x), mask, positions))",
        catches="test_pre_ln_attention_sublayer",
    ),
    Bug(
        "residual stream normalised in a pre-LN block",
        "x = x + self.dropout(self.attn(self.norm1(x), mask, positions))  # (B, T, d_model)\n"
        "            x = x + self.ffn(self.norm2(x))",
        "x = self.norm1(x)\n"
        "            x = x + self.dropout(self.attn(x, mask, positions))\n"
        "            x = self.norm2(x)\n"
        "            x = x + self.ffn(x)",
        catches="test_pre_ln_silenced_block_is_identity",
    ),
    Bug(
        "norm1 reused before the FFN",
        "            x = x + self.ffn(self.norm2(x))\n        else:",
        "            x = x + self.ffn(self.norm1(x))\n        else:",
        catches="test_pre_ln_ffn_sublayer",
    ),
    Bug(
        "block dropout always on",
        "x = x + self.dropout(self.attn(self.norm1(x), mask, positions))  # (B, T, d_model)",
        "x = x + F.dropout(self.attn(self.norm1(x), mask, positions), self.dropout.p, training=True)",
        catches="test_block_dropout_train_eval",
    ),
    # ----------------------------------------------------------------- decoder block
    Bug(
        "cross-attention over the decoder's own stream",
        "self.cross_attn(self.norm2(x), context=memory, mask=memory_mask)",
        "self.cross_attn(self.norm2(x), mask=None)",
        catches="test_decoder_cross_attention_probe",
    ),
    Bug(
        "memory normalised by the decoder",
        "self.cross_attn(self.norm2(x), context=memory, mask=memory_mask)",
        "self.cross_attn(self.norm2(x), context=self.norm2(memory), mask=memory_mask)",
        catches="test_decoder_cross_attention_probe",
    ),
    Bug(
        "decoder self-attention not causal",
        "self.self_attn = SelfAttention(d_model, n_heads, causal=True, bias=bias, dropout=dropout)",
        "self.self_attn = SelfAttention(d_model, n_heads, causal=False, bias=bias, dropout=dropout)",
        catches="test_decoder_masks",
    ),
    Bug(
        "memory mask not passed to cross-attention",
        "context=memory, mask=memory_mask)",
        "context=memory)",
        catches="test_decoder_masks",
    ),
    # ----------------------------------------------------------------- counting
    Bug(
        "param count forgets SwiGLU's third matrix",
        'n_in = 2 if activation == "swiglu" else 1',
        "n_in = 1",
        catches="test_block_param_count",
    ),
    Bug(
        "param count gives LayerNorm no bias",
        'one_norm = 2 * d_model if (norm == "layernorm" and bias) else d_model',
        "one_norm = d_model",
        catches="test_block_param_count",
    ),
]
