from . import Bug

BUGS = [
    Bug(
        "B initialised randomly",
        "self.lora_B = nn.Parameter(torch.zeros(d_out, r, **factory))",
        "self.lora_B = nn.Parameter(torch.randn(d_out, r, **factory))",
        catches="test_initial_output_equals_base",
    ),
    Bug(
        "A initialised with zeros",
        "nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))",
        "nn.init.zeros_(self.lora_A)",
        catches="test_lora_A_kaiming_uniform",
    ),
    Bug(
        "scaling r/alpha",
        "self.scaling = alpha / math.sqrt(r) if rslora else alpha / r",
        "self.scaling = alpha / math.sqrt(r) if rslora else r / alpha",
        catches="test_scaling_alpha_over_r",
    ),
    Bug(
        "rsLoRA flag ignored",
        "self.scaling = alpha / math.sqrt(r) if rslora else alpha / r",
        "self.scaling = alpha / r",
        catches="test_rslora_scaling",
    ),
    Bug(
        "base weights left trainable",
        "        for p in self.base.parameters():\n            p.requires_grad_(False)  # the pretrained weights stay as they are\n",
        "",
        catches="test_only_lora_factors_train",
    ),
    Bug(
        "apply_lora does not freeze the rest of the model",
        "    for p in model.parameters():\n        p.requires_grad_(False)\n    # Collect first",
        "    # Collect first",
        catches="test_apply_lora_freezes_everything_else",
    ),
    Bug(
        "lora_B registered as a buffer, not a parameter",
        "self.lora_B = nn.Parameter(torch.zeros(d_out, r, **factory))  # (d_out, r): ΔW = 0 at the start",
        'self.register_buffer("lora_B", torch.zeros(d_out, r, **factory))',
        catches="test_only_lora_factors_train",
    ),
    Bug(
        "dropout on the whole output",
        "update = self.lora_dropout(x) @ self.lora_A.T @ self.lora_B.T  # (..., r) -> (..., d_out)\n"
        "        return out + self.scaling * update",
        "update = x @ self.lora_A.T @ self.lora_B.T\n        return self.lora_dropout(out + self.scaling * update)",
        catches="test_dropout_only_on_lora_input",
    ),
    Bug(
        "merge without the scaling",
        "self.base.weight += self.delta_weight()",
        "self.base.weight += self.lora_B @ self.lora_A",
        catches="test_merge_unmerge",
    ),
    Bug(
        "merge is not idempotent",
        "        if not self.merged:\n            self.base.weight += self.delta_weight()\n            self.merged = True\n",
        "        self.base.weight += self.delta_weight()\n        self.merged = True\n",
        catches="test_merge_unmerge",
    ),
    Bug(
        "forward adds the branch even when merged",
        "        if self.merged:\n            return out  # ΔW is already inside base.weight\n",
        "",
        catches="test_merge_unmerge",
    ),
    Bug(
        "apply_lora wraps modules that are not nn.Linear",
        'if name.rsplit(".", 1)[-1] in targets and isinstance(module, nn.Linear)',
        'if name.rsplit(".", 1)[-1] in targets',
        catches="test_apply_lora_wraps_exactly_the_targets",
    ),
    Bug(
        "lora_state_dict returns the whole model",
        "    out = {}\n    for name, module in model.named_modules():\n        if isinstance(module, LoRALinear):",
        "    out = dict(model.state_dict())\n    for name, module in model.named_modules():\n        if isinstance(module, LoRALinear):",
        catches="test_lora_state_dict_holds_only_lora",
    ),
    Bug(
        "count_parameters ignores trainable_only",
        "return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)",
        "return sum(p.numel() for p in model.parameters())",
        catches="test_count_parameters",
    ),
    Bug(
        "LoRA branch detached from the graph",
        "update = self.lora_dropout(x) @ self.lora_A.T @ self.lora_B.T  # (..., r) -> (..., d_out)",
        "update = (self.lora_dropout(x) @ self.lora_A.T @ self.lora_B.T).detach()",
        catches="test_base_weights_bit_identical_after_training",
    ),
]
