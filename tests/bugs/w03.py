from . import Bug

BUGS = [
    Bug(
        "sinusoidal sin and cos swapped",
        "    pe[:, 0::2] = torch.sin(angles)  # even channels\n"
        "    pe[:, 1::2] = torch.cos(angles[:, : d_model // 2])",
        "    pe[:, 0::2] = torch.cos(angles)\n    pe[:, 1::2] = torch.sin(angles[:, : d_model // 2])",
        catches="test_sinusoidal_anchor",
    ),
    Bug(
        "sinusoidal sines and cosines concatenated, not interleaved",
        "    pe[:, 0::2] = torch.sin(angles)  # even channels\n"
        "    pe[:, 1::2] = torch.cos(angles[:, : d_model // 2])  # odd channels (one fewer when d is odd)\n",
        "    pe = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)\n",
        catches="test_sinusoidal_anchor",
    ),
    Bug(
        "sinusoidal exponent i/d instead of 2i/d",
        "two_i = torch.arange(0, d_model, 2, dtype=torch.float32)",
        "two_i = torch.arange(0, d_model // 2, dtype=torch.float32)",
        catches="test_sinusoidal_closed_form",
    ),
    Bug(
        "sinusoidal base argument ignored",
        "angles = position * base ** (-two_i / d_model)",
        "angles = position * 10000.0 ** (-two_i / d_model)",
        catches="test_sinusoidal_closed_form",
    ),
    Bug(
        "learned table left at nn.Embedding's N(0, 1) init",
        "nn.init.normal_(self.weight, mean=0.0, std=0.02)",
        "nn.init.normal_(self.weight)",
        catches="test_learned_embedding_init",
    ),
    Bug(
        "learned table registered as a buffer",
        "        self.weight = nn.Parameter(torch.empty(max_len, d_model))\n"
        "        nn.init.normal_(self.weight, mean=0.0, std=0.02)",
        '        self.register_buffer("weight", torch.randn(max_len, d_model) * 0.02)',
        catches="test_learned_embedding_lookup",
    ),
    Bug(
        "RoPE 1-indexed frequencies",
        "theta = base ** (-torch.arange(0, d_head, 2, dtype=torch.float32) / d_head)",
        "theta = base ** (-torch.arange(2, d_head + 2, 2, dtype=torch.float32) / d_head)",
        catches="test_rope_matches_complex_formulation",
    ),
    Bug(
        "RoPE sin and cos swapped",
        "return torch.cos(angles), torch.sin(angles)",
        "return torch.sin(angles), torch.cos(angles)",
        catches="test_rope_angles",
    ),
    Bug(
        "RoPE rotation sign flipped",
        "    rotated_even = x_even * cos - x_odd * sin\n    rotated_odd = x_even * sin + x_odd * cos",
        "    rotated_even = x_even * cos + x_odd * sin\n    rotated_odd = -x_even * sin + x_odd * cos",
        catches="test_rope_matches_complex_formulation",
    ),
    Bug(
        "RoPE pairs split in halves but interleaved back",
        "    x_even, x_odd = x[..., 0::2], x[..., 1::2]  # (..., T, d_head/2) each",
        "    x_even, x_odd = x.chunk(2, dim=-1)  # rotate_half: pair i with i + d/2",
    ),
    Bug(
        "RoPE in the half-split (rotate_half) layout, output concatenated",
        "    x_even, x_odd = x[..., 0::2], x[..., 1::2]  # (..., T, d_head/2) each",
        "    x_even, x_odd = x.chunk(2, dim=-1)\n"
        "    return torch.cat((x_even * cos - x_odd * sin, x_even * sin + x_odd * cos), dim=-1).to(x.dtype)",
        catches="test_rope_layout_is_interleaved",
    ),
    Bug(
        "RoPE ignores the positions it is given",
        "cos, sin = rope_angles(x.size(-1), positions, base)",
        "cos, sin = rope_angles(x.size(-1), torch.arange(x.size(-2)), base)",
        catches="test_rope_leading_dims_and_offsets",
    ),
    Bug(
        "RoPE rotated pairs not interleaved back",
        "return torch.stack((rotated_even, rotated_odd), dim=-1).flatten(-2).to(x.dtype)",
        "return torch.cat((rotated_even, rotated_odd), dim=-1).to(x.dtype)",
        catches="test_rope_anchor_and_identity",
    ),
    Bug(
        "ALiBi sign flipped",
        "return alibi_slopes(n_heads)[:, None, None] * offset",
        "return -alibi_slopes(n_heads)[:, None, None] * offset",
        catches="test_alibi_bias",
    ),
    Bug(
        "ALiBi slopes 2^-h whatever the number of heads",
        "return 2.0 ** (-8.0 * h / n_heads)",
        "return 2.0 ** (-h)",
        catches="test_alibi_slopes",
    ),
    Bug(
        "ALiBi bias aligned top-left",
        "query_pos = torch.arange(T_q).unsqueeze(1) + (T_k - T_q)  # (T_q, 1)",
        "query_pos = torch.arange(T_q).unsqueeze(1)",
        catches="test_alibi_bias",
    ),
    Bug(
        "ALiBi penalises future keys by their distance too",
        "offset = (key_pos - query_pos).clamp(max=0).float()",
        "offset = -(key_pos - query_pos).abs().float()",
        catches="test_alibi_bias",
    ),
]
