"""The pre-norm Transformer block and the decoder-only language model."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
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
        key_is_real: Bool[Tensor, "batch keys"] | None = None,
    ) -> Float[Tensor, "... seq d_model"]:
        x = x + self.attn(self.ln1(x), token_positions, kv_cache, key_is_real)
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
        self,
        in_indices: Int[Tensor, "batch seq"],
        kv_cache: KVCache | None = None,
        attention_mask: Bool[Tensor, "batch seq"] | None = None,
    ) -> Float[Tensor, "batch seq vocab_size"]:
        """Logits for every position. attention_mask (True = real token) marks the pads of a padded
        batch, on either side: each row's real tokens get the logits of that row run alone."""
        positions, key_is_real = self.positions(in_indices, kv_cache, attention_mask, self.config.context_length)
        x = self.token_embeddings(in_indices)
        for i, layer in enumerate(self.layers):
            x = layer(x, positions, kv_cache.layers[i] if kv_cache is not None else None, key_is_real)
        return self.lm_head(self.ln_final(x))

    @staticmethod
    def positions(
        in_indices: Int[Tensor, "batch seq"],
        kv_cache: KVCache | None,
        attention_mask: Bool[Tensor, "batch seq"] | None,
        context_length: int,
    ) -> tuple[Int[Tensor, "... seq"], Bool[Tensor, "batch keys"] | None]:
        """The new tokens' positions, and which keys are real (None: all of them). Raises ValueError when the
        cached and new tokens exceed context_length. Shared with the GPT-2 variant, whose positions are rows of wpe."""
        seq = in_indices.shape[-1]
        past = kv_cache.length if kv_cache is not None else 0
        if past + seq > context_length:
            raise ValueError(f"{past} cached + {seq} new tokens exceed context_length={context_length}")
        if attention_mask is None and (kv_cache is None or kv_cache.key_is_real is None):
            # With a cache, the new tokens continue where the cached ones stopped.
            return torch.arange(past, past + seq, device=in_indices.device), None
        return TransformerLM.padded_positions(in_indices, kv_cache, attention_mask)

    @staticmethod
    def padded_positions(
        in_indices: Int[Tensor, "batch seq"], kv_cache: KVCache | None, attention_mask: Bool[Tensor, "batch seq"] | None
    ) -> tuple[Int[Tensor, "batch seq"], Bool[Tensor, "batch keys"]]:
        """Each row's positions, counted over its real tokens only (cached ones included), and which
        keys (cached, then these) are real. The cache remembers the latter for the next chunks."""
        is_real = attention_mask if attention_mask is not None else torch.ones_like(in_indices, dtype=torch.bool)
        cached_is_real = is_real[:, :0]
        if kv_cache is not None:
            if kv_cache.key_is_real is None:  # everything cached so far was real
                kv_cache.key_is_real = torch.ones(is_real.shape[0], kv_cache.length, dtype=torch.bool,
                                                  device=is_real.device)
            cached_is_real = kv_cache.key_is_real
            kv_cache.key_is_real = torch.cat([cached_is_real, is_real], dim=-1)
        real_before = cached_is_real.sum(dim=-1, keepdim=True)  # (batch, 1): not the padded width
        # A pad gets the position of the real token before it (0 for leading pads); it is never attended.
        positions = (real_before + is_real.cumsum(dim=-1) - 1).clamp(min=0)
        return positions, torch.cat([cached_is_real, is_real], dim=-1)
