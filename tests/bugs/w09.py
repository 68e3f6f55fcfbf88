from . import Bug

BLOCKS = "Blocks"
DATA = "Objectives and data"
MASKS = "Masks and attention"
OPTIM = "Optimisation"
POSITIONS = "Positions"

BUGS = [
    # ------------------------------------------------------------------ model.py
    Bug(
        "attention not causal",
        "y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)",
        "y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)",
        file="model.py",
        catches="test_causality",
        keywords=("future",),
        convention=MASKS,
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
        keywords=("post-LN",),
        convention=BLOCKS,
    ),
    Bug(
        "no weight tying",
        "self.lm_head.weight = self.tok_emb.weight  # weight tying: one (V, d) matrix, two uses",
        "pass",
        file="model.py",
        catches="test_weight_tying_and_parameter_count",
        keywords=("not tied",),
        convention=BLOCKS,
    ),
    Bug(
        "tie_weights=False still ties the head",
        "        if config.tie_weights:\n            self.lm_head.weight = self.tok_emb.weight",
        "        self.lm_head.weight = self.tok_emb.weight",
        file="model.py",
        catches="test_weight_tying_and_parameter_count",
        keywords=("tie_weights=False", "still tied"),
    ),
    Bug(
        "heads merged without transposing back",
        "y = y.transpose(1, 2).contiguous().view(B, T, C)",
        "y = y.contiguous().view(B, T, C)",
        file="model.py",
        catches="test_forward_matches_oracle",
        keywords=("without transposing",),
    ),
    Bug(
        "learned positions start at 1",
        "x = x + self.pos_emb(torch.arange(T, device=idx.device))",
        "x = x + self.pos_emb(torch.arange(1, T + 1, device=idx.device))",
        file="model.py",
        catches="test_forward_matches_oracle",
        keywords=("start at 1",),
        convention=POSITIONS,
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
        keywords=("half-split",),
        convention=POSITIONS,
    ),
    Bug(
        "RoPE positions start at 1",
        "angles = torch.arange(T, dtype=torch.float32)[:, None] * inv_freq[None, :]",
        "angles = torch.arange(1, T + 1, dtype=torch.float32)[:, None] * inv_freq[None, :]",
        file="model.py",
        catches="test_rope_convention",
        keywords=("start at 1", "identity"),
        convention=POSITIONS,
    ),
    Bug(
        "attention-map mask on the wrong side",
        "causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()",
        "causal = torch.ones(T, T, dtype=torch.bool, device=x.device).triu()",
        file="model.py",
        catches="test_attention_maps",
        keywords=("wrong side",),
        convention=MASKS,
    ),
    Bug(
        "attention-map softmax over the queries",
        'weights = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)',
        'weights = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-2)',
        file="model.py",
        catches="test_attention_maps",
        keywords=("over the queries",),
        convention=MASKS,
    ),
    # ------------------------------------------------------------------ data.py
    Bug(
        "split rounds 0.9·N to the nearest integer",
        "n = int(train_frac * len(data))",
        "n = round(train_frac * len(data))",
        file="data.py",
        catches="test_train_val_split",
        keywords=("rounded down", "nearest"),
        convention=DATA,
    ),
    Bug(
        "split ignores train_frac",
        "n = int(train_frac * len(data))",
        "n = int(0.9 * len(data))",
        file="data.py",
        catches="test_train_val_split",
        keywords=("ignores train_frac",),
        convention=DATA,
    ),
    Bug(
        "targets not shifted",
        "y = data[starts[:, None] + offsets + 1]",
        "y = data[starts[:, None] + offsets]",
        file="data.py",
        catches="test_get_batch_windows_and_shift",
        keywords=("not shifted",),
        convention=DATA,
    ),
    Bug(
        "last window never drawn",
        "starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)",
        "starts = torch.randint(len(data) - block_size - 1, (batch_size,), generator=generator)",
        file="data.py",
        catches="test_get_batch_covers_every_window",
        keywords=("last valid window", "off-by-one"),
        convention=DATA,
    ),
    Bug(
        "a start past the last valid one",
        "starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)",
        "starts = torch.randint(len(data) - block_size + 1, (batch_size,), generator=generator)",
        file="data.py",
        catches="test_get_batch_covers_every_window",
        keywords=("past the end",),
        convention=DATA,
    ),
    Bug(
        "first window never drawn",
        "starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)",
        "starts = torch.randint(1, len(data) - block_size, (batch_size,), generator=generator)",
        file="data.py",
        catches="test_get_batch_covers_every_window",
        keywords=("first window", "start 0"),
        convention=DATA,
    ),
    Bug(
        # The same off-by-one as above, met where it hurts most: a text of one window.
        "start range excludes the only window",
        "starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)",
        "starts = torch.randint(0, len(data) - block_size - 1, (batch_size,), generator=generator)",
        file="data.py",
        catches="test_get_batch_edges",
        keywords=("exactly one window",),
        convention=DATA,
    ),
    Bug(
        "get_batch ignores the generator",
        "starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)",
        "starts = torch.randint(len(data) - block_size, (batch_size,))",
        file="data.py",
        catches="test_get_batch_is_seeded",
        keywords=("global RNG",),
        convention=DATA,
    ),
    # ------------------------------------------------------------------ tokenizers.py
    Bug(
        "character ids in order of first appearance",
        "self.chars = sorted(set(chars))",
        "self.chars = list(dict.fromkeys(chars))",
        file="tokenizers.py",
        catches="test_char_tokenizer_sorted_ids",
        keywords=("first appear", "sorted order"),
        convention=DATA,
    ),
    Bug(
        "unknown character mapped to id 0",
        "            return [self.stoi[c] for c in text]",
        "            return [self.stoi.get(c, 0) for c in text]",
        file="tokenizers.py",
        catches="test_char_tokenizer_unknown_character",
        keywords=("instead of raising",),
        convention=DATA,
    ),
    Bug(
        "unknown character raises KeyError",
        "        try:\n"
        "            return [self.stoi[c] for c in text]\n"
        "        except KeyError as exc:\n"
        "            position = text.index(exc.args[0])\n"
        "            raise ValueError(\n"
        '                f"character {exc.args[0]!r} (position {position}) is not in the tokenizer\'s "\n'
        '                f"vocabulary of {self.vocab_size} characters"\n'
        "            ) from None\n",
        "        return [self.stoi[c] for c in text]\n",
        file="tokenizers.py",
        catches="test_char_tokenizer_unknown_character",
        keywords=("KeyError", "not ValueError"),
        convention=DATA,
    ),
    Bug(
        "BPE ties broken by dictionary order",
        "pair = min(stats, key=lambda p: (-stats[p], p))",
        "pair = max(stats, key=stats.get)",
        file="tokenizers.py",
        catches="test_bpe_merges_follow_the_rule",
        keywords=("smallest pair",),
        convention=DATA,
    ),
    Bug(
        "BPE merge consumes one id instead of two",
        "i += 2  # both ids are consumed",
        "i += 1",
        file="tokenizers.py",
        catches="test_bpe_merges_follow_the_rule",
        keywords=("overlap",),
    ),
    Bug(
        "BPE pair counts ignore how often a chunk occurs",
        "            stats[pair] += n\n",
        "            stats[pair] += 1\n",
        file="tokenizers.py",
        catches="test_bpe_merges_follow_the_rule",
        keywords=("distinct chunk",),
        convention=DATA,
    ),
    Bug(
        "BPE learns one merge too many",
        "for new_id in range(256, vocab_size):",
        "for new_id in range(256, vocab_size + 1):",
        file="tokenizers.py",
        catches="test_bpe_merges_follow_the_rule",
        keywords=("one merge too many",),
        convention=DATA,
    ),
    Bug(
        "BPE training does not stop when no pair is left",
        "            if not stats:\n                break  # every chunk is a single token already\n",
        "",
        file="tokenizers.py",
        catches="test_bpe_train_edges",
        keywords=("stop early",),
        convention=DATA,
    ),
    Bug(
        "BPE encode merges the leftmost pair first",
        '            pair = min(zip(ids, ids[1:]), key=lambda p: self.merges.get(p, float("inf")))\n'
        "            if pair not in self.merges:\n",
        "            pair = next((p for p in zip(ids, ids[1:]) if p in self.merges), None)\n"
        "            if pair is None:\n",
        file="tokenizers.py",
        catches="test_bpe_encode_applies_merges_in_order_learnt",
        keywords=("leftmost", "order learnt"),
        convention=DATA,
    ),
    Bug(
        "BPE encode applies the latest merge first",
        'pair = min(zip(ids, ids[1:]), key=lambda p: self.merges.get(p, float("inf")))',
        "pair = max(zip(ids, ids[1:]), key=lambda p: self.merges.get(p, -1))",
        file="tokenizers.py",
        catches="test_bpe_encode_applies_merges_in_order_learnt",
        keywords=("learnt last", "order learnt"),
        convention=DATA,
    ),
    Bug(
        "BPE encode fails on a one-byte chunk",
        "        while len(ids) >= 2:\n",
        "        while True:\n",
        file="tokenizers.py",
        catches="test_bpe_encode_short_inputs",
        keywords=("single byte", "fewer than two"),
    ),
    Bug(
        "BPE decodes strictly",
        'return data.decode("utf-8", errors="replace")',
        'return data.decode("utf-8")',
        file="tokenizers.py",
        catches="test_bpe_decode_is_lenient",
        keywords=("strictly", "errors='replace'"),
        convention=DATA,
    ),
    Bug(
        "BPE decode drops invalid bytes",
        'return data.decode("utf-8", errors="replace")',
        'return data.decode("utf-8", errors="ignore")',
        file="tokenizers.py",
        catches="test_bpe_decode_is_lenient",
        keywords=("dropped",),
        convention=DATA,
    ),
    Bug(
        "BPE decodes each token on its own",
        '            data = b"".join(self.vocab[i] for i in _ids(ids))\n',
        "            parts = [self.vocab[i] for i in _ids(ids)]\n"
        '            data = b"".join(p.decode("utf-8", errors="replace").encode() for p in parts)\n',
        file="tokenizers.py",
        catches="test_bpe_decode_is_lenient",
        keywords=("on its own",),
        convention=DATA,
    ),
    # ------------------------------------------------------------------ train.py
    Bug(
        "gradients never cleared",
        "    optimizer.zero_grad(set_to_none=True)  # gradients accumulate otherwise\n",
        "",
        file="train.py",
        catches="test_train_step_matches_adamw",
        keywords=("never cleared",),
    ),
    Bug(
        "no gradient clipping",
        "grad_norm = clip_grad_norm(model.parameters(), grad_clip if grad_clip > 0 else math.inf)",
        "grad_norm = clip_grad_norm(model.parameters(), math.inf)",
        file="train.py",
        catches="test_train_step_matches_adamw",
        keywords=("not clipped",),
        convention=OPTIM,
    ),
    Bug(
        "clipping after optimizer.step()",
        "    grad_norm = clip_grad_norm(model.parameters(), grad_clip if grad_clip > 0 else math.inf)\n    optimizer.step()\n",
        "    optimizer.step()\n    grad_norm = clip_grad_norm(model.parameters(), grad_clip if grad_clip > 0 else math.inf)\n",
        file="train.py",
        catches="test_train_step_matches_adamw",
        keywords=("not clipped", "after the step"),
        convention=OPTIM,
    ),
    Bug(
        "grad_clip 0 clips to zero",
        "clip_grad_norm(model.parameters(), grad_clip if grad_clip > 0 else math.inf)",
        "clip_grad_norm(model.parameters(), grad_clip)",
        file="train.py",
        catches="test_train_step_matches_adamw",
        keywords=("grad_clip = 0", "no clipping"),
    ),
    Bug(
        "gradient norm measured after clipping",
        "    grad_norm = clip_grad_norm(model.parameters(), grad_clip if grad_clip > 0 else math.inf)\n",
        "    clip_grad_norm(model.parameters(), grad_clip if grad_clip > 0 else math.inf)\n"
        "    grad_norm = clip_grad_norm(model.parameters(), math.inf)  # measured again, after clipping\n",
        file="train.py",
        catches="test_train_step_matches_adamw",
        keywords=("after clipping",),
        convention=OPTIM,
    ),
    Bug(
        "learning rate never set",
        '    for group in optimizer.param_groups:\n        group["lr"] = lr\n',
        "",
        file="train.py",
        catches="test_train_step_matches_adamw",
        keywords=("learning rate", "param groups"),
    ),
    Bug(
        "evaluation with dropout on",
        "    model.eval()\n    out = {}",
        "    out = {}",
        file="train.py",
        catches="test_estimate_loss",
        keywords=("training mode", "dropout"),
    ),
    Bug(
        "estimate_loss leaves the model in eval mode",
        "    model.train()\n    return out\n",
        "    return out\n",
        file="train.py",
        catches="test_estimate_loss",
        keywords=("left in eval mode",),
    ),
    Bug(
        "one evaluation generator for both splits",
        "    for name, data in splits.items():\n        generator = torch.Generator().manual_seed(seed)\n",
        "    generator = torch.Generator().manual_seed(seed)\n    for name, data in splits.items():\n",
        file="train.py",
        catches="test_estimate_loss",
        keywords=("continued the generator",),
    ),
    Bug(
        "estimate_loss sums the batches' losses",
        "out[name] = total / eval_iters",
        "out[name] = total",
        file="train.py",
        catches="test_estimate_loss",
        keywords=("summed",),
    ),
    Bug(
        "schedule one step ahead",
        "        lr = lr_schedule(\n            step,\n",
        "        lr = lr_schedule(\n            step + 1,\n",
        file="train.py",
        catches="test_run_directory_holds_what_the_notes_promise",
        keywords=("one step ahead",),
        convention=OPTIM,
    ),
    Bug(
        "lr_decay_steps ignored",
        "decay_steps = config.lr_decay_steps or config.max_steps",
        "decay_steps = config.max_steps",
        file="train.py",
        catches="test_run_directory_holds_what_the_notes_promise",
        keywords=("ignoring lr_decay_steps",),
        convention=OPTIM,
    ),
    Bug(
        "resume forgets the batch generator",
        '        batch_gen.set_state(checkpoint["rng"]["batches"])\n',
        "",
        file="train.py",
        catches="test_checkpoint_round_trip_and_exact_resume",
        keywords=("batch generator",),
        convention=OPTIM,
    ),
    Bug(
        "resume forgets the dropout RNG",
        "        torch.set_rng_state(rngs[ddp.rank] if ddp.rank < len(rngs) else rngs[0])\n",
        "",
        file="train.py",
        catches="test_checkpoint_round_trip_and_exact_resume",
        keywords=("dropout", "RNG state"),
        convention=OPTIM,
    ),
    Bug(
        "resume forgets the optimizer state",
        '        optimizer.load_state_dict(checkpoint["optimizer"])\n',
        "",
        file="train.py",
        catches="test_checkpoint_round_trip_and_exact_resume",
        keywords=("optimizer state",),
        convention=OPTIM,
    ),
    Bug(
        # The run goes on in the resumed directory but starts over from step 0 with fresh
        # weights: with the first run's seed it would end exactly where a real resume does.
        "train ignores resume (starts fresh)",
        "        checkpoint = load_checkpoint(resume)\n"
        "        run_dir = resume if resume.is_dir() else resume.parent\n"
        '        saved = checkpoint["config"]\n'
        "        defaults = TrainConfig()  # for settings a checkpoint from an older version does not hold\n"
        "        changed = [\n"
        "            k\n"
        '            for k in MODEL_FIELDS + ("tokenizer", "data")\n'
        "            if saved.get(k, getattr(defaults, k)) != getattr(config, k)\n"
        "        ]\n"
        "        if changed:\n"
        "            raise ValueError(f\"cannot resume {run_dir} with a different {', '.join(changed)}\")\n",
        "        run_dir = resume if resume.is_dir() else resume.parent\n",
        file="train.py",
        catches="test_checkpoint_round_trip_and_exact_resume",
        keywords=("from scratch",),
        convention=OPTIM,
    ),
    # ------------------------------------------------------------------ sample.py
    # (sampling itself is week 6's: its bugs are in tests/bugs/w06.py)
    Bug(
        "perplexity drops the last partial window",
        "windows = [(s, min(T, n - s)) for s in range(0, n, T)]",
        "windows = [(s, T) for s in range(0, n - T + 1, T)]",
        file="sample.py",
        catches="test_heldout_perplexity",
        keywords=("shorter window",),
        convention=DATA,
    ),
    Bug(
        "perplexity averages window means",
        '            nll = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="sum")\n'
        "            total += nll.item()\n",
        '            nll = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="mean")\n'
        "            total += nll.item() * len(starts) * n / len(windows)  # the mean of window means\n",
        file="sample.py",
        catches="test_heldout_perplexity",
        keywords=("per window",),
        convention=DATA,
    ),
]
