from . import Bug

BUGS = [
    Bug(
        "warmup off by one step",
        "return max_lr * step / warmup_steps",
        "return max_lr * (step + 1) / warmup_steps",
        catches="test_lr_schedule_closed_form",
    ),
    Bug(
        "cosine never reaches min_lr",
        "progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)  # in [0, 1)",
        "progress = (step - warmup_steps) / total_steps",
        catches="test_lr_schedule_closed_form",
    ),
    Bug(
        "cosine decays to zero instead of min_lr",
        "return min_lr + cosine * (max_lr - min_lr)",
        "return cosine * max_lr",
        catches="test_lr_schedule_closed_form",
    ),
    Bug(
        "clipping each parameter separately",
        "    for g in grads:\n        g.mul_(coef.to(g.dtype))\n",
        "    for g in grads:\n        g.mul_(torch.clamp(max_norm / (g.norm() + 1e-6), max=1.0))\n",
        catches="test_clip_matches_torch",
    ),
    Bug(
        "returning the post-clip norm",
        "        g.mul_(coef.to(g.dtype))\n    return total",
        "        g.mul_(coef.to(g.dtype))\n    return total * coef",
        catches="test_clip_returns_pre_clip_norm_and_never_scales_up",
    ),
    Bug(
        "clipping scales small gradients up",
        "coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)  # never scale gradients *up*",
        "coef = max_norm / (total + 1e-6)",
        catches="test_clip_returns_pre_clip_norm_and_never_scales_up",
    ),
    Bug(
        "label smoothing with eps/(C-1) over the other classes",
        "smooth = -log_probs.mean(dim=-1)  # (N,)  (1/C) Σ_c -log p_c",
        "smooth = (-log_probs.sum(dim=-1) - nll) / (C - 1)",
        catches="test_cross_entropy_label_smoothing",
    ),
    Bug(
        "ignored targets counted in the mean",
        "return (loss * keep).sum() / keep.sum()",
        "return (loss * keep).sum() / keep.numel()",
        catches="test_cross_entropy_ignore_index",
    ),
    Bug(
        "log-softmax without subtracting the max",
        "shifted = logits - logits.amax(dim=-1, keepdim=True)  # largest logit becomes 0: exp cannot overflow",
        "shifted = logits",
        catches="test_cross_entropy_stable_at_1000x",
    ),
    Bug(
        "Adam with L2 regularisation instead of decoupled decay",
        "                p.mul_(1 - lr * wd)\n                m.lerp_(g, 1 - beta1)",
        "                g = g + wd * p\n                m.lerp_(g, 1 - beta1)",
        catches="test_adamw_trajectory_defaults",
    ),
    Bug(
        "Adam without bias correction",
        "                step_size = lr / (1 - beta1**t)\n                denom = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)",
        "                step_size = lr\n                denom = v.sqrt().add_(eps)",
        catches="test_adamw_trajectory_defaults",
    ),
    Bug(
        "AdamW ignores the group's lr (uses the constructor's)",
        '            lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]',
        '            lr, wd, eps = self.defaults["lr"], group["weight_decay"], group["eps"]',
        catches="test_adamw_groups_and_schedule",
    ),
    Bug(
        "weight decay on biases and norms",
        "    decay = [p for p in params if p.dim() >= 2]\n    no_decay = [p for p in params if p.dim() < 2]",
        "    decay = params\n    no_decay = []",
        catches="test_param_groups_decay_rule",
    ),
    Bug(
        "frozen parameters handed to the optimizer",
        "params = [p for p in model.parameters() if p.requires_grad]  # parameters() deduplicates tied weights",
        "params = list(model.parameters())",
        catches="test_param_groups_decay_rule",
    ),
    Bug(
        "accumulation without dividing the loss",
        "(loss / len(micro_batches)).backward()",
        "loss.backward()",
        catches="test_accumulation_equals_one_big_batch",
    ),
    Bug(
        "gradients never reset between steps",
        "    optimizer.step()\n    optimizer.zero_grad(set_to_none=True)\n",
        "    optimizer.step()\n",
        catches="test_accumulation_equals_one_big_batch",
    ),
    Bug(
        "clipping after the optimizer step",
        "    grad_norm = clip_grad_norm(params, max_norm if max_norm is not None else math.inf)\n"
        "    if lr is not None:\n"
        "        for group in optimizer.param_groups:\n"
        '            group["lr"] = lr\n'
        "    optimizer.step()\n",
        "    if lr is not None:\n"
        "        for group in optimizer.param_groups:\n"
        '            group["lr"] = lr\n'
        "    optimizer.step()\n"
        "    grad_norm = clip_grad_norm(params, max_norm if max_norm is not None else math.inf)\n",
        catches="test_train_step_clips_and_sets_lr",
    ),
    Bug(
        "autocast never switched on",
        "            torch.autocast(device_type=inputs.device.type, dtype=amp_dtype)\n            if amp_dtype is not None",
        "            torch.autocast(device_type=inputs.device.type, dtype=amp_dtype)\n            if False",
        catches="test_bf16_autocast_step_on_cpu",
    ),
    Bug(
        "set_seed forgets NumPy",
        "    np.random.seed(seed)\n    torch.manual_seed(seed)  # also seeds every CUDA device",
        "    torch.manual_seed(seed)  # also seeds every CUDA device",
        catches="test_set_seed_reproducible",
    ),
    Bug(
        "a checkpoint without optimizer state",
        '        "optimizer": optimizer.state_dict() if optimizer is not None else None,',
        '        "optimizer": None,',
        catches="test_resume_reproduces_uninterrupted_run",
    ),
    Bug(
        "RNG state not restored on load",
        '    torch.set_rng_state(rng["torch"])\n',
        "",
        catches="test_resume_reproduces_uninterrupted_run",
    ),
    Bug(
        "NumPy RNG state stored as an ndarray",
        '"numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(_py, np_state[2:])),',
        '"numpy": np_state,',
        catches="test_checkpoint_loads_with_weights_only",
    ),
]
