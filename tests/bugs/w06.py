from . import Bug

MASKS = "Masks and attention"
POSITIONS = "Positions"
OBJECTIVES = "Objectives and data"
SAMPLING = "Sampling"

BUGS = [
    # ------------------------------------------------------------------ forward and loss
    Bug(
        "targets shifted a second time inside forward",
        "logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100",
        "logits[:, :-1].reshape(-1, logits.size(-1)), targets[:, 1:].reshape(-1), ignore_index=-100",
        catches="test_forward_loss_is_next_token_cross_entropy",
        keywords=("shifted a second time",),
        convention=OBJECTIVES,
    ),
    Bug(
        "loss scored against the current tokens (idx) instead of the targets",
        "logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100",
        "logits.reshape(-1, logits.size(-1)), idx.reshape(-1), ignore_index=-100",
        catches="test_forward_loss_is_next_token_cross_entropy",
        keywords=("current token",),
        convention=OBJECTIVES,
    ),
    Bug(
        "no causal mask in the decoder",
        "out, weights = scaled_dot_product_attention(q, k, v, mask)  # (B, h, T, d_head)\n        if self.training",
        "out, weights = scaled_dot_product_attention(q, k, v)\n        if self.training",
        catches="test_gpt_is_causal",
        keywords=("sees the future",),
        convention=MASKS,
    ),
    Bug(
        "RoPE applied only to queries",
        "q, k = apply_rope(q, positions), apply_rope(k, positions)",
        "q = apply_rope(q, positions)",
        catches="test_gpt_matches_functional_oracle",
        keywords=("queries only",),
        convention=POSITIONS,
    ),
    Bug(
        "a context of exactly block_size tokens refused (off by one)",
        "if start + T > self.config.block_size:",
        "if start + T >= self.config.block_size:",
        catches="test_block_size_edges",
        keywords=("exactly block_size",),
    ),
    Bug(
        "no length check: RoPE accepts more than block_size tokens",
        "        if start + T > self.config.block_size:\n"
        '            raise ValueError(f"{start + T} positions exceed block_size={self.config.block_size}")\n',
        "",
        catches="test_block_size_edges",
        keywords=("accepted",),
    ),
    # ------------------------------------------------------------------ the KV cache
    Bug(
        "causal mask built for the new tokens only (shape error with a cache)",
        "mask = causal_mask(T, k.size(-2), device=x.device)  # (T, T_past + T)",
        "mask = causal_mask(T, device=x.device)",
        catches="test_kv_cache_matches_recomputation_learned",
        keywords=("new tokens only",),
        convention=MASKS,
    ),
    Bug(
        "causal mask top-left aligned with a cache (tril without the offset)",
        "mask = causal_mask(T, k.size(-2), device=x.device)  # (T, T_past + T)",
        "mask = torch.ones(T, k.size(-2), dtype=torch.bool, device=x.device).tril()",
        catches="test_kv_cache_matches_recomputation_learned",
        keywords=("top-left",),
        convention=MASKS,
    ),
    Bug(
        "KV cache restarts positions at 0",
        "positions = torch.arange(start, start + T, device=idx.device)  # (T,) absolute positions",
        "positions = torch.arange(T, device=idx.device)",
        catches="test_kv_cache_matches_recomputation_rope",
        keywords=("restart at 0",),
        convention=POSITIONS,
    ),
    Bug(
        "cache concatenated on the heads axis",
        "self.keys[layer] = torch.cat((self.keys[layer], k), dim=-2)",
        "self.keys[layer] = torch.cat((self.keys[layer], k), dim=1)",
        catches="test_kv_cache_matches_recomputation_learned",
        keywords=("not the time axis",),
    ),
    Bug(
        "cache length read from the wrong axis",
        "return self.keys[0].size(-2) if self.keys else 0",
        "return self.keys[0].size(1) if self.keys else 0",
        catches="test_kv_cache_layout",
        keywords=("number of heads",),
    ),
    # ------------------------------------------------------------------ parameters
    Bug(
        "LM head not tied to the embedding",
        "            self.lm_head.weight = self.tok_emb.weight  # one (V, d) tensor, two uses\n",
        "            self.lm_head.weight = nn.Parameter(self.tok_emb.weight.clone())\n",
        catches="test_tied_weights_share_storage",
        keywords=("not tied",),
    ),
    Bug(
        "LM head tied through a new Parameter (shared storage, two Parameters)",
        "            self.lm_head.weight = self.tok_emb.weight  # one (V, d) tensor, two uses\n",
        "            self.lm_head.weight = nn.Parameter(self.tok_emb.weight)\n",
        catches="test_tied_weights_share_storage",
        keywords=("different Parameter object",),
    ),
    Bug(
        "parameter count forgets the position table",
        'embeddings = config.vocab_size * d + (config.block_size * d if config.pos == "learned" else 0)',
        "embeddings = config.vocab_size * d",
        catches="test_gpt2_param_count",
        keywords=("position table",),
    ),
    Bug(
        "parameter count gives RoPE a position table",
        'embeddings = config.vocab_size * d + (config.block_size * d if config.pos == "learned" else 0)',
        "embeddings = config.vocab_size * d + config.block_size * d",
        catches="test_param_count_agrees_with_the_module",
        keywords=("has no position table",),
    ),
    Bug(
        "parameter count ignores bias=False",
        'block_param_count(d, 4 * d, "layernorm", "gelu", bias=config.bias)',
        'block_param_count(d, 4 * d, "layernorm", "gelu")',
        catches="test_param_count_agrees_with_the_module",
        keywords=("bias=False",),
    ),
    Bug(
        "parameter count counts the tied head twice",
        "head = 0 if config.tie_weights else config.vocab_size * d",
        "head = config.vocab_size * d",
        catches="test_gpt2_param_count",
        keywords=("counted separately",),
    ),
    # ------------------------------------------------------------------ filters
    Bug(
        "top-p drops the token that crosses p",
        "drop_sorted = mass_before >= p  # the set already reached p without this token",
        "drop_sorted = torch.cumsum(probs, dim=-1) > p",
        catches="test_top_p_filter",
        keywords=("makes the sum reach p",),
        convention=SAMPLING,
    ),
    Bug(
        "top-p can keep no token (the most likely is not protected)",
        "    drop_sorted[..., 0] = False  # at least one token survives\n",
        "",
        catches="test_top_p_filter",
        keywords=("at least one token",),
        convention=SAMPLING,
    ),
    Bug(
        "top-p sorts in increasing order",
        "sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (..., V)",
        "sorted_logits, order = torch.sort(logits, dim=-1)",
        catches="test_top_p_filter",
        keywords=("increasing order",),
        convention=SAMPLING,
    ),
    Bug(
        "top-p at p = 1 drops the float32 tail",
        "    if p >= 1.0:\n"
        "        # Every token is needed to reach a mass of 1. (In float32 the running sum reaches 1.0\n"
        "        # before the tail of tiny probabilities, which the comparison below would then drop.)\n"
        "        return logits.clone()\n",
        "",
        catches="test_top_p_filter",
        keywords=("no filtering",),
        convention=SAMPLING,
    ),
    Bug(
        "top-k keeps k-1 tokens",
        'return logits.masked_fill(logits < kth, float("-inf"))  # strict <: ties with the k-th stay',
        'return logits.masked_fill(logits <= kth, float("-inf"))',
        catches="test_top_k_filter",
        keywords=("k - 1",),
        convention=SAMPLING,
    ),
    Bug(
        "top-k breaks ties (exactly k tokens)",
        'return logits.masked_fill(logits < kth, float("-inf"))  # strict <: ties with the k-th stay',
        'return torch.full_like(logits, float("-inf")).scatter(-1, logits.topk(k, dim=-1).indices, logits.topk(k, dim=-1).values)',
        catches="test_top_k_filter",
        keywords=("broke the tie",),
        convention=SAMPLING,
    ),
    Bug(
        "top-k with k larger than the vocabulary raises",
        "    k = min(k, logits.size(-1))\n",
        "",
        catches="test_top_k_filter",
        keywords=("larger than the vocabulary",),
        convention=SAMPLING,
    ),
    # ------------------------------------------------------------------ generate
    Bug(
        "temperature applied after the softmax",
        "            logits = logits / temperature  # before softmax: T < 1 sharpens, T > 1 flattens\n",
        "",
        catches="test_sampling_distribution",
        keywords=("no effect",),
        convention=SAMPLING,
    ),
    Bug(
        "temperature applied after the filters",
        "            logits = logits / temperature  # before softmax: T < 1 sharpens, T > 1 flattens\n"
        "            if top_k is not None:\n"
        "                logits = top_k_filter(logits, top_k)\n"
        "            if top_p is not None:\n"
        "                logits = top_p_filter(logits, top_p)\n",
        "            if top_k is not None:\n"
        "                logits = top_k_filter(logits, top_k)\n"
        "            if top_p is not None:\n"
        "                logits = top_p_filter(logits, top_p)\n"
        "            logits = logits / temperature\n",
        catches="test_sampling_distribution",
        keywords=("after the filters",),
        convention=SAMPLING,
    ),
    Bug(
        "top-p applied before top-k",
        "            if top_k is not None:\n"
        "                logits = top_k_filter(logits, top_k)\n"
        "            if top_p is not None:\n"
        "                logits = top_p_filter(logits, top_p)\n",
        "            if top_p is not None:\n"
        "                logits = top_p_filter(logits, top_p)\n"
        "            if top_k is not None:\n"
        "                logits = top_k_filter(logits, top_k)\n",
        catches="test_sampling_distribution",
        keywords=("before top-k",),
        convention=SAMPLING,
    ),
    Bug(
        "temperature 0 divides by zero",
        "        if temperature == 0:\n            next_id = logits.argmax(dim=-1, keepdim=True)  # (B, 1)\n        else:\n",
        "        if True:\n",
        catches="test_greedy_decoding",
        keywords=("division by zero",),
        convention=SAMPLING,
    ),
    Bug(
        "sampling softmax without the max subtraction (overflows at a small temperature)",
        "            probs = torch.softmax(logits, dim=-1)\n",
        "            probs = logits.exp() / logits.exp().sum(dim=-1, keepdim=True)\n",
        catches="test_greedy_decoding",
        keywords=("overflow",),
        convention=MASKS,
    ),
    Bug(
        "next token read from the first position's logits",
        "logits = logits[:, -1, :]  # (B, V): only the last position predicts the next token",
        "logits = logits[:, 0, :]",
        catches="test_greedy_decoding",
        keywords=("first position",),
    ),
    Bug(
        "a squeeze drops the batch axis of a batch of one",
        "logits = logits[:, -1, :]  # (B, V): only the last position predicts the next token",
        "logits = logits[:, -1, :].squeeze()",
        catches="test_generate_small_cases",
        keywords=("squeeze",),
    ),
    Bug(
        "generate samples in training mode (dropout on)",
        "    model.eval()\n    cache = None\n",
        "    cache = None\n",
        catches="test_generate_runs_in_eval_mode",
        keywords=("eval mode",),
    ),
    Bug(
        "generate does not restore the model's mode",
        "    model.train(was_training)\n",
        "",
        catches="test_generate_runs_in_eval_mode",
        keywords=("restore",),
    ),
    Bug(
        "generation does not crop the context",
        "logits, _ = model(idx[:, -block_size:])  # recompute the whole (cropped) context",
        "logits, _ = model(idx)",
        catches="test_generation_crops_context",
        keywords=("crop",),
    ),
    Bug(
        "sampling ignores the generator",
        "next_id = torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)",
        "next_id = torch.multinomial(probs, num_samples=1)",
        catches="test_seeded_sampling_is_reproducible",
        keywords=("generator",),
    ),
]
