"""Common bugs in the model components (layers, attention, RoPE, block, LM, loss, KV cache)."""

from ..variants import bug

MHA_CALL = "out = scaled_dot_product_attention(q, k, v, mask)"

BUGS = [
    bug("softmax_without_max_shift", "softmax", "softmax exponentiates x without subtracting the max first (overflows for large inputs)",
        ("layers.py", "shifted = x - x.amax(dim=dim, keepdim=True)", "shifted = x")),
    bug("softmax_over_last_dim_always", "softmax", "softmax normalises over the last dimension whatever `dim` says",
        ("layers.py", "return exp / exp.sum(dim=dim, keepdim=True)", "return exp / exp.sum(dim=-1, keepdim=True)")),
    bug("rmsnorm_eps_outside_root", "rmsnorm", "RMSNorm adds eps after the square root instead of inside it",
        ("layers.py", "torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)",
         "1 / (torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True)) + self.eps)")),
    bug("swiglu_w1_w3_swapped", "swiglu", "SwiGLU gates the W3 branch and multiplies by W1 (W1 and W3 swapped)",
        ("layers.py", "self.w2(silu(self.w1(x)) * self.w3(x))", "self.w2(silu(self.w3(x)) * self.w1(x))")),
    bug("attention_without_causal_mask", "attention", "multi-head attention leaves out the causal mask (every token sees the future)",
        ("attention.py", MHA_CALL, "out = scaled_dot_product_attention(q, k, v)")),
    bug("attention_scaled_by_d_model", "attention", "attention scores are scaled by 1/√d_model instead of 1/√d_head",
        ("attention.py", MHA_CALL,
         "out = scaled_dot_product_attention(q * math.sqrt(self.d_head / (self.num_heads * self.d_head)), k, v, mask)")),
    bug("rope_half_split_pairs", "rope", "RoPE rotates pairs (k, k + d/2) (rotate-half) instead of interleaved pairs (2k, 2k+1)",
        ("attention.py", "pairs = x.unflatten(-1, (-1, 2))", "pairs = x.unflatten(-1, (2, -1)).transpose(-1, -2)"),
        ("attention.py", "return rotated.flatten(-2)", "return rotated.transpose(-1, -2).flatten(-2)")),
    bug("cache_positions_restart_at_zero", "kv_cache", "with a KV cache, the new tokens get RoPE positions 0, 1, … instead of continuing after the cache",
        ("model.py", "positions = torch.arange(past, past + seq, device=in_indices.device)",
         "positions = torch.arange(seq, device=in_indices.device)")),
    bug("cache_top_left_causal_mask", "kv_cache", "the causal mask is aligned top-left, so a chunk after a prefill cannot see the cached tokens it should",
        ("attention.py", "query_positions = torch.arange(num_keys - num_queries, num_keys, device=device)",
         "query_positions = torch.arange(num_queries, device=device)")),
    bug("cross_entropy_ignores_ignore_index", "cross_entropy", "cross-entropy scores every target, ignore_index included",
        ("loss.py", "scored = torch.ones_like(targets, dtype=torch.bool) if ignore_index is None else targets != ignore_index",
         "scored = torch.ones_like(targets, dtype=torch.bool)")),
    bug("cross_entropy_mean_over_all_targets", "cross_entropy", "cross-entropy divides by all targets, ignored ones included",
        ("loss.py", "return (nll.sum() / scored.sum()).to(in_dtype)", "return (nll.sum() / scored.numel()).to(in_dtype)")),
    bug("block_without_residual", "block", "the attention sub-layer of the block has no residual connection",
        ("model.py", "x = x + self.attn(self.ln1(x), token_positions, kv_cache)", "x = self.attn(self.ln1(x), token_positions, kv_cache)")),
    bug("block_post_norm", "block", "the block normalises after each residual add (post-norm) instead of before each sub-layer (pre-norm)",
        ("model.py", "x = x + self.attn(self.ln1(x), token_positions, kv_cache)\n        return x + self.ffn(self.ln2(x))",
         "x = self.ln1(x + self.attn(x, token_positions, kv_cache))\n        return self.ln2(x + self.ffn(x))")),
]
