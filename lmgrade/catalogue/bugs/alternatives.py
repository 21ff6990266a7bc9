"""Correct implementations written differently: each must keep full marks on the items it touches.

`checked_items` are rubric item ids: the items whose code the alternative rewrites (and, where
it matters, one item built on it), kept short because `lmgrade selfcheck` grades each of them.
"""

from lmgrade.catalogue.variants import alternative

ALTERNATIVES = [
    alternative("einsum_instead_of_matmul", "Linear as an einsum (einx.dot, as the SPEC writes it) instead of x @ W.T",
                ("linear", "linear.hidden", "swiglu", "swiglu.hidden"),
                ("layers.py", "import torch\n", "import einx\nimport torch\n"),
                ("layers.py", "return x @ self.weight.T", 'return einx.dot("... d_in, d_out d_in -> ... d_out", x, self.weight)')),
    alternative("einsum_attention", "attention scores and output written as einsums, the scores divided by √d_k after the product",
                ("attention", "attention.hidden"),
                ("attention.py", "scores = (Q / math.sqrt(d_k)) @ K.transpose(-2, -1)",
                 'scores = torch.einsum("...qd,...kd->...qk", Q, K) / math.sqrt(d_k)'),
                ("attention.py", "return weights @ V", 'return torch.einsum("...qk,...kd->...qd", weights, V)')),
    alternative("fused_qkv_projection", "one matmul with the stacked [Wq; Wk; Wv] instead of three projections", ("attention", "attention.hidden"),
                ("attention.py", "q, k, v = split_heads(self.q_proj(x)), split_heads(self.k_proj(x)), split_heads(self.v_proj(x))",
                 "qkv = x @ torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight]).T\n"
                 "        q, k, v = (split_heads(t) for t in qkv.chunk(3, dim=-1))")),
    alternative("real_arithmetic_rope", "RoPE with cos/sin tables in real arithmetic on the (even, odd) dims instead of complex numbers",
                ("rope", "rope.hidden", "attention"),
                ("attention.py", '        self.register_buffer("rotation", torch.polar(torch.ones_like(angles), angles), persistent=False)\n'
                 "        # The same table in complex64, for float32 (and 16-bit) inputs: casting the looked-up rows instead\n"
                 "        # costs a copy at every call, and decoding calls RoPE twice per layer for every token.\n"
                 '        self.register_buffer("rotation_complex64", self.rotation.to(torch.complex64), persistent=False)\n',
                 '        self.register_buffer("cos", angles.cos(), persistent=False)\n'
                 '        self.register_buffer("sin", angles.sin(), persistent=False)\n'),
                ("attention.py", "        dtype = torch.promote_types(x.dtype, torch.float32)\n"
                 "        table = self.rotation if dtype == torch.float64 else self.rotation_complex64\n"
                 "        rotation = table[token_positions]  # (... seq, d_k/2)\n"
                 "        pairs = torch.view_as_complex(x.to(dtype).unflatten(-1, (-1, 2)).contiguous())  # dims (2k, 2k+1) as re, im\n"
                 "        rotated = torch.view_as_real(pairs * rotation)  # (... seq, d_k/2, 2)\n"
                 "        return rotated.flatten(-2).to(x.dtype)",
                 "        cos = self.cos[token_positions].to(x.dtype)  # (... seq, d_k/2)\n"
                 "        sin = self.sin[token_positions].to(x.dtype)\n"
                 "        pairs = x.unflatten(-1, (-1, 2))  # (... seq, d_k/2, 2): dims (2k, 2k+1) side by side\n"
                 "        even, odd = pairs[..., 0], pairs[..., 1]\n"
                 "        rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)\n"
                 "        return rotated.flatten(-2)")),
    alternative("concatenating_cache", "a KV cache that grows with torch.cat instead of preallocated buffers", ("kv_cache", "kv_cache.hidden"),
                ("attention.py", "        if self.keys is None:\n"
                 "            buffer_shape = (*k.shape[:-2], self.max_seq_len, k.shape[-1])\n"
                 "            self.keys = k.new_empty(buffer_shape)\n"
                 "            self.values = v.new_empty(buffer_shape)\n"
                 "        self.keys[..., self.length : end, :] = k\n"
                 "        self.values[..., self.length : end, :] = v\n"
                 "        self.length = end\n"
                 "        return self.keys[..., :end, :], self.values[..., :end, :]",
                 "        self.keys = k if self.keys is None else torch.cat([self.keys, k], dim=-2)\n"
                 "        self.values = v if self.values is None else torch.cat([self.values, v], dim=-2)\n"
                 "        self.length = end\n"
                 "        return self.keys, self.values")),
]

ALTERNATIVES += [
    alternative("float64_internally", "Linear, RMSNorm and softmax compute in float64 and cast the result back to the input dtype",
                ("linear", "linear.hidden", "rmsnorm", "rmsnorm.hidden", "softmax", "softmax.hidden"),
                ("layers.py", "return x @ self.weight.T", "return (x.double() @ self.weight.double().T).to(x.dtype)"),
                ("layers.py", "x = x.to(torch.promote_types(in_dtype, torch.float32))", "x = x.to(torch.float64)"),
                ("layers.py", "shifted = x - x.amax(dim=dim, keepdim=True)", "shifted = x.double() - x.double().amax(dim=dim, keepdim=True)"),
                ("layers.py", "return exp.div_(exp.sum(dim=dim, keepdim=True))", "return exp.div_(exp.sum(dim=dim, keepdim=True)).to(x.dtype)")),
    alternative("loop_over_heads", "attention computed head by head in a Python loop, the heads' outputs concatenated",
                ("attention", "attention.hidden"),
                ("attention.py", "out = scaled_dot_product_attention(q, k, v, mask)\n"
                 "        out = out.transpose(-3, -2).flatten(-2)  # (... seq, heads · d_head)",
                 "heads = [scaled_dot_product_attention(q[..., h, :, :], k[..., h, :, :], v[..., h, :, :], mask)\n"
                 "                 for h in range(self.num_heads)]\n"
                 "        out = torch.cat(heads, dim=-1)  # (... seq, heads · d_head), head by head")),
    alternative("tril_mask_added_as_minus_inf", "causal mask cut from torch.tril, added to the scores out of place as a full-size 0 / −inf tensor",
                ("attention", "kv_cache"),
                ("attention.py", "    query_positions = torch.arange(num_keys - num_queries, num_keys, device=device)\n"
                 "    key_positions = torch.arange(num_keys, device=device)\n"
                 "    return key_positions[None, :] <= query_positions[:, None]",
                 "    square = torch.ones(num_keys, num_keys, dtype=torch.bool, device=device).tril()\n"
                 "    return square[num_keys - num_queries :]"),
                ("attention.py", 'scores += torch.zeros(mask.shape, dtype=scores.dtype, device=scores.device).masked_fill_(~mask, float("-inf"))',
                 'scores = scores + torch.zeros_like(scores).masked_fill(~mask, float("-inf"))')),
    alternative("logsumexp", "softmax and cross-entropy written with torch.logsumexp instead of an explicit max shift",
                ("softmax", "softmax.hidden", "cross_entropy", "cross_entropy.hidden"),
                ("layers.py", "    shifted = x - x.amax(dim=dim, keepdim=True)\n"
                 "    # On the CPU, torch.exp (MKL) takes a slow path, about 20x, for every result that underflows,\n"
                 "    # such as exp(−inf) at each masked attention score. So exponentiate no lower than `floor`,\n"
                 "    # where exp is still a normal number, then zero what is that small: e^−86 (float32) and\n"
                 "    # e^−699 (float64) are far below the rounding of a sum that includes e^0 = 1. In place:\n"
                 "    # shifted is our own tensor.\n"
                 "    floor = -700.0 if shifted.dtype == torch.float64 else -87.0\n"
                 "    exp = torch.nn.functional.threshold_(shifted.clamp_(min=floor).exp_(), math.exp(floor + 1), 0.0)\n"
                 "    return exp.div_(exp.sum(dim=dim, keepdim=True))",
                 "    return torch.exp(x - torch.logsumexp(x, dim=dim, keepdim=True))"),
                ("loss.py", "log_normaliser = peak.squeeze(-1) + torch.log(torch.exp(logits - peak).sum(dim=-1))",
                 "log_normaliser = torch.logsumexp(logits, dim=-1)")),
]

# --- training ------------------------------------------------------------------------------------
ADAMW_STEP_BODY = (
    "            for p in group[\"params\"]:\n"
    "                if p.grad is None:\n"
    "                    continue\n"
    "                state = self.state[p]\n"
    "                if not state:\n"
    "                    state[\"step\"] = 0\n"
    "                    state[\"exp_avg\"] = torch.zeros_like(p)\n"
    "                    state[\"exp_avg_sq\"] = torch.zeros_like(p)\n"
    "                state[\"step\"] += 1\n"
    "                t, m, v = state[\"step\"], state[\"exp_avg\"], state[\"exp_avg_sq\"]\n"
    "                m.mul_(beta1).add_(p.grad, alpha=1 - beta1)\n"
    "                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)\n"
    "                p.mul_(1 - lr * weight_decay)\n"
    "                denominator = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)\n"
    "                p.addcdiv_(m, denominator, value=-lr / (1 - beta1**t))\n")

ALTERNATIVES += [
    alternative("adamw_cs336_alpha_form", "AdamW in CS336's form: α_t = lr·√(1−β₂ᵗ)/(1−β₁ᵗ), θ −= α_t m/(√v + ε), then the decay θ −= lr·λ·θ",
                ("adamw", "adamw.hidden", "checkpoint"),
                ("training.py", "                p.mul_(1 - lr * weight_decay)\n"
                 "                denominator = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)\n"
                 "                p.addcdiv_(m, denominator, value=-lr / (1 - beta1**t))\n",
                 "                alpha = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)\n"
                 "                p.data -= alpha * m / (torch.sqrt(v) + eps)\n"
                 "                p.data -= lr * weight_decay * p.data\n")),
    alternative("adamw_foreach", "AdamW updating all the parameters of a group at once with torch._foreach_* ops",
                ("adamw", "adamw.hidden", "checkpoint"),
                ("training.py", ADAMW_STEP_BODY,
                 "            params = [p for p in group[\"params\"] if p.grad is not None]\n"
                 "            if not params:\n"
                 "                continue\n"
                 "            for p in params:\n"
                 "                state = self.state[p]\n"
                 "                if not state:\n"
                 "                    state[\"step\"] = 0\n"
                 "                    state[\"exp_avg\"] = torch.zeros_like(p)\n"
                 "                    state[\"exp_avg_sq\"] = torch.zeros_like(p)\n"
                 "                state[\"step\"] += 1\n"
                 "            grads = [p.grad for p in params]\n"
                 "            ms = [self.state[p][\"exp_avg\"] for p in params]\n"
                 "            vs = [self.state[p][\"exp_avg_sq\"] for p in params]\n"
                 "            steps = [self.state[p][\"step\"] for p in params]\n"
                 "            torch._foreach_mul_(ms, beta1)\n"
                 "            torch._foreach_add_(ms, grads, alpha=1 - beta1)\n"
                 "            torch._foreach_mul_(vs, beta2)\n"
                 "            torch._foreach_addcmul_(vs, grads, grads, value=1 - beta2)\n"
                 "            torch._foreach_mul_(params, 1 - lr * weight_decay)\n"
                 "            denominators = torch._foreach_sqrt(vs)\n"
                 "            torch._foreach_div_(denominators, [math.sqrt(1 - beta2**t) for t in steps])\n"
                 "            torch._foreach_add_(denominators, eps)\n"
                 "            torch._foreach_addcdiv_(params, ms, denominators, [-lr / (1 - beta1**t) for t in steps])\n")),
    alternative("clipping_vector_norm_of_norms", "gradient clipping with the global norm as torch.linalg.vector_norm of the stacked per-parameter norms, the scale clamped at 1",
                ("gradient_clipping", "gradient_clipping.hidden"),
                ("training.py", "    norm = torch.sqrt(sum(g.detach().pow(2).sum() for g in grads))\n"
                 "    if norm > max_l2_norm:\n"
                 "        scale = max_l2_norm / (norm + 1e-6)\n"
                 "        for g in grads:\n"
                 "            g.mul_(scale)\n",
                 "    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.detach()) for g in grads]))\n"
                 "    if norm > max_l2_norm:\n"
                 "        for g in grads:\n"
                 "            g.mul_(max_l2_norm / (norm + 1e-6))\n")),
    alternative("get_batch_stacked_slices", "get_batch stacking one slice per sampled start (torch.from_numpy of each) instead of fancy indexing",
                ("get_batch", "get_batch.hidden"),
                ("training.py", "    offsets = np.arange(context_length + 1)\n"
                 "    windows = dataset[starts[:, None] + offsets]  # (batch_size, context_length + 1): reads only these\n"
                 "    windows = torch.from_numpy(windows.astype(np.int64)).to(device)\n"
                 "    return windows[:, :-1], windows[:, 1:]",
                 "    x = torch.stack([torch.from_numpy(dataset[s : s + context_length].astype(np.int64)) for s in starts])\n"
                 "    y = torch.stack([torch.from_numpy(dataset[s + 1 : s + 1 + context_length].astype(np.int64)) for s in starts])\n"
                 "    return x.to(device), y.to(device)")),
    alternative("lr_schedule_written_as_one_minus_cos", "the schedule's cosine written as max − (max − min)·(1 − cos)/2, the warmup as max·it/warmup",
                ("lr_schedule", "lr_schedule.hidden"),
                ("training.py", "        return it / warmup_iters * max_learning_rate",
                 "        return max_learning_rate * it / warmup_iters"),
                ("training.py", "        return min_learning_rate + 0.5 * (1 + math.cos(math.pi * progress)) * (max_learning_rate - min_learning_rate)",
                 "        return max_learning_rate - (max_learning_rate - min_learning_rate) * (1 - math.cos(math.pi * progress)) / 2")),
]
