from . import Bug

BUGS = [
    # ------------------------------------------------------------------ model.py
    Bug(
        "attention not causal",
        "y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)",
        "y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)",
        file="model.py",
        catches="test_causality",
    ),
    Bug(
        "post-LN blocks",
        "            attn_out, weights = self.attn(self.ln1(x), rope), None\n"
        "        x = x + attn_out  # normalise the branch input, never the stream itself\n"
        "        x = x + self.mlp(self.ln2(x))",
        "            attn_out, weights = self.attn(x, rope), None\n"
        "        x = self.ln1(x + attn_out)\n"
        "        x = self.ln2(x + self.mlp(x))",
        file="model.py",
        catches="test_forward_matches_oracle",
    ),
    Bug(
        "no weight tying",
        "self.lm_head.weight = self.tok_emb.weight  # weight tying: one (V, d) matrix, two uses",
        "pass",
        file="model.py",
        catches="test_weight_tying_and_parameter_count",
    ),
    Bug(
        "heads merged without transposing back",
        "y = y.transpose(1, 2).contiguous().view(B, T, C)",
        "y = y.contiguous().view(B, T, C)",
        file="model.py",
        catches="test_forward_matches_oracle",
    ),
    Bug(
        "RoPE on half-split pairs",
        "    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))  # (..., T, d_head/2)\n"
        "    rotated = pairs * torch.complex(cos, sin)\n"
        "    return torch.view_as_real(rotated).flatten(-2).type_as(x)",
        "    half = x.size(-1) // 2\n"
        "    pairs = torch.complex(x[..., :half].float(), x[..., half:].float())\n"
        "    rotated = pairs * torch.complex(cos, sin)\n"
        "    return torch.cat((rotated.real, rotated.imag), dim=-1).type_as(x)",
        file="model.py",
        catches="test_rope_convention",
    ),
    # ------------------------------------------------------------------ data.py
    Bug(
        "targets not shifted",
        "y = data[starts[:, None] + offsets + 1]",
        "y = data[starts[:, None] + offsets]",
        file="data.py",
        catches="test_get_batch_windows_and_shift",
    ),
    Bug(
        "last window never drawn",
        "starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)",
        "starts = torch.randint(len(data) - block_size - 1, (batch_size,), generator=generator)",
        file="data.py",
        catches="test_get_batch_covers_every_window",
    ),
    # ------------------------------------------------------------------ tokenizers.py
    Bug(
        "character ids in order of first appearance",
        "self.chars = sorted(set(chars))",
        "self.chars = list(dict.fromkeys(chars))",
        file="tokenizers.py",
        catches="test_char_tokenizer_sorted_ids",
    ),
    Bug(
        "BPE ties broken by dictionary order",
        "pair = min(stats, key=lambda p: (-stats[p], p))",
        "pair = max(stats, key=stats.get)",
        file="tokenizers.py",
        catches="test_bpe_merges_follow_the_rule",
    ),
    Bug(
        "BPE merge consumes one id instead of two",
        "i += 2  # both ids are consumed",
        "i += 1",
        file="tokenizers.py",
        catches="test_bpe_merges_follow_the_rule",
    ),
    # ------------------------------------------------------------------ train.py
    Bug(
        "gradients never cleared",
        "    optimizer.zero_grad(set_to_none=True)  # gradients accumulate otherwise\n",
        "",
        file="train.py",
        catches="test_train_step_matches_adamw",
    ),
    Bug(
        "no gradient clipping",
        "    if grad_clip > 0:\n        clip_grad_norm(model.parameters(), grad_clip)\n",
        "",
        file="train.py",
        catches="test_train_step_matches_adamw",
    ),
    Bug(
        "evaluation with dropout on",
        "    model.eval()\n    out = {}",
        "    out = {}",
        file="train.py",
        catches="test_estimate_loss",
    ),
    Bug(
        "resume forgets the batch generator",
        '        batch_gen.set_state(checkpoint["rng"]["batches"])\n',
        "",
        file="train.py",
        catches="test_checkpoint_round_trip_and_exact_resume",
    ),
    Bug(
        # The run goes on in the resumed directory but starts over from step 0 with fresh
        # weights: with the first run's seed it would end exactly where a real resume does.
        "train ignores resume (starts fresh)",
        "        checkpoint = load_checkpoint(resume)\n"
        "        run_dir = resume if resume.is_dir() else resume.parent\n"
        '        saved = checkpoint["config"]\n'
        '        changed = [k for k in MODEL_FIELDS + ("tokenizer", "data") if saved.get(k) != getattr(config, k)]\n'
        "        if changed:\n"
        "            raise ValueError(f\"cannot resume {run_dir} with a different {', '.join(changed)}\")\n",
        "        run_dir = resume if resume.is_dir() else resume.parent\n",
        file="train.py",
        catches="test_checkpoint_round_trip_and_exact_resume",
    ),
    # ------------------------------------------------------------------ sample.py
    # (sampling itself is week 6's: its bugs are in tests/bugs/w06.py)
    Bug(
        "perplexity drops the last partial window",
        "windows = [(s, min(T, n - s)) for s in range(0, n, T)]",
        "windows = [(s, T) for s in range(0, n - T + 1, T)]",
        file="sample.py",
        catches="test_heldout_perplexity",
    ),
]
