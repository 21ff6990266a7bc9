"""Common bugs in training: get_batch, gradient clipping, AdamW, the learning-rate schedule,
checkpoints and the training step.

Each is one realistic mistake in one component, written as exact edits of the reference,
with the rubric item that must lose points for it and a one-line description in a student's
words (the diagnosis quotes it). Several only show on some inputs: a step counter shared by
all parameters only when some parameter misses its gradient on a step (or there are several
groups), group hyperparameters ignored only when a group's lr differs from the default or
changes between steps, clipping that always scales only when the norm is below the limit,
the unreachable last start of get_batch only on a dataset short enough to enumerate starts.
"""

from lmgrade.catalogue.variants import bug

STARTS = "starts = torch.randint(0, len(dataset) - context_length, (batch_size,)).numpy()"
BATCH_RETURN = "return windows[:, :-1], windows[:, 1:]"
CLIP_NORM = "norm = torch.sqrt(sum(g.detach().pow(2).sum() for g in grads))"
CLIP_SCALE = "scale = max_l2_norm / (norm + 1e-6)"
HYPERPARAMETERS = 'lr, (beta1, beta2), eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]'
MOMENTS = ("                m.mul_(beta1).add_(p.grad, alpha=1 - beta1)\n"
           "                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)\n")
DECAY = "p.mul_(1 - lr * weight_decay)"
DENOMINATOR = "denominator = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)"
UPDATE = "p.addcdiv_(m, denominator, value=-lr / (1 - beta1**t))"
WARMUP = "return it / warmup_iters * max_learning_rate"
PROGRESS = "progress = (it - warmup_iters) / (cosine_cycle_iters - warmup_iters)"
COSINE = "return min_learning_rate + 0.5 * (1 + math.cos(math.pi * progress)) * (max_learning_rate - min_learning_rate)"
SAVE = 'torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "iteration": iteration}, out)'
STEP_LR = ("    lr = get_lr_cosine_schedule(it, config.max_learning_rate, config.min_learning_rate,\n"
           "                                config.warmup_iters, config.cosine_cycle_iters)\n")
BACKWARD_CLIP_STEP = ("    optimizer.zero_grad(set_to_none=True)\n"
                      "    loss.backward()\n"
                      "    gradient_clipping(model.parameters(), config.max_l2_norm)\n"
                      "    optimizer.step()\n")

BUGS = [
    # --- get_batch -------------------------------------------------------------------------------
    bug("get_batch_targets_not_shifted", "get_batch",
        "get_batch returns the inputs as their own targets (not shifted by one token), so the model learns to copy",
        ("training.py", BATCH_RETURN, "return windows[:, :-1], windows[:, :-1]")),
    bug("get_batch_last_start_unreachable", "get_batch",
        "get_batch draws starts with torch.randint(0, len(dataset) − context_length − 1), whose upper bound is exclusive, so the last start is never drawn",
        ("training.py", STARTS, "starts = torch.randint(0, len(dataset) - context_length - 1, (batch_size,)).numpy()"),
        raises="random_ expects 'from' to be less than 'to'"),
    bug("get_batch_start_overruns_the_end", "get_batch",
        "get_batch draws starts up to len(dataset) − context_length inclusive, so the last start's target window runs past the end of the data",
        ("training.py", STARTS, "starts = torch.randint(0, len(dataset) - context_length + 1, (batch_size,)).numpy()"),
        raises="out of bounds"),
    bug("get_batch_ids_left_as_uint16", "get_batch",
        "get_batch leaves the token ids in the dataset's dtype (uint16 from a memmap) instead of int64",
        ("training.py", "windows = torch.from_numpy(windows.astype(np.int64)).to(device)",
         "windows = torch.from_numpy(windows).to(device)")),
    bug("get_batch_reads_the_whole_dataset", "get_batch",
        "get_batch converts the whole dataset to an int64 array (np.asarray(dataset, dtype=np.int64)) before indexing, so a memory-mapped file is read into memory whole",
        ("training.py", "windows = dataset[starts[:, None] + offsets]  # (batch_size, context_length + 1): reads only these",
         "windows = np.asarray(dataset, dtype=np.int64)[starts[:, None] + offsets]")),
    # --- gradient clipping -----------------------------------------------------------------------
    bug("clipping_each_parameter_separately", "gradient_clipping",
        "gradient clipping clips each parameter's gradient to the limit on its own instead of scaling all of them by their global norm",
        ("training.py", f"    {CLIP_NORM}\n"
         "    if norm > max_l2_norm:\n"
         f"        {CLIP_SCALE}\n"
         "        for g in grads:\n"
         "            g.mul_(scale)\n",
         "    for g in grads:\n"
         "        norm = g.detach().norm()\n"
         "        if norm > max_l2_norm:\n"
         "            g.mul_(max_l2_norm / (norm + 1e-6))\n")),
    bug("clipping_scales_below_the_limit", "gradient_clipping",
        "gradient clipping always scales the gradients to max_l2_norm / ‖g‖, so gradients under the limit are scaled up",
        ("training.py", "    if norm > max_l2_norm:\n"
         f"        {CLIP_SCALE}\n"
         "        for g in grads:\n"
         "            g.mul_(scale)\n",
         f"    {CLIP_SCALE}\n"
         "    for g in grads:\n"
         "        g.mul_(scale)\n")),
    bug("clipping_norm_without_square_root", "gradient_clipping",
        "gradient clipping compares the sum of squared gradients (‖g‖², no square root) with the limit",
        ("training.py", CLIP_NORM, "norm = sum(g.detach().pow(2).sum() for g in grads)")),
    bug("clipping_without_epsilon", "gradient_clipping",
        "gradient clipping scales by max_l2_norm / ‖g‖ without the 1e-6 in the denominator",
        ("training.py", CLIP_SCALE, "scale = max_l2_norm / norm")),
    bug("clipping_replaces_grad", "gradient_clipping",
        "gradient clipping computes scaled copies of the gradients (g = g * scale) that never reach p.grad",
        ("training.py", "            g.mul_(scale)", "            g = g * scale")),
    # --- AdamW -----------------------------------------------------------------------------------
    bug("adamw_without_bias_correction", "adamw",
        "AdamW uses m and v without bias correction (no division by 1 − β₁ᵗ and 1 − β₂ᵗ)",
        ("training.py", DENOMINATOR, "denominator = v.sqrt().add_(eps)"),
        ("training.py", UPDATE, "p.addcdiv_(m, denominator, value=-lr)")),
    bug("adamw_weight_decay_through_gradient", "adamw",
        "AdamW adds the weight decay to the gradient (g + λθ, which is Adam with L2 regularisation) instead of decaying the weights directly",
        ("training.py", MOMENTS,
         "                grad = p.grad + weight_decay * p\n"
         "                m.mul_(beta1).add_(grad, alpha=1 - beta1)\n"
         "                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)\n"),
        ("training.py", f"                {DECAY}\n", "")),
    bug("adamw_weight_decay_without_lr", "adamw",
        "AdamW decays the weights by λ·θ instead of lr·λ·θ (the weight decay is not multiplied by the learning rate)",
        ("training.py", DECAY, "p.mul_(1 - weight_decay)")),
    bug("adamw_one_step_counter_for_all", "adamw",
        "AdamW counts the steps once per group (group[\"step\"]) and uses that t for every parameter, so a parameter that had no gradient on some steps gets the wrong bias correction",
        ("training.py", f"{HYPERPARAMETERS}\n",
         f"{HYPERPARAMETERS}\n"
         '            group["step"] = t = group.get("step", 0) + 1\n'),
        ("training.py", '                state["step"] += 1\n'
         '                t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]\n',
         '                state["step"] = t\n'
         '                m, v = state["exp_avg"], state["exp_avg_sq"]\n')),
    bug("adamw_group_hyperparameters_ignored", "adamw",
        "AdamW uses the hyperparameters given to the constructor (self.defaults) instead of each group's own, so per-group values and a scheduled lr are ignored",
        ("training.py", HYPERPARAMETERS,
         'lr, (beta1, beta2), eps, weight_decay = (self.defaults["lr"], self.defaults["betas"], self.defaults["eps"],\n'
         '                                                  self.defaults["weight_decay"])')),
    bug("adamw_eps_inside_square_root", "adamw",
        "AdamW adds eps inside the square root (√(v̂ + ε)) instead of after it (√v̂ + ε)",
        ("training.py", DENOMINATOR, "denominator = (v / (1 - beta2**t)).add_(eps).sqrt()")),
    bug("adamw_first_moment_betas_swapped", "adamw",
        "AdamW's first moment weighs the old m by 1 − β₁ and the new gradient by β₁ (β₁ and 1 − β₁ swapped)",
        ("training.py", "m.mul_(beta1).add_(p.grad, alpha=1 - beta1)", "m.mul_(1 - beta1).add_(p.grad, alpha=beta1)")),
    # --- learning-rate schedule ------------------------------------------------------------------
    bug("lr_warmup_off_by_one", "lr_schedule",
        "the warmup uses (it + 1) / warmup_iters, so step 0 does not start at lr 0",
        ("training.py", WARMUP, "return (it + 1) / warmup_iters * max_learning_rate")),
    bug("lr_cosine_counted_from_zero", "lr_schedule",
        "the cosine counts from step 0 instead of from the end of the warmup (it / cosine_cycle_iters)",
        ("training.py", PROGRESS, "progress = it / cosine_cycle_iters")),
    bug("lr_cosine_decays_to_zero", "lr_schedule",
        "the cosine decays from max to 0 instead of to min_learning_rate",
        ("training.py", COSINE, "return 0.5 * (1 + math.cos(math.pi * progress)) * max_learning_rate")),
    bug("lr_cosine_over_whole_cycle_length", "lr_schedule",
        "the cosine runs over cosine_cycle_iters steps after the warmup (it − warmup_iters) / cosine_cycle_iters, so it has not reached min at cosine_cycle_iters",
        ("training.py", PROGRESS, "progress = (it - warmup_iters) / cosine_cycle_iters")),
    # --- checkpoints -----------------------------------------------------------------------------
    bug("checkpoint_without_optimizer_state", "checkpoint",
        "the checkpoint saves the model's weights but not the optimizer's state (m, v and the step counts), so training resumes differently",
        ("training.py", SAVE, 'torch.save({"model": model.state_dict(), "iteration": iteration}, out)'),
        ("training.py", '    optimizer.load_state_dict(checkpoint["optimizer"])\n', "")),
    bug("checkpoint_iteration_not_returned", "checkpoint",
        "load_checkpoint restores the weights and the optimizer but returns 0 instead of the saved iteration",
        ("training.py", 'return checkpoint["iteration"]', "return 0")),
    bug("checkpoint_pickles_whole_objects", "checkpoint",
        "the checkpoint saves the model and optimizer objects themselves (pickled) instead of their state_dicts, so torch.load(weights_only=True) refuses it",
        ("training.py", SAVE, 'torch.save({"model": model, "optimizer": optimizer, "iteration": iteration}, out)'),
        ("training.py", "    checkpoint = torch.load(src, weights_only=True)\n"
         '    model.load_state_dict(checkpoint["model"])\n'
         '    optimizer.load_state_dict(checkpoint["optimizer"])\n',
         "    checkpoint = torch.load(src, weights_only=False)\n"
         '    model.load_state_dict(checkpoint["model"].state_dict())\n'
         '    optimizer.load_state_dict(checkpoint["optimizer"].state_dict())\n'),
        raises="weights_only"),
    # --- the training step -----------------------------------------------------------------------
    bug("train_step_lr_of_next_step", "training",
        "train_step sets the learning rate of step it + 1 instead of step it",
        ("training.py", STEP_LR,
         "    lr = get_lr_cosine_schedule(it + 1, config.max_learning_rate, config.min_learning_rate,\n"
         "                                config.warmup_iters, config.cosine_cycle_iters)\n")),
    bug("train_step_zero_grad_after_backward", "training",
        "train_step zeroes the gradients after loss.backward(), so the optimiser steps with no gradient",
        ("training.py", BACKWARD_CLIP_STEP,
         "    loss.backward()\n"
         "    optimizer.zero_grad(set_to_none=True)\n"
         "    gradient_clipping(model.parameters(), config.max_l2_norm)\n"
         "    optimizer.step()\n")),
    bug("train_step_never_zeroes_gradients", "training",
        "train_step never zeroes the gradients, so they pile up from step to step",
        ("training.py", "    optimizer.zero_grad(set_to_none=True)\n", "")),
    bug("train_step_clips_after_the_step", "training",
        "train_step clips the gradients after optimizer.step(), so the step uses unclipped gradients",
        ("training.py", BACKWARD_CLIP_STEP,
         "    optimizer.zero_grad(set_to_none=True)\n"
         "    loss.backward()\n"
         "    optimizer.step()\n"
         "    gradient_clipping(model.parameters(), config.max_l2_norm)\n")),
    bug("train_step_shifts_targets_again", "training",
        "train_step shifts targets that get_batch already shifted (logits[:, :-1] against targets[:, 1:])",
        ("training.py", "loss = cross_entropy(logits, targets)", "loss = cross_entropy(logits[:, :-1], targets[:, 1:])")),
    bug("train_step_without_clipping", "training",
        "train_step never clips the gradients",
        ("training.py", "    gradient_clipping(model.parameters(), config.max_l2_norm)\n", "")),
]
