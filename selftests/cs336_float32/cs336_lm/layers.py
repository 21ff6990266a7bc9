"""Basic building blocks of the Transformer LM (CS336 assignment 1), written from elementary ops."""

import math

import einx
import torch
from torch import Tensor, nn


class Linear(nn.Module):
    """y = x W^T, no bias. weight: (out_features, in_features)."""

    def __init__(self, in_features: int, out_features: int, device=None, dtype=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features, device=device, dtype=dtype))
        std = math.sqrt(2.0 / (in_features + out_features))
        nn.init.trunc_normal_(self.weight, mean=0.0, std=std, a=-3 * std, b=3 * std)

    def forward(self, x: Tensor) -> Tensor:
        # x: (..., d_in) -> (..., d_out)
        return einx.dot("... d_in, d_out d_in -> ... d_out", x, self.weight)


class Embedding(nn.Module):
    """Lookup table. weight: (num_embeddings, embedding_dim)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, device=None, dtype=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_embeddings, embedding_dim, device=device, dtype=dtype))
        nn.init.trunc_normal_(self.weight, mean=0.0, std=1.0, a=-3.0, b=3.0)

    def forward(self, token_ids: Tensor) -> Tensor:
        # token_ids: (...) -> (..., d_model)
        return self.weight[token_ids]


class RMSNorm(nn.Module):
    def __init__(self, d_model: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model, device=device, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        # x: (..., d_model) -> (..., d_model); computed in float32, cast back
        in_dtype = x.dtype
        x = x.to(torch.float32)
        inv_rms = torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)  # (..., 1)
        return (x * inv_rms * self.weight).to(in_dtype)


def silu(x: Tensor) -> Tensor:
    return x * torch.sigmoid(x)


class SwiGLU(nn.Module):
    """FFN(x) = W2(silu(W1 x) * W3 x)."""

    def __init__(self, d_model: int, d_ff: int, device=None, dtype=None):
        super().__init__()
        self.w1 = Linear(d_model, d_ff, device=device, dtype=dtype)
        self.w2 = Linear(d_ff, d_model, device=device, dtype=dtype)
        self.w3 = Linear(d_model, d_ff, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        # x: (..., d_model) -> hidden (..., d_ff) -> (..., d_model)
        return self.w2(silu(self.w1(x)) * self.w3(x))


def softmax(x: Tensor, dim: int) -> Tensor:
    """Numerically stable softmax along `dim`."""
    shifted = x - x.max(dim=dim, keepdim=True).values
    e = torch.exp(shifted)
    return e / e.sum(dim=dim, keepdim=True)


class RotaryPositionalEmbedding(nn.Module):
    """RoPE on interleaved pairs (2k, 2k+1), angle = pos * theta^(-2k/d)."""

    def __init__(self, theta: float, d_k: int, max_seq_len: int, device=None):
        super().__init__()
        assert d_k % 2 == 0, "RoPE needs an even d_k"
        inv_freq = 1.0 / (theta ** (torch.arange(0, d_k, 2, device=device, dtype=torch.float32) / d_k))  # (d_k/2,)
        positions = torch.arange(max_seq_len, device=device, dtype=torch.float32)  # (max_seq_len,)
        angles = torch.outer(positions, inv_freq)  # (max_seq_len, d_k/2)
        self.register_buffer("cos", torch.cos(angles), persistent=False)
        self.register_buffer("sin", torch.sin(angles), persistent=False)

    def forward(self, x: Tensor, token_positions: Tensor) -> Tensor:
        # x: (..., seq, d_k); token_positions: (..., seq) broadcastable against x's leading dims
        cos = self.cos[token_positions]  # (..., seq, d_k/2)
        sin = self.sin[token_positions]
        x_even, x_odd = x[..., 0::2], x[..., 1::2]  # (..., seq, d_k/2) each
        out_even = x_even * cos - x_odd * sin
        out_odd = x_even * sin + x_odd * cos
        return torch.stack((out_even, out_odd), dim=-1).flatten(-2)  # (..., seq, d_k)


def scaled_dot_product_attention(Q: Tensor, K: Tensor, V: Tensor, mask: Tensor | None = None) -> Tensor:
    """softmax(Q K^T / sqrt(d_k) + mask) V; mask is boolean, True = may attend."""
    # Q: (..., q, d_k), K: (..., k, d_k), V: (..., k, d_v)
    d_k = Q.shape[-1]
    scores = Q @ K.transpose(-2, -1) / math.sqrt(d_k)  # (..., q, k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = softmax(scores, dim=-1)  # (..., q, k)
    return weights @ V  # (..., q, d_v)


class LayerKVCache:
    """Keys (after RoPE) and values of one attention layer, shape (batch, heads, cached, d_head)."""

    def __init__(self):
        self.k: Tensor | None = None
        self.v: Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[-2]

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        self.k = k if self.k is None else torch.cat((self.k, k), dim=-2)
        self.v = v if self.v is None else torch.cat((self.v, v), dim=-2)
        return self.k, self.v


class MultiHeadSelfAttention(nn.Module):
    """Causal multi-head self-attention, optionally with RoPE on q and k."""

    def __init__(self, d_model: int, num_heads: int, max_seq_len: int | None = None,
                 theta: float | None = None, device=None, dtype=None):
        super().__init__()
        assert d_model % num_heads == 0
        self.num_heads = num_heads
        self.d_head = d_model // num_heads
        self.q_proj = Linear(d_model, d_model, device=device, dtype=dtype)
        self.k_proj = Linear(d_model, d_model, device=device, dtype=dtype)
        self.v_proj = Linear(d_model, d_model, device=device, dtype=dtype)
        self.output_proj = Linear(d_model, d_model, device=device, dtype=dtype)
        self.rope = None
        if theta is not None:
            self.rope = RotaryPositionalEmbedding(theta, self.d_head, max_seq_len, device=device)

    def forward(self, x: Tensor, token_positions: Tensor | None = None,
                kv_cache: LayerKVCache | None = None) -> Tensor:
        # x: (..., seq, d_model)
        seq = x.shape[-2]
        past = 0 if kv_cache is None else len(kv_cache)
        q = einx.id("... s (h d) -> ... h s d", self.q_proj(x), h=self.num_heads)  # (..., h, seq, d_head)
        k = einx.id("... s (h d) -> ... h s d", self.k_proj(x), h=self.num_heads)
        v = einx.id("... s (h d) -> ... h s d", self.v_proj(x), h=self.num_heads)
        if self.rope is not None:
            if token_positions is None:
                token_positions = torch.arange(past, past + seq, device=x.device)  # (seq,)
            pos = token_positions.unsqueeze(-2)  # (..., 1, seq): same positions for every head
            q = self.rope(q, pos)
            k = self.rope(k, pos)
        if kv_cache is not None:
            k, v = kv_cache.update(k, v)  # (..., h, past + seq, d_head)
        n_keys = k.shape[-2]
        # causal, bottom-right aligned: query i sits at key index i + (n_keys - seq)
        qi = torch.arange(seq, device=x.device)[:, None]
        kj = torch.arange(n_keys, device=x.device)[None, :]
        mask = kj <= qi + (n_keys - seq)  # (seq, n_keys)
        out = scaled_dot_product_attention(q, k, v, mask)  # (..., h, seq, d_head)
        out = einx.id("... h s d -> ... s (h d)", out)  # (..., seq, d_model)
        return self.output_proj(out)
