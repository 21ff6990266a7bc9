"""The pre-norm Transformer block and the decoder-only language model."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from .attention import KVCache, LayerKVCache, MultiHeadSelfAttention
from .layers import Embedding, Linear, RMSNorm, SwiGLU


@dataclass
class TransformerConfig:
    vocab_size: int
    context_length: int
    d_model: int
    num_layers: int
    num_heads: int
    d_ff: int
    rope_theta: float = 10000.0


class TransformerBlock(nn.Module):
    """x = x + attn(ln1(x)); x = x + ffn(ln2(x))."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int, max_seq_len: int, theta: float, device=None, dtype=None):
        super().__init__()
        self.ln1 = RMSNorm(d_model, device=device, dtype=dtype)
        self.attn = MultiHeadSelfAttention(d_model, num_heads, max_seq_len, theta, device=device, dtype=dtype)
        self.ln2 = RMSNorm(d_model, device=device, dtype=dtype)
        self.ffn = SwiGLU(d_model, d_ff, device=device, dtype=dtype)

    def forward(
        self,
        x: Float[Tensor, "... seq d_model"],
        token_positions: Int[Tensor, "... seq"] | None = None,
        kv_cache: LayerKVCache | None = None,
    ) -> Float[Tensor, "... seq d_model"]:
        x = x + self.attn(self.ln1(x), token_positions, kv_cache)
        return x + self.ffn(self.ln2(x))


class TransformerLM(nn.Module):
    """token_embeddings → layers → ln_final → lm_head; returns unnormalised logits."""

    def __init__(self, config: TransformerConfig, device=None, dtype=None):
        super().__init__()
        self.config = config
        c = config
        self.token_embeddings = Embedding(c.vocab_size, c.d_model, device=device, dtype=dtype)
        self.layers = nn.ModuleList(
            TransformerBlock(c.d_model, c.num_heads, c.d_ff, c.context_length, c.rope_theta, device=device, dtype=dtype)
            for _ in range(c.num_layers)
        )
        self.ln_final = RMSNorm(c.d_model, device=device, dtype=dtype)
        self.lm_head = Linear(c.d_model, c.vocab_size, device=device, dtype=dtype)

    def make_kv_cache(self) -> KVCache:
        return KVCache(self.config.num_layers, self.config.context_length)

    def forward(
        self, in_indices: Int[Tensor, "batch seq"], kv_cache: KVCache | None = None
    ) -> Float[Tensor, "batch seq vocab_size"]:
        seq = in_indices.shape[-1]
        past = kv_cache.length if kv_cache is not None else 0
        if past + seq > self.config.context_length:
            raise ValueError(f"{past} cached + {seq} new tokens exceed context_length={self.config.context_length}")
        # With a cache, the new tokens continue where the cached ones stopped.
        positions = torch.arange(past, past + seq, device=in_indices.device)
        x = self.token_embeddings(in_indices)
        for i, layer in enumerate(self.layers):
            x = layer(x, positions, kv_cache.layers[i] if kv_cache is not None else None)
        return self.lm_head(self.ln_final(x))
