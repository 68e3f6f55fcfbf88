from . import Bug

BUGS = [
    # ----------------------------------------------------------------- norms
    Bug(
        "unbiased variance in LayerNorm",
        "var = (x - mean).pow(2).mean(dim=-1, keepdim=True)  # (..., 1)",
        "var = x.var(dim=-1, keepdim=True)",
        catches="test_layernorm_matches_torch",
        keywords=("unbiased",),
        convention="Blocks",
    ),
    Bug(
        "eps outside the square root",
        "x_hat = (x - mean) / torch.sqrt(var + self.eps)",
        "x_hat = (x - mean) / (torch.sqrt(var) + self.eps)",
        catches="test_layernorm_tiny_variance",
        keywords=("outside the square root",),
        convention="Blocks",
    ),
    Bug(
        "LayerNorm over the wrong axis",
        "mean = x.mean(dim=-1, keepdim=True)  # (..., 1): one mean per token\n"
        "        # Biased variance (divide by d): the statistics of *these* d numbers, not an estimate.\n"
        "        var = (x - mean).pow(2).mean(dim=-1, keepdim=True)",
        "mean = x.mean(dim=0, keepdim=True)\n        var = (x - mean).pow(2).mean(dim=0, keepdim=True)",
        catches="test_layernorm_matches_torch",
        keywords=("axis 0",),
        convention="Blocks",
    ),
    Bug(
        "LayerNorm without its affine parameters",
        "y = x_hat * self.weight\n        return y + self.bias if self.bias is not None else y",
        "return x_hat",
        catches="test_layernorm_matches_torch",
        keywords=("weight and bias are not applied",),
        convention="Blocks",
    ),
    Bug(
        # The Annotated Transformer's LayerNorm: (x - mean) / (x.std(-1) + eps). At d = 1 the
        # unbiased std is 0 / 0 = NaN, where LayerNorm must return its bias.
        "LayerNorm through x.std() + eps",
        "x_hat = (x - mean) / torch.sqrt(var + self.eps)  # eps inside: finite even when var = 0",
        "x_hat = (x - mean) / (x.std(dim=-1, keepdim=True) + self.eps)",
        catches="test_norm_edges",
        keywords=("unbiased", "one feature"),
        convention="Blocks",
    ),
    Bug(
        "LayerNorm ignores its eps argument",
        "x_hat = (x - mean) / torch.sqrt(var + self.eps)",
        "x_hat = (x - mean) / torch.sqrt(var + 1e-5)",
        catches="test_norm_edges",
        keywords=("eps argument is ignored",),
    ),
    Bug(
        "RMSNorm subtracts the mean",
        "rms = torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)  # (..., 1)\n"
        "        return x / rms * self.weight",
        "x = x - x.mean(dim=-1, keepdim=True)\n"
        "        rms = torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)\n"
        "        return x / rms * self.weight",
        catches="test_rmsnorm_matches_torch",
        keywords=("mean is subtracted",),
        convention="Blocks",
    ),
    Bug(
        "RMSNorm with eps outside the root",
        "rms = torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)",
        "rms = torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True)) + self.eps",
        catches="test_rmsnorm_matches_torch",
        keywords=("outside the square root",),
        convention="Blocks",
    ),
    Bug(
        "RMSNorm weight initialised to zeros",
        "self.weight = nn.Parameter(torch.ones(d))\n        ### END SOLUTION",
        "self.weight = nn.Parameter(torch.zeros(d))\n        ### END SOLUTION",
        catches="test_rmsnorm_parameters",
        keywords=("starts at zeros",),
        convention="Blocks",
    ),
    Bug(
        "RMSNorm given a bias",
        "self.weight = nn.Parameter(torch.ones(d))\n        ### END SOLUTION",
        "self.weight = nn.Parameter(torch.ones(d))\n        self.bias = nn.Parameter(torch.zeros(d))\n"
        "        ### END SOLUTION",
        catches="test_rmsnorm_parameters",
        keywords=("has a bias",),
        convention="Blocks",
    ),
    Bug(
        "LayerNorm borrowed from torch",
        "x_hat = (x - mean) / torch.sqrt(var + self.eps)  # eps inside: finite even when var = 0",
        "x_hat = F.layer_norm(x, (x.size(-1),), eps=self.eps)",
        catches="test_norms_built_not_borrowed",
        keywords=("build the norms yourself",),
    ),
    # ----------------------------------------------------------------- FFN
    Bug(
        "tanh GELU where the exact one is asked",
        "h = F.gelu(h)  # exact",
        'h = F.gelu(h, approximate="tanh")  # exact',
        catches="test_ffn_gelu_exact",
        keywords=("tanh approximation",),
        convention="Blocks",
    ),
    Bug(
        "SwiGLU gate on the wrong branch",
        "h = F.silu(h) * self.w3(x)",
        "h = h * F.silu(self.w3(x))",
        catches="test_ffn_swiglu",
        keywords=("w3 branch", "gate"),
        convention="Blocks",
    ),
    Bug(
        "FFN hidden width d_model instead of 4·d_model",
        "d_ff = 4 * d_model if d_ff is None else d_ff\n        self.d_ff = d_ff",
        "d_ff = d_model if d_ff is None else d_ff\n        self.d_ff = d_ff",
        catches="test_ffn_width_and_parameters",
        keywords=("hidden width is d_model",),
        convention="Blocks",
    ),
    Bug(
        "SwiGLU default width by Llama's 8/3 rule",
        "d_ff = 4 * d_model if d_ff is None else d_ff\n        self.d_ff = d_ff",
        "if d_ff is None:  # Llama keeps SwiGLU's parameter count with a 2/3 width\n"
        '            d_ff = int(2 * 4 * d_model / 3) if activation == "swiglu" else 4 * d_model\n'
        "        self.d_ff = d_ff",
        catches="test_ffn_width_and_parameters",
        keywords=("8/3",),
        convention="Blocks",
    ),
    Bug(
        "FFN dropout always on",
        "return self.dropout(self.w2(h))  # (..., d_model)",
        "return F.dropout(self.w2(h), self.dropout.p, training=True)",
        catches="test_block_dropout_train_eval",
        keywords=("still active", "eval()"),
        convention="Blocks",
    ),
    Bug(
        "FFN dropout on the hidden layer",
        "return self.dropout(self.w2(h))  # (..., d_model)",
        "return self.w2(self.dropout(h))",
        catches="test_dropout_one_drops_every_sublayer",
        keywords=("hidden layer",),
        convention="Blocks",
    ),
    # ----------------------------------------------------------------- attention inside the block
    Bug(
        "causal flag ignored",
        "        if self.causal:\n            causal = causal_mask(T, device=x.device)",
        "        if False:\n            causal = causal_mask(T, device=x.device)",
        catches="test_block_causal_flag",
        keywords=("causal=True is ignored",),
        convention="Blocks",
    ),
    Bug(
        "causal mask without its diagonal",
        "causal = causal_mask(T, device=x.device)  # (T, T)",
        "causal = ~torch.ones(T, T, dtype=torch.bool, device=x.device).triu()  # (T, T)",
        catches="test_single_token",
        keywords=("diagonal",),
        convention="Masks and attention",
    ),
    Bug(
        "causal mask replaces the given mask",
        "mask = causal if mask is None else mask & causal",
        "mask = causal",
        catches="test_block_causal_flag",
        keywords=("replaces",),
        convention="Blocks",
    ),
    Bug(
        "masks combined with or",
        "mask = causal if mask is None else mask & causal",
        "mask = causal if mask is None else mask | causal",
        catches="test_block_causal_flag",
        keywords=("| (or)",),
        convention="Blocks",
    ),
    Bug(
        "RoPE applied to the values as well",
        "q, k = apply_rope(q, positions), apply_rope(k, positions)",
        "q, k, v = apply_rope(q, positions), apply_rope(k, positions), apply_rope(v, positions)",
        catches="test_block_rope",
        keywords=("values",),
        convention="Positions",
    ),
    Bug(
        "RoPE positions argument ignored",
        "positions = torch.arange(T, device=x.device) if positions is None else positions",
        "positions = torch.arange(T, device=x.device)",
        catches="test_block_rope_positions",
        keywords=("positions argument is ignored",),
    ),
    Bug(
        "output projection forgotten",
        "return self.out_proj(merge_heads(out))  # (B, T, d_model)",
        "return merge_heads(out)",
        catches="test_pre_ln_attention_sublayer",
        keywords=("out_proj",),
    ),
    # ----------------------------------------------------------------- block wiring
    Bug(
        "post-LN where pre-LN is asked",
        "x = x + self.dropout(self.attn(self.norm1(x), mask, positions))  # (B, T, d_model)\n"
        "            x = x + self.ffn(self.norm2(x))",
        "x = self.norm1(x + self.dropout(self.attn(x, mask, positions)))\n"
        "            x = self.norm2(x + self.ffn(x))",
        catches="test_pre_ln_attention_sublayer",
        keywords=("post-LN block", "norm_first=True"),
        convention="Blocks",
    ),
    Bug(
        "pre-LN where post-LN is asked",
        "x = self.norm1(x + self.dropout(self.attn(x, mask, positions)))\n"
        "            x = self.norm2(x + self.ffn(x))",
        "x = x + self.dropout(self.attn(self.norm1(x), mask, positions))\n"
        "            x = x + self.ffn(self.norm2(x))",
        catches="test_post_ln_block",
        keywords=("pre-LN", "norm_first=False"),
        convention="Blocks",
    ),
    Bug(
        "residual missing around the FFN",
        "            x = x + self.ffn(self.norm2(x))\n        else:",
        "            x = self.ffn(self.norm2(x))\n        else:",
        catches="test_pre_ln_ffn_sublayer",
        keywords=("residual connection around the FFN",),
        convention="Blocks",
    ),
    Bug(
        "residual missing around attention",
        "x = x + self.dropout(self.attn(self.norm1(x), mask, positions))  # (B, T, d_model)",
        "x = self.dropout(self.attn(self.norm1(x), mask, positions))",
        catches="test_pre_ln_attention_sublayer",
        keywords=("residual connection around attention",),
        convention="Blocks",
    ),
    Bug(
        "residual stream normalised in a pre-LN block",
        "x = x + self.dropout(self.attn(self.norm1(x), mask, positions))  # (B, T, d_model)\n"
        "            x = x + self.ffn(self.norm2(x))",
        "x = self.norm1(x)\n"
        "            x = x + self.dropout(self.attn(x, mask, positions))\n"
        "            x = self.norm2(x)\n"
        "            x = x + self.ffn(x)",
        catches="test_pre_ln_attention_sublayer",
        keywords=("stream itself is normalised",),
        convention="Blocks",
    ),
    Bug(
        "FFN before attention",
        "x = x + self.dropout(self.attn(self.norm1(x), mask, positions))  # (B, T, d_model)\n"
        "            x = x + self.ffn(self.norm2(x))",
        "x = x + self.ffn(self.norm2(x))\n"
        "            x = x + self.dropout(self.attn(self.norm1(x), mask, positions))",
        catches="test_pre_ln_block_matches_oracle",
        keywords=("FFN runs before attention",),
        convention="Blocks",
    ),
    Bug(
        "parallel sublayers (both read the block's input)",
        "x = x + self.dropout(self.attn(self.norm1(x), mask, positions))  # (B, T, d_model)\n"
        "            x = x + self.ffn(self.norm2(x))",
        "x = x + self.dropout(self.attn(self.norm1(x), mask, positions)) + self.ffn(self.norm2(x))",
        catches="test_pre_ln_block_matches_oracle",
        keywords=("parallel",),
        convention="Blocks",
    ),
    Bug(
        "final norm inside a pre-LN block",
        "            x = x + self.ffn(self.norm2(x))\n        else:",
        "            x = x + self.ffn(self.norm2(x))\n            x = self.norm2(x)  # a normalised output\n"
        "        else:",
        catches="test_pre_ln_silenced_block_is_identity",
        keywords=("end of the pre-LN block",),
        convention="Blocks",
    ),
    Bug(
        "norm1 reused before the FFN",
        "            x = x + self.ffn(self.norm2(x))\n        else:",
        "            x = x + self.ffn(self.norm1(x))\n        else:",
        catches="test_pre_ln_ffn_sublayer",
        keywords=("norm1", "both sublayers"),
        convention="Blocks",
    ),
    Bug(
        "block dropout always on",
        "x = x + self.dropout(self.attn(self.norm1(x), mask, positions))  # (B, T, d_model)",
        "x = x + F.dropout(self.attn(self.norm1(x), mask, positions), self.dropout.p, training=True)",
        catches="test_block_dropout_train_eval",
        keywords=("still active", "eval()"),
        convention="Blocks",
    ),
    Bug(
        "attention sublayer output not dropped",
        "x = x + self.dropout(self.attn(self.norm1(x), mask, positions))  # (B, T, d_model)",
        "x = x + self.attn(self.norm1(x), mask, positions)",
        catches="test_dropout_one_drops_every_sublayer",
        keywords=("attention sublayer's output is not dropped",),
        convention="Blocks",
    ),
    Bug(
        "dropout on the residual stream",
        "x = x + self.dropout(self.attn(self.norm1(x), mask, positions))  # (B, T, d_model)",
        "x = self.dropout(x + self.attn(self.norm1(x), mask, positions))",
        catches="test_dropout_one_drops_every_sublayer",
        keywords=("dropout acts on the residual stream",),
        convention="Blocks",
    ),
    # ----------------------------------------------------------------- decoder block
    Bug(
        "cross-attention over the decoder's own stream",
        "self.cross_attn(self.norm2(x), context=memory, mask=memory_mask)",
        "self.cross_attn(self.norm2(x), mask=None)",
        catches="test_decoder_cross_attention_probe",
        keywords=("own stream",),
        convention="Blocks",
    ),
    Bug(
        "cross-attention queries from memory",
        "self.cross_attn(self.norm2(x), context=memory, mask=memory_mask)",
        "self.cross_attn(memory, context=self.norm2(x), mask=memory_mask)",
        catches="test_single_token",
        keywords=("one row per memory token", "queries come from the decoder"),
        convention="Blocks",
    ),
    Bug(
        "memory normalised by the decoder",
        "self.cross_attn(self.norm2(x), context=memory, mask=memory_mask)",
        "self.cross_attn(self.norm2(x), context=self.norm2(memory), mask=memory_mask)",
        catches="test_decoder_cross_attention_probe",
        keywords=("passed through norm2",),
        convention="Blocks",
    ),
    Bug(
        "decoder self-attention not causal",
        "self.self_attn = SelfAttention(d_model, n_heads, causal=True, bias=bias, dropout=dropout)",
        "self.self_attn = SelfAttention(d_model, n_heads, causal=False, bias=bias, dropout=dropout)",
        catches="test_decoder_masks",
        keywords=("not causal",),
        convention="Blocks",
    ),
    Bug(
        "decoder self_mask ignored",
        "x = x + self.dropout(self.self_attn(self.norm1(x), self_mask))",
        "x = x + self.dropout(self.self_attn(self.norm1(x)))",
        catches="test_decoder_block_matches_oracle",
        keywords=("self_mask is ignored",),
        convention="Blocks",
    ),
    Bug(
        "memory mask not passed to cross-attention",
        "context=memory, mask=memory_mask)",
        "context=memory)",
        catches="test_decoder_masks",
        keywords=("memory_mask does not reach",),
        convention="Masks and attention",
    ),
    Bug(
        "cross-attention output not dropped",
        "x = x + self.dropout(self.cross_attn(self.norm2(x), context=memory, mask=memory_mask))",
        "x = x + self.cross_attn(self.norm2(x), context=memory, mask=memory_mask)",
        catches="test_dropout_one_drops_every_sublayer",
        keywords=("cross-attention sublayer's output is not dropped",),
        convention="Blocks",
    ),
    # ----------------------------------------------------------------- counting
    Bug(
        "param count forgets SwiGLU's third matrix",
        'n_in = 2 if activation == "swiglu" else 1',
        "n_in = 1",
        catches="test_block_param_count",
        keywords=("third matrix",),
        convention="Blocks",
    ),
    Bug(
        "param count gives LayerNorm no bias",
        'one_norm = 2 * d_model if (norm == "layernorm" and bias) else d_model',
        "one_norm = d_model",
        catches="test_block_param_count",
        keywords=("bias is not counted",),
        convention="Blocks",
    ),
    Bug(
        "param count keeps LayerNorm's bias under bias=False",
        'one_norm = 2 * d_model if (norm == "layernorm" and bias) else d_model',
        'one_norm = 2 * d_model if norm == "layernorm" else d_model',
        catches="test_block_param_count",
        keywords=("still counted", "bias=False"),
    ),
    Bug(
        "param count gives w2 a d_ff-wide bias",
        "ffn = (n_in + 1) * d_model * d_ff + ((n_in * d_ff + d_model) if bias else 0)",
        "ffn = (n_in + 1) * d_model * d_ff + ((n_in + 1) * d_ff if bias else 0)",
        catches="test_block_param_count",
        keywords=("w2's bias",),
    ),
    Bug(
        "param count forgets the decoder's third norm",
        "n_attn, n_norms = (2, 3) if cross_attention else (1, 2)",
        "n_attn, n_norms = (2, 2) if cross_attention else (1, 2)",
        catches="test_block_param_count",
        keywords=("third norm",),
    ),
    Bug(
        "LayerNorms keep their bias in a bias=False block",
        "self.norm1 = make_norm(norm, d_model, bias)\n"
        "        self.attn = SelfAttention(d_model, n_heads, causal=causal, rope=rope, bias=bias, dropout=dropout)\n"
        "        self.norm2 = make_norm(norm, d_model, bias)",
        "self.norm1 = make_norm(norm, d_model)\n"
        "        self.attn = SelfAttention(d_model, n_heads, causal=causal, rope=rope, bias=bias, dropout=dropout)\n"
        "        self.norm2 = make_norm(norm, d_model)",
        catches="test_block_modules_have_counted_parameters",
        keywords=("keep their biases",),
    ),
]
