from . import Bug

MASKS = "Masks and attention"
BLOCKS = "Blocks"

BUGS = [
    # ----------------------------------------------------------------- online softmax
    Bug(
        "online softmax: running sum not rescaled",
        "l = l * torch.exp(m - shift) + torch.exp(block - shift).sum(dim=-1, keepdim=True)",
        "l = l + torch.exp(block - shift).sum(dim=-1, keepdim=True)",
        catches="test_online_softmax_matches_torch",
        keywords=("running sum", "not rescaled"),
    ),
    Bug(
        "online softmax: NaN while the running max is -inf",
        "        shift = torch.where(torch.isfinite(m_new), m_new, torch.zeros_like(m_new))\n"
        "        l = l * torch.exp(m - shift) + torch.exp(block - shift)",
        "        shift = m_new\n        l = l * torch.exp(m - shift) + torch.exp(block - shift)",
        catches="test_online_softmax_stable_and_masked",
        keywords=("NaN", "-inf"),
        convention=MASKS,
    ),
    Bug(
        "online softmax borrowed from torch",
        "    return torch.exp(x - shift) / torch.where(l > 0, l, torch.ones_like(l))\n",
        "    return torch.softmax(x, dim=-1).nan_to_num(0.0)\n",
        catches="test_tiled_never_materialises_scores",
        keywords=("online_softmax", "PyTorch's own softmax"),
    ),
    # ----------------------------------------------------------------- tiled attention
    Bug(
        "tiled: running output not rescaled",
        "acc = acc * rescale + p @ v[..., ks : ks + block_k, :]",
        "acc = acc + p @ v[..., ks : ks + block_k, :]",
        catches="test_tiled_matches_sdpa_every_tile_size",
        keywords=("running output", "not rescaled"),
    ),
    Bug(
        "tiled: running sum not rescaled",
        "l = l * rescale + p.sum(dim=-1, keepdim=True)",
        "l = l + p.sum(dim=-1, keepdim=True)",
        catches="test_tiled_matches_sdpa_every_tile_size",
        keywords=("running sum", "not rescaled"),
    ),
    Bug(
        "tiled: no 1/√d scale",
        "q_blk = q[..., qs : qs + block_q, :] * scale  # (..., n, d)",
        "q_blk = q[..., qs : qs + block_q, :]",
        catches="test_tiled_matches_sdpa_every_tile_size",
        keywords=("√d",),
    ),
    Bug(
        "tiled: every tile normalised on its own",
        "            l = l * rescale + p.sum(dim=-1, keepdim=True)\n"
        "            acc = acc * rescale + p @ v[..., ks : ks + block_k, :]\n"
        "            m = m_new\n",
        "            tile_sum = p.sum(dim=-1, keepdim=True)\n"
        "            acc = acc + p / torch.where(tile_sum > 0, tile_sum, torch.ones_like(tile_sum)) @ v[..., ks : ks + block_k, :]\n"
        "            l = torch.ones_like(l)\n",
        catches="test_tiled_matches_sdpa_every_tile_size",
        keywords=("own softmax", "running maximum"),
    ),
    Bug(
        "tiled: last, shorter key block skipped",
        "for ks in range(0, T_k, block_k):",
        "for ks in range(0, T_k - block_k + 1, block_k):",
        catches="test_tiled_matches_sdpa_every_tile_size",
        keywords=("last key block", "shorter"),
    ),
    Bug(
        "tiled: last, shorter query block dropped",
        "for qs in range(0, T_q, block_q):",
        "for qs in range(0, T_q - block_q + 1, block_q):",
        catches="test_tiled_matches_sdpa_every_tile_size",
        keywords=("shape", "last block"),
    ),
    Bug(
        "tiled: causal mask top-left aligned",
        "q_pos = torch.arange(qs, qs + n, device=q.device) + (T_k - T_q)  # absolute positions",
        "q_pos = torch.arange(qs, qs + n, device=q.device)",
        catches="test_tiled_causal_bottom_right",
        keywords=("top-left",),
        convention=MASKS,
    ),
    Bug(
        "tiled: causal mask without the diagonal",
        "keep = k_pos[None, :] <= q_pos[:, None]  # (n, b): built per tile, never T_q × T_k",
        "keep = k_pos[None, :] < q_pos[:, None]",
        catches="test_tiled_causal_bottom_right",
        keywords=("diagonal",),
        convention=MASKS,
    ),
    Bug(
        "tiled: causal tiles skipped from the block's first query",
        "if int(k_pos[0]) > int(q_pos[-1]):  # every key of the tile is in the future",
        "if int(k_pos[0]) > int(q_pos[0]):",
        catches="test_tiled_causal_bottom_right",
        keywords=("skip a tile", "last query"),
    ),
    Bug(
        "tiled: masked tiles computed instead of skipped",
        "if int(k_pos[0]) > int(q_pos[-1]):  # every key of the tile is in the future\n                    break",
        "if False:\n                    break",
        catches="test_tiled_skips_masked_tiles",
        keywords=("skipped",),
    ),
    Bug(
        "tiled: window counts window + 1 keys",
        "                if window is not None and int(k_pos[-1]) <= int(q_pos[0]) - window:  # all too old\n"
        "                    continue\n"
        "            s = q_blk @ k[..., ks : ks + block_k, :].transpose(-2, -1)  # (..., n, b) one tile\n"
        "            if masked:\n"
        "                keep = k_pos[None, :] <= q_pos[:, None]  # (n, b): built per tile, never T_q × T_k\n"
        "                if window is not None:\n"
        "                    keep &= k_pos[None, :] > q_pos[:, None] - window\n",
        "                if window is not None and int(k_pos[-1]) < int(q_pos[0]) - window:\n"
        "                    continue\n"
        "            s = q_blk @ k[..., ks : ks + block_k, :].transpose(-2, -1)  # (..., n, b) one tile\n"
        "            if masked:\n"
        "                keep = k_pos[None, :] <= q_pos[:, None]  # (n, b): built per tile, never T_q × T_k\n"
        "                if window is not None:\n"
        "                    keep &= k_pos[None, :] >= q_pos[:, None] - window\n",
        catches="test_tiled_sliding_window",
        keywords=("off by one",),
        convention=MASKS,
    ),
    Bug(
        "tiled: window ignored",
        "masked = causal or window is not None",
        "masked = causal",
        catches="test_tiled_sliding_window",
        keywords=("window is ignored",),
    ),
    Bug(
        "tiled: NaN on a query that sees no key",
        "outs.append(acc / torch.where(l > 0, l, torch.ones_like(l)))",
        "outs.append(acc / l)",
        catches="test_tiled_lse_and_empty_rows",
        keywords=("NaN", "zero output"),
        convention=MASKS,
    ),
    Bug(
        "tiled: log-sum-exp without the running max",
        "lses.append((shift + torch.log(l)).squeeze(-1))",
        "lses.append(torch.log(l).squeeze(-1))",
        catches="test_tiled_lse_and_empty_rows",
        keywords=("m + log l",),
    ),
    Bug(
        "tiled: tile masks sliced from a full (T_q, T_k) mask",
        "keep = k_pos[None, :] <= q_pos[:, None]  # (n, b): built per tile, never T_q × T_k",
        "keep = sliding_window_mask(T_q, T_k, window=T_k + 1)[qs : qs + n, ks : ks + block_k]",
        catches="test_tiled_never_materialises_scores",
        keywords=("score matrix", "O(T²)"),
    ),
    Bug(
        "tiled: library attention when no lse is asked",
        "    T_q, T_k = q.size(-2), k.size(-2)\n    scale = 1.0 / math.sqrt(q.size(-1))\n",
        "    if not return_lse and not causal and window is None:\n"
        "        return torch.nn.functional.scaled_dot_product_attention(q, k, v)\n"
        "    T_q, T_k = q.size(-2), k.size(-2)\n    scale = 1.0 / math.sqrt(q.size(-1))\n",
        catches="test_tiled_never_materialises_scores",
        keywords=("PyTorch's own",),
    ),
    # ----------------------------------------------------------------- sliding window and caches
    Bug(
        "window mask counts window + 1 keys",
        "return (key_pos <= query_pos) & (key_pos > query_pos - window)  # (T_q, T_k)",
        "return (key_pos <= query_pos) & (key_pos >= query_pos - window)",
        catches="test_sliding_window_mask",
        keywords=("off by one", "window + 1"),
        convention=MASKS,
    ),
    Bug(
        "window mask counts window − 1 keys",
        "return (key_pos <= query_pos) & (key_pos > query_pos - window)  # (T_q, T_k)",
        "return (key_pos <= query_pos) & (key_pos > query_pos - window + 1)",
        catches="test_sliding_window_mask",
        keywords=("off by one", "window − 1"),
        convention=MASKS,
    ),
    Bug(
        "window mask top-left aligned",
        "    query_pos = torch.arange(T_q, device=device).unsqueeze(1) + (T_k - T_q)  # (T_q, 1)\n"
        "    key_pos = torch.arange(T_k, device=device).unsqueeze(0)  # (1, T_k)\n"
        "    return (key_pos <= query_pos) & (key_pos > query_pos - window)",
        "    query_pos = torch.arange(T_q, device=device).unsqueeze(1)\n"
        "    key_pos = torch.arange(T_k, device=device).unsqueeze(0)  # (1, T_k)\n"
        "    return (key_pos <= query_pos) & (key_pos > query_pos - window)",
        catches="test_sliding_window_mask",
        keywords=("top-left",),
        convention=MASKS,
    ),
    Bug(
        "window mask looks both ways",
        "return (key_pos <= query_pos) & (key_pos > query_pos - window)  # (T_q, T_k)",
        "return (key_pos - query_pos).abs() < window",
        catches="test_sliding_window_mask",
        keywords=("not causal",),
        convention=MASKS,
    ),
    Bug(
        "window mask inverted",
        "return (key_pos <= query_pos) & (key_pos > query_pos - window)  # (T_q, T_k)",
        "return ~((key_pos <= query_pos) & (key_pos > query_pos - window))",
        catches="test_sliding_window_mask",
        keywords=("inverted",),
        convention=MASKS,
    ),
    Bug(
        "KV cache counts keys only",
        "return 2 * n_layers * batch * n_kv_heads * d_head * cached * bytes_per_value",
        "return n_layers * batch * n_kv_heads * d_head * cached * bytes_per_value",
        catches="test_kv_cache_bytes",
        keywords=("keys and values",),
    ),
    Bug(
        "KV cache ignores the window",
        "cached = seq_len if window is None else min(seq_len, window)",
        "cached = seq_len",
        catches="test_kv_cache_bytes",
        keywords=("window is ignored",),
    ),
    # ----------------------------------------------------------------- routing
    Bug(
        "route never renormalises",
        "    if renormalize:\n        weights = weights / weights.sum(dim=-1, keepdim=True)",
        "    if False:\n        weights = weights / weights.sum(dim=-1, keepdim=True)",
        catches="test_route_matches_loops",
        keywords=("not renormalised",),
        convention=BLOCKS,
    ),
    Bug(
        "route always renormalises",
        "    if renormalize:\n        weights = weights / weights.sum(dim=-1, keepdim=True)",
        "    if True:\n        weights = weights / weights.sum(dim=-1, keepdim=True)",
        catches="test_route_matches_loops",
        keywords=("renormalised although",),
        convention=BLOCKS,
    ),
    Bug(
        "route ranks and weighs raw logits",
        "sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)",
        "sorted_probs, order = torch.sort(logits, dim=-1, descending=True, stable=True)",
        catches="test_route_matches_loops",
        keywords=("raw router logits",),
        convention=BLOCKS,
    ),
    Bug(
        "route takes the least probable experts",
        "sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)",
        "sorted_probs, order = torch.sort(probs, dim=-1, descending=False, stable=True)",
        catches="test_route_matches_loops",
        keywords=("least probable",),
        convention=BLOCKS,
    ),
    Bug(
        "route breaks ties toward the higher index",
        "sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)",
        "sorted_probs, order = (t.flip(-1) for t in torch.sort(probs, dim=-1, stable=True))",
        catches="test_route_ties_go_to_lower_index",
        keywords=("higher expert index",),
        convention=BLOCKS,
    ),
    Bug(
        "route with torch.topk (ties in no set order)",
        "    sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)\n"
        "    weights, experts = sorted_probs[..., :top_k], order[..., :top_k]  # (..., k)\n",
        "    weights, experts = torch.topk(probs, top_k, dim=-1)\n",
        catches="test_route_ties_go_to_lower_index",
        keywords=("torch.topk", "stable"),
        convention=BLOCKS,
    ),
    Bug(
        "expert counts without minlength",
        "return torch.bincount(experts.reshape(-1), minlength=n_experts)  # (E,)",
        "return torch.bincount(experts.reshape(-1))",
        catches="test_expert_counts",
        keywords=("minlength",),
    ),
    Bug(
        "expert counts of the first choice only",
        "return torch.bincount(experts.reshape(-1), minlength=n_experts)  # (E,)",
        "return torch.bincount(experts[..., 0].reshape(-1), minlength=n_experts)",
        catches="test_expert_counts",
        keywords=("first choice",),
    ),
    # ----------------------------------------------------------------- load balancing
    Bug(
        "balancing loss without the factor E",
        "return n_experts * (f * P).sum()",
        "return (f * P).sum()",
        catches="test_load_balancing_loss",
        keywords=("factor n_experts",),
        convention=BLOCKS,
    ),
    Bug(
        "balancing loss: f over tokens, not assignments",
        "f = counts / counts.sum()  # (E,) fraction of assignments; Σ f = 1",
        "f = counts / probs.size(0)",
        catches="test_load_balancing_loss",
        keywords=("N · k",),
        convention=BLOCKS,
    ),
    Bug(
        "balancing loss: P detached",
        "P = probs.mean(dim=0)  # (E,) mean router probability; Σ P = 1",
        "P = probs.detach().mean(dim=0)",
        catches="test_load_balancing_loss_gradient",
        keywords=("no gradient",),
    ),
    # ----------------------------------------------------------------- the MoE layer
    Bug(
        "MoE: routing weights not applied",
        "y = expert(flat[tokens]) * weights[tokens, slots].unsqueeze(-1)  # (n_e, d_model)",
        "y = expert(flat[tokens])",
        catches="test_moe_forward_matches_loops",
        keywords=("without their routing weights",),
        convention=BLOCKS,
    ),
    Bug(
        "MoE: outputs overwritten instead of added",
        "out = out.index_add(0, tokens, y)  # add: a token has top_k experts",
        "out[tokens] = y",
        catches="test_moe_forward_matches_loops",
        keywords=("overwrites",),
    ),
    Bug(
        "MoE: renormalize flag ignored",
        "weights, experts = route(logits, self.top_k, self.renormalize)  # (N, k), (N, k)",
        "weights, experts = route(logits, self.top_k)",
        catches="test_moe_forward_matches_loops",
        keywords=("renormalize flag",),
        convention=BLOCKS,
    ),
    Bug(
        "MoE: routing weights detached",
        "y = expert(flat[tokens]) * weights[tokens, slots].unsqueeze(-1)  # (n_e, d_model)",
        "y = expert(flat[tokens]) * weights.detach()[tokens, slots].unsqueeze(-1)",
        catches="test_moe_gradients",
        keywords=("no gradient reaches the router",),
    ),
    Bug(
        "MoE: aux loss detached from the router",
        "self.aux_loss = load_balancing_loss(logits, experts)",
        "self.aux_loss = load_balancing_loss(logits.detach(), experts)",
        catches="test_moe_gradients",
        keywords=("aux_loss does not depend",),
    ),
    Bug(
        "MoE: router with a bias",
        "self.router = nn.Linear(d_model, n_experts, bias=False)",
        "self.router = nn.Linear(d_model, n_experts)",
        catches="test_moe_parameters",
        keywords=("no bias",),
    ),
    Bug(
        "MoE counts: router left out",
        "return n_experts * expert + router, top_k * expert + router",
        "return n_experts * expert, top_k * expert",
        catches="test_moe_param_counts",
        keywords=("router",),
    ),
    Bug(
        "MoE counts: SwiGLU's third matrix forgotten",
        'n_matrices = 3 if activation == "swiglu" else 2',
        "n_matrices = 2",
        catches="test_moe_param_counts",
        keywords=("SwiGLU", "two matrices"),
    ),
    Bug(
        "MoE counts: active counts every expert",
        "return n_experts * expert + router, top_k * expert + router",
        "return n_experts * expert + router, n_experts * expert + router",
        catches="test_moe_param_counts",
        keywords=("only top_k",),
    ),
    # ----------------------------------------------------------------- scans
    Bug(
        "sequential scan ignores h0",
        "h = b.new_zeros((*b.shape[:-2], b.size(-1))) if h0 is None else h0  # (..., D)",
        "h = b.new_zeros((*b.shape[:-2], b.size(-1)))",
        catches="test_scan_sequential_matches_loop",
        keywords=("h0 is ignored",),
        convention=BLOCKS,
    ),
    Bug(
        "sequential scan returns h_0 … h_(T−1)",
        "        h = a[..., t, :] * h + b[..., t, :]\n        states.append(h)",
        "        states.append(h)\n        h = a[..., t, :] * h + b[..., t, :]",
        catches="test_scan_sequential_matches_loop",
        keywords=("shifted",),
        convention=BLOCKS,
    ),
    Bug(
        "sequential scan multiplies b_t by a_t",
        "h = a[..., t, :] * h + b[..., t, :]",
        "h = a[..., t, :] * (h + b[..., t, :])",
        catches="test_scan_sequential_matches_loop",
        keywords=("multiplies b_t",),
        convention=BLOCKS,
    ),
    Bug(
        "parallel scan: combine in the wrong order",
        "b_new = a[..., offset:, :] * b[..., :-offset, :] + b[..., offset:, :]",
        "b_new = a[..., :-offset, :] * b[..., offset:, :] + b[..., :-offset, :]",
        catches="test_scan_parallel_equals_sequential",
        keywords=("wrong order",),
    ),
    Bug(
        "parallel scan ignores h0",
        "if h0 is not None and b.size(-2) > 0:",
        "if False:",
        catches="test_scan_parallel_equals_sequential",
        keywords=("h0 is ignored",),
        convention=BLOCKS,
    ),
    Bug(
        "parallel scan stops one round early",
        "while offset < T:",
        "while 2 * offset < T:",
        catches="test_scan_parallel_equals_sequential",
        keywords=("1, 2, 4, … < T",),
    ),
    Bug(
        "parallel scan never composes the decays",
        "        a = torch.cat([a[..., :offset, :], a_new], dim=-2)\n",
        "",
        catches="test_scan_parallel_equals_sequential",
        keywords=("a[t] *= a[t − offset]",),
    ),
    Bug(
        "parallel scan is a loop over time steps",
        "    T = b.size(-2)\n    offset = 1\n",
        "    return linear_scan_sequential(a, b)\n    T = b.size(-2)\n    offset = 1\n",
        catches="test_scan_parallel_is_logarithmic",
        keywords=("grows like T",),
    ),
    Bug(
        "parallel scan by cumprod / cumsum",
        "    T = b.size(-2)\n    offset = 1\n",
        "    A = torch.cumprod(a, dim=-2)\n    return A * torch.cumsum(b / A, dim=-2)\n    T = b.size(-2)\n    offset = 1\n",
        catches="test_scan_parallel_is_stable",
        keywords=("cumulative products",),
    ),
    # ----------------------------------------------------------------- the recurrent layer
    Bug(
        "recurrence: decay without the sigmoid",
        "a = torch.sigmoid(self.gate(x))  # (B, T, D)",
        "a = self.gate(x)",
        catches="test_recurrence_layer_matches_formula",
        keywords=("sigmoid(gate(x))",),
    ),
    Bug(
        "recurrence: input not gated by 1 − a",
        "b = (1 - a) * self.in_proj(x)  # (B, T, D)",
        "b = self.in_proj(x)",
        catches="test_recurrence_layer_matches_formula",
        keywords=("(1 − a)",),
    ),
    Bug(
        "recurrence: h0 ignored",
        "h = scan(a, b, h0)  # (B, T, D)",
        "h = scan(a, b)",
        catches="test_recurrence_layer_matches_formula",
        keywords=("h0 is ignored",),
        convention=BLOCKS,
    ),
    Bug(
        "recurrence: final state taken from the first step",
        "last = h[..., -1, :]",
        "last = h[..., 0, :]",
        catches="test_recurrence_layer_matches_formula",
        keywords=("h[..., -1, :]",),
    ),
]
