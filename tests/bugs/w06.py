from . import Bug

BUGS = [
    Bug(
        "targets shifted a second time inside forward",
        "logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100",
        "logits[:, :-1].reshape(-1, logits.size(-1)), targets[:, 1:].reshape(-1), ignore_index=-100",
        catches="test_forward_loss_is_next_token_cross_entropy",
    ),
    Bug(
        "no causal mask in the decoder",
        "out, weights = scaled_dot_product_attention(q, k, v, mask)  # (B, h, T, d_head)\n        if self.training",
        "out, weights = scaled_dot_product_attention(q, k, v)\n        if self.training",
        catches="test_gpt_is_causal",
    ),
    Bug(
        "causal mask built for the new tokens only (top-left aligned with a cache)",
        "mask = causal_mask(T, k.size(-2), device=x.device)  # (T, T_past + T)",
        "mask = causal_mask(T, device=x.device)",
        catches="test_kv_cache_matches_recomputation_learned",
    ),
    Bug(
        "KV cache restarts positions at 0",
        "positions = torch.arange(start, start + T, device=idx.device)  # (T,) absolute positions",
        "positions = torch.arange(T, device=idx.device)",
        catches="test_kv_cache_matches_recomputation_rope",
    ),
    Bug(
        "cache concatenated on the heads axis",
        "self.keys[layer] = torch.cat((self.keys[layer], k), dim=-2)",
        "self.keys[layer] = torch.cat((self.keys[layer], k), dim=1)",
        catches="test_kv_cache_matches_recomputation_learned",
    ),
    Bug(
        "cache length read from the wrong axis",
        "return self.keys[0].size(-2) if self.keys else 0",
        "return self.keys[0].size(1) if self.keys else 0",
        catches="test_kv_cache_layout",
    ),
    Bug(
        "RoPE applied only to queries",
        "q, k = apply_rope(q, positions), apply_rope(k, positions)",
        "q = apply_rope(q, positions)",
        catches="test_gpt_matches_functional_oracle",
    ),
    Bug(
        "LM head not tied to the embedding",
        "            self.lm_head.weight = self.tok_emb.weight  # one (V, d) tensor, two uses\n",
        "            self.lm_head.weight = nn.Parameter(self.tok_emb.weight.clone())\n",
        catches="test_tied_weights_share_storage",
    ),
    Bug(
        "parameter count forgets the position table",
        'embeddings = config.vocab_size * d + (config.block_size * d if config.pos == "learned" else 0)',
        "embeddings = config.vocab_size * d",
        catches="test_gpt2_param_count",
    ),
    Bug(
        "parameter count counts the tied head twice",
        "head = 0 if config.tie_weights else config.vocab_size * d",
        "head = config.vocab_size * d",
        catches="test_gpt2_param_count",
    ),
    Bug(
        "temperature applied after the softmax",
        "            logits = logits / temperature  # before softmax: T < 1 sharpens, T > 1 flattens\n",
        "",
        catches="test_sampling_distribution",
    ),
    Bug(
        "top-p drops the token that crosses p",
        "drop_sorted = mass_before >= p  # the set already reached p without this token",
        "drop_sorted = torch.cumsum(probs, dim=-1) > p",
        catches="test_top_p_filter",
    ),
    Bug(
        "top-k keeps k-1 tokens",
        'return logits.masked_fill(logits < kth, float("-inf"))  # strict <: ties with the k-th stay',
        'return logits.masked_fill(logits <= kth, float("-inf"))',
        catches="test_top_k_filter",
    ),
    Bug(
        "top-k breaks ties (exactly k tokens)",
        'return logits.masked_fill(logits < kth, float("-inf"))  # strict <: ties with the k-th stay',
        'return torch.full_like(logits, float("-inf")).scatter(-1, logits.topk(k, dim=-1).indices, logits.topk(k, dim=-1).values)',
        catches="test_top_k_filter",
    ),
    Bug(
        "temperature 0 divides by zero",
        "        if temperature == 0:\n            next_id = logits.argmax(dim=-1, keepdim=True)  # (B, 1)\n        else:\n",
        "        if True:\n",
        catches="test_greedy_decoding",
    ),
    Bug(
        "generation does not crop the context",
        "logits, _ = model(idx[:, -block_size:])  # recompute the whole (cropped) context",
        "logits, _ = model(idx)",
        catches="test_generation_crops_context",
    ),
    Bug(
        "sampling ignores the generator",
        "next_id = torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)",
        "next_id = torch.multinomial(probs, num_samples=1)",
        catches="test_seeded_sampling_is_reproducible",
    ),
]
