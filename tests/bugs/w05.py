from . import Bug

BUGS = [
    Bug(
        "special tokens can be selected for masking",
        "selected = (torch.rand(shape, generator=generator) < mlm_prob) & ~is_special  # (B, T)",
        "selected = torch.rand(shape, generator=generator) < mlm_prob",
        catches="test_special_tokens_never_selected",
    ),
    Bug(
        "every selected token replaced by [MASK]",
        "to_mask = selected & (action < 0.8)",
        "to_mask = selected",
        catches="test_80_10_10",
    ),
    Bug(
        "no random replacements (80% [MASK], 20% unchanged)",
        "    inputs[to_random] = random_ids[to_random]\n",
        "",
        catches="test_80_10_10",
    ),
    Bug(
        "masking probability hard-coded to 0.15",
        "selected = (torch.rand(shape, generator=generator) < mlm_prob) & ~is_special  # (B, T)",
        "selected = (torch.rand(shape, generator=generator) < 0.15) & ~is_special",
        catches="test_selection_rate",
    ),
    Bug(
        "labels only where [MASK] was put",
        "    return inputs, labels\n",
        "    return inputs, input_ids.masked_fill(~to_mask, IGNORE_INDEX)\n",
        catches="test_selection_rate",
    ),
    Bug(
        "random replacements drawn without the generator",
        "random_ids = torch.randint(vocab_size, shape, generator=generator, dtype=input_ids.dtype)",
        "random_ids = torch.randint(vocab_size, shape, dtype=input_ids.dtype)",
        catches="test_reproducible_and_not_in_place",
    ),
    Bug(
        "random replacements drawn from the batch's own tokens",
        "random_ids = torch.randint(vocab_size, shape, generator=generator, dtype=input_ids.dtype)",
        "random_ids = input_ids.flatten()[torch.randint(input_ids.numel(), shape, generator=generator)]",
        catches="test_random_tokens_cover_the_vocabulary",
    ),
    Bug(
        "masks the caller's batch in place",
        "inputs = input_ids.clone()  # a copy: the caller's batch must stay intact",
        "inputs = input_ids",
        catches="test_reproducible_and_not_in_place",
    ),
    Bug(
        "loss over every position instead of the selected ones",
        "return F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE_INDEX)",
        "return F.cross_entropy(flat_logits, flat_labels.clamp(min=0))",
        catches="test_mlm_loss_only_selected_positions",
    ),
    Bug(
        "loss summed over selected positions, divided by every position",
        "return F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE_INDEX)",
        "return F.cross_entropy(flat_logits, flat_labels, reduction='sum') / flat_labels.numel()",
        catches="test_mlm_loss_only_selected_positions",
    ),
    Bug(
        "NaN loss when nothing is selected",
        "    if not bool((flat_labels != IGNORE_INDEX).any()):\n        return logits.sum() * 0.0  # nothing selected in this batch: no signal, but no NaN\n",
        "",
        catches="test_mlm_loss_with_nothing_selected",
    ),
    Bug(
        "a causal mask in the encoder",
        "activation=activation, causal=False, dropout=dropout",
        "activation=activation, causal=True, dropout=dropout",
        catches="test_mlm_learns_from_both_sides",
    ),
    Bug(
        "padding mask ignored",
        "            x = block(x, mask)  # (B, T, d)",
        "            x = block(x)",
        catches="test_padding_does_not_leak",
    ),
    Bug(
        "padding mask applied to queries instead of keys",
        "attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T)",
        "attention_mask.bool()[:, None, :, None]",
        catches="test_padding_does_not_leak",
    ),
    Bug(
        "no position embeddings",
        "x = self.drop(self.tok_emb(input_ids) + self.pos_emb(positions))  # (B, T, d)",
        "x = self.drop(self.tok_emb(input_ids))",
        catches="test_encoder_matches_torch_encoder_layers",
    ),
    Bug(
        "no final LayerNorm",
        "        return self.ln_f(x)\n        ### END SOLUTION",
        "        return x\n        ### END SOLUTION",
        catches="test_encoder_matches_torch_encoder_layers",
    ),
    Bug(
        "MLM head not tied to the embedding",
        "        self.lm_head.weight = self.encoder.tok_emb.weight\n",
        "",
        catches="test_mlm_head_is_tied",
    ),
    Bug(
        "MLM head without its transform",
        "return self.lm_head(self.transform(hidden))  # (B, T, V)",
        "return self.lm_head(hidden)",
        catches="test_masked_lm_logits",
    ),
    Bug(
        "pooling the last token",
        "return hidden[:, 0]  # (B, d)",
        "return hidden[:, -1]",
        catches="test_cls_pool",
    ),
]
