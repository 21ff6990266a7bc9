"""Common bugs of the GPT-2 variant: where GPT-2 differs from the Llama-style model.

LayerNorm written as the RMSNorm students already know, the exact GELU, the Conv1D layout, q/k/v
taken from the wrong columns of c_attn, biases forgotten, a head that is a copy, and learned
positions that do not move with the cache or with left padding.
"""

from lmgrade.catalogue.variants import bug

CENTRED = "centred = x - x.mean(dim=-1, keepdim=True)"
INV_STD = "inv_std = torch.rsqrt(centred.pow(2).mean(dim=-1, keepdim=True) + self.eps)"
LN_OUT = "return (centred * inv_std * self.weight.to(x.dtype) + self.bias.to(x.dtype)).to(in_dtype)"
GELU = "return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))"
QKV = "q, k, v = self.c_attn(x).chunk(3, dim=-1)"
POSITIONS = "positions, key_is_real = TransformerLM.positions(in_indices, kv_cache, attention_mask, self.config.context_length)"
PAST = "(kv_cache.length if kv_cache is not None else 0)"

BUGS = [
    bug("layernorm_mean_not_subtracted", "layernorm",
        "LayerNorm without the mean subtraction: x / sqrt(mean(x²) + eps) · w + b, RMSNorm with a bias",
        ("gpt2.py", CENTRED, "centred = x")),
    bug("layernorm_unbiased_variance", "layernorm",
        "LayerNorm divides the squared deviations by d − 1 (torch.var's default) instead of d",
        ("gpt2.py", INV_STD, "inv_std = torch.rsqrt(centred.var(dim=-1, keepdim=True) + self.eps)")),
    bug("layernorm_eps_outside_the_root", "layernorm",
        "LayerNorm adds eps to the standard deviation instead of the variance",
        ("gpt2.py", INV_STD, "inv_std = 1 / (centred.pow(2).mean(dim=-1, keepdim=True).sqrt() + self.eps)")),
    bug("layernorm_bias_dropped", "layernorm",
        "LayerNorm scales by weight but never adds bias",
        ("gpt2.py", LN_OUT, "return (centred * inv_std * self.weight.to(x.dtype)).to(in_dtype)")),
    bug("gelu_exact_erf_instead_of_tanh", "gelu",
        "the exact GELU x·Φ(x) with erf, where GPT-2 uses the tanh approximation",
        ("gpt2.py", GELU, "return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))")),
    bug("gelu_cube_left_out", "gelu",
        "GELU's tanh argument without the cubic term: tanh(√(2/π)·x)",
        ("gpt2.py", GELU, "return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * x))")),
    bug("gpt2_conv1d_weight_used_as_linear", "gpt2_lm",
        "every GPT-2 projection multiplies by Wᵀ, as nn.Linear does, though GPT-2 stores W as (d_in, d_out)",
        ("gpt2.py", "return x @ self.weight + self.bias  #", "return x @ self.weight.T + self.bias  #"),
        raises="cannot be multiplied"),
    bug("gpt2_qkv_columns_interleaved", "gpt2_lm",
        "q, k and v taken as interleaved columns of c_attn's output instead of three blocks side by side",
        ("gpt2.py", QKV, "q, k, v = self.c_attn(x).unflatten(-1, (-1, 3)).unbind(-1)")),
    bug("gpt2_attention_biases_dropped", "gpt2_lm",
        "c_attn's bias is left out: q, k and v are x W without + b",
        ("gpt2.py", QKV, "q, k, v = (x @ self.c_attn.weight).chunk(3, dim=-1)")),
    bug("gpt2_head_untied_by_copying", "gpt2_lm",
        "lm_head gets a copy of the embedding matrix instead of the matrix itself: equal at the start, but a second "
        "parameter, whose gradient misses the embedding's part (and the model has a parameter GPT-2 does not)",
        ("gpt2.py", "self.lm_head.weight = self.transformer.wte.weight",
         "self.lm_head.weight = nn.Parameter(self.transformer.wte.weight.detach().clone())"),
        raises="not in the SPEC: ['lm_head.weight']"),
    bug("gpt2_positions_from_one", "gpt2_lm",
        "learned positions counted from 1: token t adds wpe row t + 1 (and the last position runs off the table)",
        ("gpt2.py", POSITIONS, POSITIONS + "\n        positions = positions + 1")),
    bug("gpt2_final_layernorm_left_out", "gpt2_lm",
        "ln_f is never applied: the head reads the last block's output",
        ("gpt2.py", "return body.ln_f(x) @ self.lm_head.weight.T", "return x @ self.lm_head.weight.T")),
    bug("gpt2_gelu_after_the_second_projection", "gpt2_lm",
        "the MLP applies GELU after c_proj instead of between c_fc and c_proj",
        ("gpt2.py", "return self.c_proj(gelu(self.c_fc(x)))", "return gelu(self.c_proj(self.c_fc(x)))")),
    bug("gpt2_positions_restart_after_the_cache", "gpt2_kv_cache",
        "with a KV cache, every chunk adds wpe rows 0 … m−1 again instead of continuing from the cache length",
        ("gpt2.py", POSITIONS, POSITIONS + "\n        positions = torch.arange(in_indices.shape[-1], device=in_indices.device)")),
    bug("gpt2_left_padding_shifts_positions", "gpt2_decoding",
        "a padded batch masks its pads but numbers positions over the padded width, so a left-padded row reads later "
        "rows of wpe than it does alone (RoPE would hide such a shift; learned positions do not)",
        ("gpt2.py", POSITIONS, POSITIONS + "\n        if attention_mask is not None:\n"
         "            positions = (" + PAST + " + torch.arange(in_indices.shape[-1], device=in_indices.device)).expand_as(in_indices)")),
]
