"""Pre-norm Transformer block and the decoder-only Transformer LM, with a KV cache."""

import torch
from torch import Tensor, nn

from .layers import Embedding, LayerKVCache, Linear, MultiHeadSelfAttention, RMSNorm, SwiGLU


class KVCache:
    """One LayerKVCache per layer; its length is the number of positions already seen."""

    def __init__(self, num_layers: int):
        self.layers = [LayerKVCache() for _ in range(num_layers)]

    def __len__(self) -> int:
        return len(self.layers[0])


class TransformerBlock(nn.Module):
    def __init__(self, d_model: int, num_heads: int, d_ff: int, max_seq_len: int, theta: float,
                 device=None, dtype=None):
        super().__init__()
        self.ln1 = RMSNorm(d_model, device=device, dtype=dtype)
        self.attn = MultiHeadSelfAttention(d_model, num_heads, max_seq_len, theta, device=device, dtype=dtype)
        self.ln2 = RMSNorm(d_model, device=device, dtype=dtype)
        self.ffn = SwiGLU(d_model, d_ff, device=device, dtype=dtype)

    def forward(self, x: Tensor, token_positions: Tensor | None = None,
                kv_cache: LayerKVCache | None = None) -> Tensor:
        # x: (batch, seq, d_model) -> (batch, seq, d_model)
        x = x + self.attn(self.ln1(x), token_positions, kv_cache)
        return x + self.ffn(self.ln2(x))


class TransformerLM(nn.Module):
    def __init__(self, vocab_size: int, context_length: int, d_model: int, num_layers: int,
                 num_heads: int, d_ff: int, rope_theta: float, device=None, dtype=None):
        super().__init__()
        self.context_length = context_length
        self.token_embeddings = Embedding(vocab_size, d_model, device=device, dtype=dtype)
        self.layers = nn.ModuleList(
            TransformerBlock(d_model, num_heads, d_ff, context_length, rope_theta, device=device, dtype=dtype)
            for _ in range(num_layers)
        )
        self.ln_final = RMSNorm(d_model, device=device, dtype=dtype)
        self.lm_head = Linear(d_model, vocab_size, device=device, dtype=dtype)

    def new_cache(self) -> KVCache:
        return KVCache(len(self.layers))

    def forward(self, in_indices: Tensor, kv_cache: KVCache | None = None) -> Tensor:
        # in_indices: (batch, seq) -> logits (batch, seq, vocab)
        seq = in_indices.shape[-1]
        past = 0 if kv_cache is None else len(kv_cache)
        if past + seq > self.context_length:
            raise ValueError(f"{past + seq} positions exceed context_length={self.context_length}")
        positions = torch.arange(past, past + seq, device=in_indices.device)  # (seq,)
        x = self.token_embeddings(in_indices)  # (batch, seq, d_model)
        for i, layer in enumerate(self.layers):
            x = layer(x, positions, None if kv_cache is None else kv_cache.layers[i])
        return self.lm_head(self.ln_final(x))
