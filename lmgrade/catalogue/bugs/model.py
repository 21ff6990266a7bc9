"""Common bugs in the model components (layers, attention, RoPE, block, LM, loss, KV cache).

Each is one realistic mistake in one component, written as exact edits of the reference,
with the rubric item that must lose points for it and a one-line description in a student's
words (the diagnosis quotes it). Several only show on some shapes, which is why the suite
draws them: a square weight hides a transposed Linear until it crashes, one token hides a
wrong head merge, fewer tokens than the context reveal a mask sized by the context, and per-row
RoPE positions broadcast against the heads only run (wrongly) when batch == heads.
"""

from lmgrade.catalogue.variants import bug

MHA_CALL = "out = scaled_dot_product_attention(q, k, v, mask)"
LINEAR_FORWARD = "return x @ self.weight.T"
INV_RMS = "torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)"
SWIGLU_FORWARD = "self.w2(silu(self.w1(x)) * self.w3(x))"
SOFTMAX_SUM = "return exp.div_(exp.sum(dim=dim, keepdim=True))"
SCORES = "scores = (Q / math.sqrt(d_k)) @ K.transpose(-2, -1)"
MASK_ADD = 'scores += torch.zeros(mask.shape, dtype=scores.dtype, device=scores.device).masked_fill_(~mask, float("-inf"))'
SPLIT_HEADS = "return t.unflatten(-1, (self.num_heads, self.d_head)).transpose(-3, -2)"
CAUSAL_MASK_CALL = "mask = causal_mask(seq, k.shape[-2], device=x.device)"
ROPE_LOOKUP = "rotation = table[token_positions]  # (... seq, d_k/2)"
ROPE_ROTATION = "rotated = torch.view_as_real(pairs * rotation)"
BLOCK_ATTN = "x = x + self.attn(self.ln1(x), token_positions, kv_cache, key_is_real)"
BLOCK_FFN = "return x + self.ffn(self.ln2(x))"
LM_HEAD = "return self.lm_head(self.ln_final(x))"
LOG_NORMALISER = "log_normaliser = peak.squeeze(-1) + torch.log(torch.exp(logits - peak).sum(dim=-1))"
CACHE_WRITE = ("        self.keys[..., self.length : end, :] = k\n"
               "        self.values[..., self.length : end, :] = v\n"
               "        self.length = end\n"
               "        return self.keys[..., :end, :], self.values[..., :end, :]")
CACHE_UPDATE_CALL = "        if kv_cache is not None:\n            k, v = kv_cache.update(k, v)\n"

BUGS = [
    # --- Linear ----------------------------------------------------------------------------------
    bug("linear_weight_not_transposed", "linear", "Linear computes x W instead of x Wᵀ (it reads the (d_out, d_in) weight as (d_in, d_out))",
        ("layers.py", LINEAR_FORWARD, "return x @ self.weight")),
    bug("linear_computes_in_float32", "dtype", "Linear casts its input and weight to float32, so float64 inputs come back as float32",
        ("layers.py", LINEAR_FORWARD, "return x.float() @ self.weight.float().T")),
    bug("linear_flattens_with_view", "linear", "Linear flattens the leading dimensions with .view(-1, d_in), which fails on inputs whose leading dimensions are permuted or transposed in memory (use .reshape, or an einsum over ...)",
        ("layers.py", LINEAR_FORWARD,
         "flat = x.view(-1, x.shape[-1])\n"
         "        return (flat @ self.weight.T).view(*x.shape[:-1], self.weight.shape[0])"),
        raises="view size is not compatible"),
    # --- Embedding -------------------------------------------------------------------------------
    bug("embedding_scaled_by_sqrt_d_model", "embedding", "Embedding multiplies the looked-up rows by √d_model (as the original Transformer did), which the SPEC does not",
        ("layers.py", "return rows.view(*token_ids.shape, -1)", "return rows.view(*token_ids.shape, -1) * math.sqrt(self.weight.shape[-1])")),
    bug("embedding_reads_weight_data", "embedding", "Embedding looks rows up in weight.data, so no gradient reaches the embedding table",
        ("layers.py", "rows = self.weight.index_select(0, token_ids.reshape(-1))", "rows = self.weight.data.index_select(0, token_ids.reshape(-1))")),
    # --- RMSNorm ---------------------------------------------------------------------------------
    bug("rmsnorm_eps_outside_root", "rmsnorm", "RMSNorm adds eps after the square root instead of inside it",
        ("layers.py", INV_RMS, "1 / (torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True)) + self.eps)")),
    bug("rmsnorm_variance_instead_of_mean_square", "rmsnorm", "RMSNorm divides by the standard deviation (it subtracts the mean) instead of the root mean square",
        ("layers.py", INV_RMS, "torch.rsqrt(x.var(dim=-1, keepdim=True, unbiased=False) + self.eps)")),
    bug("rmsnorm_sum_instead_of_mean", "rmsnorm", "RMSNorm uses the sum of squares instead of their mean",
        ("layers.py", INV_RMS, "torch.rsqrt(x.pow(2).sum(dim=-1, keepdim=True) + self.eps)")),
    bug("rmsnorm_gain_before_normalising", "rmsnorm", "RMSNorm multiplies by the gain before normalising, so the gain is normalised away",
        ("layers.py", f"inv_rms = {INV_RMS}\n        return (x * inv_rms * self.weight.to(x.dtype)).to(in_dtype)",
         f"x = x * self.weight.to(x.dtype)\n        inv_rms = {INV_RMS}\n        return (x * inv_rms).to(in_dtype)")),
    bug("rmsnorm_without_upcast", "dtype", "RMSNorm squares 16-bit inputs in their own dtype instead of float32 (x² overflows in float16)",
        ("layers.py", "        x = x.to(torch.promote_types(in_dtype, torch.float32))\n", "")),
    bug("rmsnorm_eps_zero_means_default", "rmsnorm", "RMSNorm reads eps=0.0 as 'not given' (eps or 1e-5) and adds 1e-5 anyway",
        ("layers.py", "        self.eps = eps\n", "        self.eps = eps or 1e-5\n")),
    # --- SiLU and SwiGLU -------------------------------------------------------------------------
    bug("swiglu_w1_w3_swapped", "swiglu", "SwiGLU gates the W3 branch and multiplies by W1 (W1 and W3 swapped)",
        ("layers.py", SWIGLU_FORWARD, "self.w2(silu(self.w3(x)) * self.w1(x))")),
    bug("swiglu_sigmoid_gate", "swiglu", "SwiGLU gates with sigmoid(W1 x) instead of silu(W1 x) (that is GLU, not SwiGLU)",
        ("layers.py", SWIGLU_FORWARD, "self.w2(torch.sigmoid(self.w1(x)) * self.w3(x))")),
    bug("swiglu_silu_after_product", "swiglu", "SwiGLU applies SiLU to the product W1 x ⊙ W3 x instead of to W1 x alone",
        ("layers.py", SWIGLU_FORWARD, "self.w2(silu(self.w1(x) * self.w3(x)))")),
    bug("silu_sign_flipped", "swiglu", "SiLU is computed as x·σ(−x) = x / (1 + eˣ) instead of x·σ(x) = x / (1 + e⁻ˣ)",
        ("layers.py", "return x * torch.sigmoid(x)", "return x / (1 + torch.exp(x))"),
        ("layers.py", "        s = torch.sigmoid(x)\n", "        s = torch.sigmoid(-x)  # x·σ(−x) = x / (1 + eˣ)\n")),
    # --- softmax ---------------------------------------------------------------------------------
    bug("softmax_without_max_shift", "softmax", "softmax exponentiates x without subtracting the max first (overflows for large inputs)",
        ("layers.py", "shifted = x - x.amax(dim=dim, keepdim=True)", "shifted = x.clone()")),
    bug("softmax_over_last_dim_always", "softmax", "softmax normalises over the last dimension whatever `dim` says",
        ("layers.py", SOFTMAX_SUM, "return exp.div_(exp.sum(dim=-1, keepdim=True))")),
    bug("softmax_normalised_by_total_sum", "softmax", "softmax divides by the sum over the whole tensor instead of the sum along `dim`",
        ("layers.py", SOFTMAX_SUM, "return exp.div_(exp.sum())")),
    # --- attention -------------------------------------------------------------------------------
    bug("attention_without_causal_mask", "attention", "multi-head attention leaves out the causal mask (every token sees the future)",
        ("attention.py", MHA_CALL, "out = scaled_dot_product_attention(q, k, v)")),
    bug("attention_scaled_by_d_model", "attention", "attention scores are scaled by 1/√d_model instead of 1/√d_head",
        ("attention.py", MHA_CALL,
         "out = scaled_dot_product_attention(q * math.sqrt(self.d_head / (self.num_heads * self.d_head)), k, v, mask)")),
    bug("attention_without_scale", "attention", "attention scores are not divided by √d_k",
        ("attention.py", SCORES, "scores = Q @ K.transpose(-2, -1)")),
    bug("attention_mask_polarity_inverted", "attention", "the mask is applied the wrong way round: True hides a key instead of allowing it",
        ("attention.py", MASK_ADD, MASK_ADD.replace("masked_fill_(~mask", "masked_fill_(mask"))),
    bug("attention_softmax_over_queries", "attention", "attention normalises its weights over the queries (dim −2) instead of over the keys",
        ("attention.py", "weights = softmax(scores, dim=-1)", "weights = softmax(scores, dim=-2)")),
    bug("causal_mask_hides_the_diagonal", "attention", "the causal mask uses j < i instead of j ≤ i, so a token cannot attend to itself",
        ("attention.py", "return key_positions[None, :] <= query_positions[:, None]", "return key_positions[None, :] < query_positions[:, None]")),
    bug("causal_mask_sized_by_context_length", "attention",
        "the causal mask is cut from a context_length × context_length mask, so with fewer tokens than the context a query sees later tokens",
        ("attention.py", "        self.d_head = d_model // num_heads\n",
         "        self.d_head = d_model // num_heads\n        self.max_seq_len = max_seq_len\n"),
        ("attention.py", CAUSAL_MASK_CALL,
         "context = self.max_seq_len or k.shape[-2]\n"
         "            mask = causal_mask(context, context, device=x.device)[-seq:, : k.shape[-2]]")),
    bug("heads_split_as_d_head_by_heads", "attention", "the heads are split from d_model as (d_head, heads) instead of (heads, d_head)",
        ("attention.py", SPLIT_HEADS, "return t.unflatten(-1, (self.d_head, self.num_heads)).movedim(-1, -3)")),
    bug("heads_merged_without_transpose", "attention", "the heads are merged with a reshape, without first moving the heads axis back next to d_head",
        ("attention.py", "out = out.transpose(-3, -2).flatten(-2)  # (... seq, heads · d_head)", "out = out.reshape(*out.shape[:-3], seq, -1)")),
    bug("rope_positions_broadcast_against_heads", "attention",
        "per-row RoPE positions (batch, seq) are broadcast against the heads axis instead of being shared by every head",
        ("attention.py", "head_positions = token_positions.unsqueeze(-2)  # same positions for every head", "head_positions = token_positions")),
    bug("rope_applied_to_values", "attention", "RoPE is applied to the values as well as to the queries and keys",
        ("attention.py", "            k = self.rope(k, head_positions)\n",
         "            k = self.rope(k, head_positions)\n            v = self.rope(v, head_positions)\n")),
    bug("rope_built_with_d_model", "attention", "the attention builds RoPE with d_model instead of d_head, so its frequencies θ^(−2k/d) use the wrong d",
        ("attention.py", "self.rope = RotaryPositionalEmbedding(theta, self.d_head, max_seq_len, device=device)",
         "self.rope = RotaryPositionalEmbedding(theta, d_model, max_seq_len, device=device)"),
        ("attention.py", ROPE_LOOKUP,
         "rotation = table[token_positions][..., : x.shape[-1] // 2]  # the first d_k/2 frequencies")),
    bug("attention_ignores_token_positions", "attention", "the attention ignores the token_positions it is given and always uses 0 … seq−1",
        ("attention.py", "        if token_positions is None:\n            token_positions = torch.arange(past, past + seq, device=x.device)",
         "        token_positions = torch.arange(past, past + seq, device=x.device)")),
    # --- RoPE ------------------------------------------------------------------------------------
    bug("rope_table_in_float32", "dtype", "RoPE builds its cos/sin table in float32, so float64 inputs are rotated with float32 precision",
        ("attention.py", "pair = torch.arange(d_k // 2, dtype=torch.float64, device=device)",
         "pair = torch.arange(d_k // 2, dtype=torch.float32, device=device)"),
        ("attention.py", "positions = torch.arange(max_seq_len, dtype=torch.float64, device=device)",
         "positions = torch.arange(max_seq_len, dtype=torch.float32, device=device)")),
    bug("rope_half_split_pairs", "rope", "RoPE rotates pairs (k, k + d/2) (rotate-half) instead of interleaved pairs (2k, 2k+1)",
        ("attention.py", "x.to(dtype).unflatten(-1, (-1, 2)).contiguous()", "x.to(dtype).unflatten(-1, (2, -1)).transpose(-1, -2).contiguous()"),
        ("attention.py", "return rotated.flatten(-2).to(x.dtype)", "return rotated.transpose(-1, -2).flatten(-2).to(x.dtype)")),
    bug("rope_frequency_exponent_without_2", "rope", "RoPE frequencies are θ^(−k/d) instead of θ^(−2k/d)",
        ("attention.py", "inv_freq = theta ** (-2.0 * pair / d_k)", "inv_freq = theta ** (-pair / d_k)")),
    bug("rope_rotates_the_wrong_way", "rope", "RoPE rotates by −angle (the sin terms have the wrong signs)",
        ("attention.py", ROPE_ROTATION, "rotated = torch.view_as_real(pairs * rotation.conj())")),
    bug("rope_ignores_token_positions", "rope", "RoPE ignores token_positions and rotates the i-th vector of the sequence by position i",
        ("attention.py", ROPE_LOOKUP,
         "rotation = table[: x.shape[-2]]  # (seq, d_k/2)")),
    # --- block -----------------------------------------------------------------------------------
    bug("block_without_residual", "block", "the attention sub-layer of the block has no residual connection",
        ("model.py", BLOCK_ATTN, "x = self.attn(self.ln1(x), token_positions, kv_cache, key_is_real)")),
    bug("block_post_norm", "block", "the block normalises after each residual add (post-norm) instead of before each sub-layer (pre-norm)",
        ("model.py", f"{BLOCK_ATTN}\n        {BLOCK_FFN}",
         "x = self.ln1(x + self.attn(x, token_positions, kv_cache, key_is_real))\n        return self.ln2(x + self.ffn(x))")),
    bug("block_shared_norm", "block", "the block uses ln1 before both sub-layers (one shared norm) instead of ln1 and then ln2",
        ("model.py", BLOCK_FFN, "return x + self.ffn(self.ln1(x))")),
    bug("block_parallel_sublayers", "block", "the block applies attention and the FFN in parallel to the same input instead of one after the other",
        ("model.py", f"{BLOCK_ATTN}\n        {BLOCK_FFN}",
         "return x + self.attn(self.ln1(x), token_positions, kv_cache, key_is_real) + self.ffn(self.ln2(x))")),
    bug("block_ffn_residual_from_normalised_input", "block", "the FFN's residual connection adds the normalised ln2(x) instead of x",
        ("model.py", BLOCK_FFN, "h = self.ln2(x)\n        return h + self.ffn(h)")),
    # --- the LM ----------------------------------------------------------------------------------
    bug("lm_without_final_norm", "lm", "the LM leaves out the final RMSNorm (ln_final) before lm_head",
        ("model.py", LM_HEAD, "return self.lm_head(x)")),
    bug("lm_tied_output_layer", "lm", "the LM reuses the token embedding matrix as its output layer (tied weights) instead of lm_head",
        ("model.py", LM_HEAD, "return self.ln_final(x) @ self.token_embeddings.weight.T")),
    bug("lm_returns_probabilities", "lm", "the LM returns softmax probabilities instead of unnormalised logits",
        ("model.py", "from .layers import Embedding, Linear, RMSNorm, SwiGLU", "from .layers import Embedding, Linear, RMSNorm, SwiGLU, softmax"),
        ("model.py", LM_HEAD, "return softmax(self.lm_head(self.ln_final(x)), dim=-1)")),
    # --- cross-entropy ---------------------------------------------------------------------------
    bug("cross_entropy_ignores_ignore_index", "cross_entropy", "cross-entropy scores every target, ignore_index included",
        ("loss.py", "scored = torch.ones_like(targets, dtype=torch.bool) if ignore_index is None else targets != ignore_index",
         "scored = torch.ones_like(targets, dtype=torch.bool)")),
    bug("cross_entropy_mean_over_all_targets", "cross_entropy", "cross-entropy divides by all targets, ignored ones included",
        ("loss.py", "return (nll.sum() / scored.sum()).to(in_dtype)", "return (nll.sum() / scored.numel()).to(in_dtype)")),
    bug("cross_entropy_sum_instead_of_mean", "cross_entropy", "cross-entropy returns the sum of the per-target losses instead of their mean",
        ("loss.py", "return (nll.sum() / scored.sum()).to(in_dtype)", "return nll.sum().to(in_dtype)")),
    bug("cross_entropy_without_max_shift", "cross_entropy", "cross-entropy computes log Σ exp(z) without subtracting the max first (overflows for large logits)",
        ("loss.py", LOG_NORMALISER, "log_normaliser = torch.log(torch.exp(logits).sum(dim=-1))")),
    bug("cross_entropy_max_not_added_back", "cross_entropy", "cross-entropy subtracts the max inside log-sum-exp but forgets to add it back",
        ("loss.py", LOG_NORMALISER, "log_normaliser = torch.log(torch.exp(logits - peak).sum(dim=-1))")),
    # --- the KV cache ----------------------------------------------------------------------------
    bug("cache_positions_restart_at_zero", "kv_cache", "with a KV cache, the new tokens get RoPE positions 0, 1, … instead of continuing after the cache",
        ("model.py", "return torch.arange(past, past + seq, device=in_indices.device), None",
         "return torch.arange(seq, device=in_indices.device), None")),
    bug("cache_top_left_causal_mask", "kv_cache", "the causal mask is aligned top-left, so a chunk after a prefill cannot see the cached tokens it should",
        ("attention.py", "query_positions = torch.arange(num_keys - num_queries, num_keys, device=device)",
         "query_positions = torch.arange(num_queries, device=device)")),
    bug("cache_skips_multi_token_chunks", "kv_cache",
        "the KV cache stores the prefill and single tokens, but a multi-token chunk after the prefill is attended to and never stored",
        ("attention.py", CACHE_WRITE,
         "        if self.length and new > 1:  # a later chunk of several tokens: used once, not kept\n"
         "            return (torch.cat([self.keys[..., : self.length, :], k], dim=-2),\n"
         "                    torch.cat([self.values[..., : self.length, :], v], dim=-2))\n" + CACHE_WRITE)),
    bug("cache_recomputes_the_prefix", "kv_cache.hidden",
        "the KV cache keeps the layer inputs and re-projects keys and values of the whole prefix at every step (O(prefix) work per token)",
        ("attention.py", CACHE_UPDATE_CALL,
         "        if kv_cache is not None:\n"
         "            # the inputs, and their positions (padded batches count real tokens only), kept for every step\n"
         "            kept_positions = token_positions.expand(x.shape[:-1]).unsqueeze(-1).expand(x.shape).to(x.dtype)\n"
         "            inputs, positions = kv_cache.update(x.unsqueeze(-3), kept_positions.unsqueeze(-3))  # (... 1, total, d)\n"
         "            prefix = inputs[..., 0, :, :]\n"
         "            k, v = split_heads(self.k_proj(prefix)), split_heads(self.v_proj(prefix))\n"
         "            if self.rope is not None:\n"
         "                k = self.rope(k, positions[..., 0, :, 0].long().unsqueeze(-2))\n")),
]
