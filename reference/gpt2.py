"""The GPT-2 variant: the same decoder-only LM with GPT-2's choices where the Llama-style model differs.

| part        | Llama-style model (model.py)       | GPT-2 (here)                                          |
| ----------- | ---------------------------------- | ----------------------------------------------------- |
| norm        | RMSNorm, no bias                   | LayerNorm: subtract the mean, then scale *and shift*  |
| positions   | RoPE on q and k                    | a learned table `wpe` added to the token embeddings   |
| feed-forward| SwiGLU, no biases                  | c_fc → GELU (tanh approximation) → c_proj, biases     |
| attention   | q/k/v/output projections, no bias  | one c_attn (q, k, v side by side) and c_proj, biases  |
| head        | its own lm_head                    | tied: the token embedding matrix, one tensor          |

Parameter names and layouts are exactly transformers' `GPT2LMHeadModel`, so its state dict loads
unchanged. Its linear layers are `Conv1D`s: the weight is stored `(d_in, d_out)`, the transpose
of `nn.Linear`'s, so `y = x W + b` with no transpose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from .attention import KVCache, LayerKVCache, causal_mask, padding_mask, scaled_dot_product_attention
from .layers import Embedding
from .model import TransformerLM


@dataclass
class GPT2Config:
    vocab_size: int
    context_length: int  # GPT-2's n_positions: the rows of the learned position table
    d_model: int
    num_layers: int
    num_heads: int
    d_ff: int  # GPT-2 uses 4 · d_model
    layer_norm_eps: float = 1e-5


class LayerNorm(nn.Module):
    """(x − mean(x)) / sqrt(var(x) + eps) · weight + bias, over the last dim, computed in at least float32.

    The variance is the biased one (divide by d, not d − 1), as torch and GPT-2 compute it.
    """

    def __init__(self, d_model: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(d_model, device=device, dtype=dtype))

    def forward(self, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        in_dtype = x.dtype
        x = x.to(torch.promote_types(in_dtype, torch.float32))
        centred = x - x.mean(dim=-1, keepdim=True)
        inv_std = torch.rsqrt(centred.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return (centred * inv_std * self.weight.to(x.dtype) + self.bias.to(x.dtype)).to(in_dtype)


def gelu(x: Float[Tensor, "..."]) -> Float[Tensor, "..."]:
    """GELU, tanh approximation (GPT-2's "gelu_new"): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).

    Not the exact x·Φ(x) with erf: the two differ by up to about 5e-4, far above float32's tolerance.
    """
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


class Conv1D(nn.Module):
    """GPT-2's linear layer: y = x W + b with W stored (d_in, d_out), the transpose of nn.Linear's."""

    def __init__(self, d_in: int, d_out: int, device=None, dtype=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_in, d_out, device=device, dtype=dtype).normal_(std=0.02))
        self.bias = nn.Parameter(torch.zeros(d_out, device=device, dtype=dtype))

    def forward(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_out"]:
        return x @ self.weight + self.bias  # (... d_in) @ (d_in d_out): no transpose, unlike Linear


class GPT2Attention(nn.Module):
    """Causal multi-head self-attention; q, k and v come out of one projection, c_attn, side by side."""

    def __init__(self, d_model: int, num_heads: int, device=None, dtype=None):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.c_attn = Conv1D(d_model, 3 * d_model, device=device, dtype=dtype)  # columns: q | k | v
        self.c_proj = Conv1D(d_model, d_model, device=device, dtype=dtype)

    def forward(
        self,
        x: Float[Tensor, "batch seq d_model"],
        kv_cache: LayerKVCache | None = None,
        key_is_real: Bool[Tensor, "batch keys"] | None = None,
    ) -> Float[Tensor, "batch seq d_model"]:
        seq = x.shape[-2]
        q, k, v = self.c_attn(x).chunk(3, dim=-1)  # each (batch, seq, d_model), columns ordered (heads, d_head)

        def split_heads(t: Tensor) -> Tensor:  # (batch, seq, d_model) -> (batch, heads, seq, d_head)
            return t.unflatten(-1, (self.num_heads, -1)).transpose(-3, -2)

        q, k, v = split_heads(q), split_heads(k), split_heads(v)
        if kv_cache is not None:
            k, v = kv_cache.update(k, v)
        mask = causal_mask(seq, k.shape[-2], device=x.device) if key_is_real is None else padding_mask(seq, key_is_real)
        out = scaled_dot_product_attention(q, k, v, mask)
        return self.c_proj(out.transpose(-3, -2).flatten(-2))


class GPT2MLP(nn.Module):
    """c_proj(gelu(c_fc(x)))."""

    def __init__(self, d_model: int, d_ff: int, device=None, dtype=None):
        super().__init__()
        self.c_fc = Conv1D(d_model, d_ff, device=device, dtype=dtype)
        self.c_proj = Conv1D(d_ff, d_model, device=device, dtype=dtype)

    def forward(self, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        return self.c_proj(gelu(self.c_fc(x)))


class GPT2Block(nn.Module):
    """Pre-norm, as the Llama-style block: x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.ln_1 = LayerNorm(d_model, eps, device=device, dtype=dtype)
        self.attn = GPT2Attention(d_model, num_heads, device=device, dtype=dtype)
        self.ln_2 = LayerNorm(d_model, eps, device=device, dtype=dtype)
        self.mlp = GPT2MLP(d_model, d_ff, device=device, dtype=dtype)

    def forward(self, x, kv_cache: LayerKVCache | None = None, key_is_real: Tensor | None = None):
        x = x + self.attn(self.ln_1(x), kv_cache, key_is_real)
        return x + self.mlp(self.ln_2(x))


class GPT2Transformer(nn.Module):
    """The body, named as transformers names it (`transformer.` in the state dict)."""

    def __init__(self, config: GPT2Config, device=None, dtype=None):
        super().__init__()
        c = config
        self.wte = Embedding(c.vocab_size, c.d_model, device=device, dtype=dtype)
        self.wpe = Embedding(c.context_length, c.d_model, device=device, dtype=dtype)
        # GPT-2's init, std 0.02: the Llama-style Embedding draws std 1, which through the tied head
        # would start training with logits of size √d_model and a loss near 40.
        for table in (self.wte, self.wpe):
            nn.init.normal_(table.weight, std=0.02)
        self.h = nn.ModuleList(
            GPT2Block(c.d_model, c.num_heads, c.d_ff, c.layer_norm_eps, device=device, dtype=dtype)
            for _ in range(c.num_layers)
        )
        self.ln_f = LayerNorm(c.d_model, c.layer_norm_eps, device=device, dtype=dtype)


class GPT2LM(nn.Module):
    """wte(tokens) + wpe(positions) → blocks → ln_f → logits = x · wteᵀ (the tied head).

    The same interface as TransformerLM (a KV cache, padded batches), so `generate` and
    `perplexity` run it unchanged.
    """

    def __init__(self, config: GPT2Config, device=None, dtype=None):
        super().__init__()
        self.config = config
        self.transformer = GPT2Transformer(config, device=device, dtype=dtype)
        # Tied: lm_head.weight *is* the embedding matrix (one tensor, one gradient), as in GPT-2.
        # A copy would start equal and drift apart in training; its gradient would miss the head's part.
        self.lm_head = nn.Module()  # holds the name `lm_head.weight` that GPT-2's state dict has
        self.lm_head.weight = self.transformer.wte.weight

    def make_kv_cache(self) -> KVCache:
        return KVCache(self.config.num_layers, self.config.context_length)

    def forward(
        self,
        in_indices: Int[Tensor, "batch seq"],
        kv_cache: KVCache | None = None,
        attention_mask: Bool[Tensor, "batch seq"] | None = None,
    ) -> Float[Tensor, "batch seq vocab_size"]:
        # After a cache, positions continue from its length (the first new token reads wpe row `past`, not 0);
        # in a padded batch they count each row's real tokens only: the Llama-style model's rule.
        positions, key_is_real = TransformerLM.positions(in_indices, kv_cache, attention_mask, self.config.context_length)
        body = self.transformer
        x = body.wte(in_indices) + body.wpe(positions)  # (batch, seq, d_model)
        for i, block in enumerate(body.h):
            x = block(x, kv_cache.layers[i] if kv_cache is not None else None, key_is_real)
        return body.ln_f(x) @ self.lm_head.weight.T  # (batch, seq, vocab_size)
