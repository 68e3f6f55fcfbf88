from . import Bug

LORA = "Optimisation"  # the LoRA paragraph of course/CONVENTIONS.md
LAYOUT = "Tensors and weights"

BUGS = [
    # ------------------------------------------------------------------ initialisation and shapes
    Bug(
        "B initialised randomly",
        "self.lora_B = nn.Parameter(torch.zeros(d_out, r, **factory))",
        "self.lora_B = nn.Parameter(torch.randn(d_out, r, **factory))",
        catches="test_initial_output_equals_base",
        keywords=("not initialised to zeros",),
        convention=LORA,
    ),
    Bug(
        "A and B initialisations swapped (A zeros, B Kaiming-uniform)",
        "        self.lora_A = nn.Parameter(torch.empty(r, d_in, **factory))  # (r, d_in)\n"
        "        self.lora_B = nn.Parameter(torch.zeros(d_out, r, **factory))  # (d_out, r): ΔW = 0 at the start\n"
        "        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))\n",
        "        self.lora_A = nn.Parameter(torch.zeros(r, d_in, **factory))\n"
        "        self.lora_B = nn.Parameter(torch.empty(d_out, r, **factory))\n"
        "        nn.init.kaiming_uniform_(self.lora_B, a=math.sqrt(5))\n",
        catches="test_initial_output_equals_base",
        keywords=("swapped",),
        convention=LORA,
    ),
    Bug(
        "A and B stored transposed ((d_in, r) and (r, d_out))",
        "        self.lora_A = nn.Parameter(torch.empty(r, d_in, **factory))  # (r, d_in)\n"
        "        self.lora_B = nn.Parameter(torch.zeros(d_out, r, **factory))  # (d_out, r): ΔW = 0 at the start\n",
        "        self.lora_A = nn.Parameter(torch.empty(d_in, r, **factory))\n"
        "        self.lora_B = nn.Parameter(torch.zeros(r, d_out, **factory))\n",
        catches="test_initial_output_equals_base",
        keywords=("transposed",),
        convention=LAYOUT,
    ),
    Bug(
        "forward adds base.bias by hand (breaks a base layer without bias)",
        "        out = self.base(x)  # (..., d_out), frozen path\n",
        "        out = x @ self.base.weight.T + self.base.bias\n",
        catches="test_initial_output_equals_base",
        keywords=("bias=False",),
    ),
    Bug(
        "LoRA branch with torch.mm (2-D inputs only)",
        "update = self.lora_dropout(x) @ self.lora_A.T @ self.lora_B.T  # (..., r) -> (..., d_out)",
        "update = torch.mm(torch.mm(self.lora_dropout(x), self.lora_A.T), self.lora_B.T)",
        catches="test_initial_output_equals_base",
        keywords=("leading dims",),
    ),
    Bug(
        "A initialised with zeros",
        "nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))",
        "nn.init.zeros_(self.lora_A)",
        catches="test_lora_A_kaiming_uniform",
        keywords=("all zeros",),
        convention=LORA,
    ),
    Bug(
        "A Kaiming-uniform with the default a=0",
        "nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))",
        "nn.init.kaiming_uniform_(self.lora_A)",
        catches="test_lora_A_kaiming_uniform",
        keywords=("default a=0",),
        convention=LORA,
    ),
    Bug(
        "A drawn from a standard normal",
        "nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))",
        "nn.init.normal_(self.lora_A)",
        catches="test_lora_A_kaiming_uniform",
        keywords=("standard normal",),
        convention=LORA,
    ),
    # ------------------------------------------------------------------ frozen base, trainable factors
    Bug(
        "base weights left trainable",
        "        for p in self.base.parameters():\n            p.requires_grad_(False)  # the pretrained weights stay as they are\n",
        "",
        catches="test_only_lora_factors_train",
        keywords=("still require grad",),
        convention=LORA,
    ),
    Bug(
        "only the base weight frozen, its bias left trainable",
        "        for p in self.base.parameters():\n            p.requires_grad_(False)  # the pretrained weights stay as they are\n",
        "        self.base.weight.requires_grad_(False)\n",
        catches="test_only_lora_factors_train",
        keywords=("base.bias",),
        convention=LORA,
    ),
    Bug(
        "lora_B registered as a buffer, not a parameter",
        "self.lora_B = nn.Parameter(torch.zeros(d_out, r, **factory))  # (d_out, r): ΔW = 0 at the start",
        'self.register_buffer("lora_B", torch.zeros(d_out, r, **factory))',
        catches="test_only_lora_factors_train",
        keywords=("not a parameter",),
    ),
    # ------------------------------------------------------------------ scaling
    Bug(
        "scaling r/alpha",
        "self.scaling = alpha / math.sqrt(r) if rslora else alpha / r",
        "self.scaling = alpha / math.sqrt(r) if rslora else r / alpha",
        catches="test_scaling_alpha_over_r",
        keywords=("r/alpha",),
        convention=LORA,
    ),
    Bug(
        "scaling alpha // r (integer division)",
        "self.scaling = alpha / math.sqrt(r) if rslora else alpha / r",
        "self.scaling = alpha / math.sqrt(r) if rslora else alpha // r",
        catches="test_scaling_alpha_over_r",
        keywords=("integer division",),
        convention=LORA,
    ),
    Bug(
        "rsLoRA flag ignored",
        "self.scaling = alpha / math.sqrt(r) if rslora else alpha / r",
        "self.scaling = alpha / r",
        catches="test_rslora_scaling",
        keywords=("ignored",),
        convention=LORA,
    ),
    Bug(
        "delta_weight transposed (Aᵀ Bᵀ, (d_in, d_out))",
        "return self.scaling * (self.lora_B @ self.lora_A)",
        "return self.scaling * (self.lora_A.T @ self.lora_B.T)",
        catches="test_delta_weight",
        keywords=("transposed",),
        convention=LAYOUT,
    ),
    # ------------------------------------------------------------------ dropout
    Bug(
        "dropout on the whole output",
        "update = self.lora_dropout(x) @ self.lora_A.T @ self.lora_B.T  # (..., r) -> (..., d_out)\n"
        "        return out + self.scaling * update",
        "update = x @ self.lora_A.T @ self.lora_B.T\n        return self.lora_dropout(out + self.scaling * update)",
        catches="test_dropout_only_on_lora_input",
        keywords=("whole output",),
        convention=LORA,
    ),
    Bug(
        "dropout on the input of both paths (the base layer sees it too)",
        "        out = self.base(x)  # (..., d_out), frozen path\n"
        "        if self.merged:\n"
        "            return out  # ΔW is already inside base.weight\n"
        "        update = self.lora_dropout(x) @ self.lora_A.T @ self.lora_B.T  # (..., r) -> (..., d_out)\n",
        "        x = self.lora_dropout(x)\n"
        "        out = self.base(x)\n"
        "        if self.merged:\n"
        "            return out\n"
        "        update = x @ self.lora_A.T @ self.lora_B.T\n",
        catches="test_dropout_only_on_lora_input",
        keywords=("base layer's input",),
        convention=LORA,
    ),
    Bug(
        "dropout on the rank-r hidden (after lora_A)",
        "update = self.lora_dropout(x) @ self.lora_A.T @ self.lora_B.T  # (..., r) -> (..., d_out)",
        "update = self.lora_dropout(x @ self.lora_A.T) @ self.lora_B.T",
        catches="test_dropout_only_on_lora_input",
        keywords=("after lora_A",),
        convention=LORA,
    ),
    Bug(
        "F.dropout without the training flag (active in eval)",
        "update = self.lora_dropout(x) @ self.lora_A.T @ self.lora_B.T  # (..., r) -> (..., d_out)",
        "update = torch.nn.functional.dropout(x, self.lora_dropout.p) @ self.lora_A.T @ self.lora_B.T",
        catches="test_dropout_only_on_lora_input",
        keywords=("active in eval mode",),
    ),
    Bug(
        "dropout never applied",
        "update = self.lora_dropout(x) @ self.lora_A.T @ self.lora_B.T  # (..., r) -> (..., d_out)",
        "update = x @ self.lora_A.T @ self.lora_B.T",
        catches="test_dropout_only_on_lora_input",
        keywords=("never applied",),
        convention=LORA,
    ),
    # ------------------------------------------------------------------ merge / unmerge
    Bug(
        "merge without the scaling",
        "self.base.weight += self.delta_weight()",
        "self.base.weight += self.lora_B @ self.lora_A",
        catches="test_merge_unmerge",
        keywords=("merge() added", "without the scaling"),
        convention=LORA,
    ),
    Bug(
        "merge is not idempotent",
        "        if not self.merged:\n            self.base.weight += self.delta_weight()\n            self.merged = True\n",
        "        self.base.weight += self.delta_weight()\n        self.merged = True\n",
        catches="test_merge_unmerge",
        keywords=("idempotent",),
    ),
    Bug(
        "forward adds the branch even when merged",
        "        if self.merged:\n            return out  # ΔW is already inside base.weight\n",
        "",
        catches="test_merge_unmerge",
        keywords=("counts twice",),
    ),
    Bug(
        "merge replaces base.weight with a new (trainable) Parameter",
        "            self.base.weight += self.delta_weight()\n",
        "            self.base.weight = nn.Parameter(self.base.weight + self.delta_weight())\n",
        catches="test_merge_unmerge",
        keywords=("requires grad again",),
        convention=LORA,
    ),
    Bug(
        "unmerge without the scaling",
        "self.base.weight -= self.delta_weight()",
        "self.base.weight -= self.lora_B @ self.lora_A",
        catches="test_merge_unmerge",
        keywords=("unmerge() subtracted", "without the scaling"),
        convention=LORA,
    ),
    Bug(
        "unmerge leaves the layer marked merged",
        "            self.base.weight -= self.delta_weight()\n            self.merged = False\n",
        "            self.base.weight -= self.delta_weight()\n",
        catches="test_merge_unmerge",
        keywords=("still marked merged",),
    ),
    Bug(
        "unmerge subtracts even when not merged",
        "        if self.merged:\n            self.base.weight -= self.delta_weight()\n            self.merged = False\n",
        "        self.base.weight -= self.delta_weight()\n        self.merged = False\n",
        catches="test_merge_unmerge",
        keywords=("although the layer was not merged",),
    ),
    # ------------------------------------------------------------------ apply_lora
    Bug(
        "apply_lora does not freeze the rest of the model",
        "    for p in model.parameters():\n        p.requires_grad_(False)\n    # Collect first",
        "    # Collect first",
        catches="test_apply_lora_freezes_everything_else",
        keywords=("non-LoRA parameters",),
        convention=LORA,
    ),
    Bug(
        "apply_lora wraps modules that are not nn.Linear",
        'if name.rsplit(".", 1)[-1] in targets and isinstance(module, nn.Linear)',
        'if name.rsplit(".", 1)[-1] in targets',
        catches="test_apply_lora_wraps_exactly_the_targets",
        keywords=("only nn.Linear",),
    ),
    Bug(
        "apply_lora compares targets with the full dotted name",
        'if name.rsplit(".", 1)[-1] in targets and isinstance(module, nn.Linear)',
        "if name in targets and isinstance(module, nn.Linear)",
        catches="test_apply_lora_wraps_exactly_the_targets",
        keywords=("last part",),
    ),
    Bug(
        "apply_lora forgets to pass alpha and dropout on",
        "setattr(parent, child, LoRALinear(linear, r=r, alpha=alpha, dropout=dropout))",
        "setattr(parent, child, LoRALinear(linear, r=r))",
        catches="test_apply_lora_wraps_exactly_the_targets",
        keywords=("alpha was not passed on",),
    ),
    Bug(
        "apply_lora matches targets as substrings",
        'if name.rsplit(".", 1)[-1] in targets and isinstance(module, nn.Linear)',
        "if any(t in name for t in targets) and isinstance(module, nn.Linear)",
        catches="test_apply_lora_rejects_unknown_targets",
        keywords=("substring",),
    ),
    Bug(
        "apply_lora silently wraps nothing for an unknown target",
        "    if not found:\n"
        '        raise ValueError(f"no nn.Linear named any of {sorted(targets)} in {type(model).__name__}")\n',
        "",
        catches="test_apply_lora_rejects_unknown_targets",
        keywords=("instead of raising ValueError",),
    ),
    # ------------------------------------------------------------------ counting and adapters
    Bug(
        "count_parameters ignores trainable_only",
        "return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)",
        "return sum(p.numel() for p in model.parameters())",
        catches="test_count_parameters",
        keywords=("trainable_only=True was ignored",),
    ),
    Bug(
        "count_parameters walks the modules and counts a shared tensor twice",
        "return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)",
        "return sum(\n"
        "        p.numel()\n"
        "        for m in model.modules()\n"
        "        for p in m.parameters(recurse=False)\n"
        "        if p.requires_grad or not trainable_only\n"
        "    )",
        catches="test_count_parameters_shared_once",
        keywords=("counted twice",),
    ),
    Bug(
        "lora_state_dict returns the whole model",
        "    out = {}\n    for name, module in model.named_modules():\n        if isinstance(module, LoRALinear):",
        "    out = dict(model.state_dict())\n    for name, module in model.named_modules():\n        if isinstance(module, LoRALinear):",
        catches="test_lora_state_dict_holds_only_lora",
        keywords=("non-LoRA entries",),
    ),
    Bug(
        "lora_state_dict keys always get a dot (a top-level LoRALinear gives '.lora_A')",
        'prefix = f"{name}." if name else ""',
        'prefix = f"{name}."',
        catches="test_lora_state_dict_holds_only_lora",
        keywords=("leading dot",),
    ),
    Bug(
        "LoRA branch detached from the graph",
        "update = self.lora_dropout(x) @ self.lora_A.T @ self.lora_B.T  # (..., r) -> (..., d_out)",
        "update = (self.lora_dropout(x) @ self.lora_A.T @ self.lora_B.T).detach()",
        catches="test_base_weights_bit_identical_after_training",
        keywords=("without detach",),
    ),
]
