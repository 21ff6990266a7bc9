"""Attention: scaled dot-product attention, RoPE, the KV cache, causal multi-head self-attention."""

from __future__ import annotations

import math

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from .layers import Linear, softmax


def scaled_dot_product_attention(
    Q: Float[Tensor, "... queries d_k"],
    K: Float[Tensor, "... keys d_k"],
    V: Float[Tensor, "... keys d_v"],
    mask: Bool[Tensor, "... queries keys"] | None = None,
) -> Float[Tensor, "... queries d_v"]:
    """softmax(Q Kᵀ / √d_k + mask) V, where mask is True where a query may attend to a key."""
    d_k = Q.shape[-1]
    # Scaling Q (queries × d_k) instead of the scores (queries × keys): the same product, fewer multiplications.
    scores = (Q / math.sqrt(d_k)) @ K.transpose(-2, -1)  # (... queries, keys)
    if mask is not None:
        # The mask as 0 / −inf added in place: scores is a fresh tensor (the product's backward needs
        # Q and K, not scores), and an addition passes the gradient through untouched, where
        # masked_fill's backward would copy it and zero it at the mask.
        scores += torch.zeros(mask.shape, dtype=scores.dtype, device=scores.device).masked_fill_(~mask, float("-inf"))
    weights = softmax(scores, dim=-1)
    return weights @ V


def causal_mask(num_queries: int, num_keys: int, device=None) -> Bool[Tensor, "queries keys"]:
    """True where query i may see key j.

    The queries are the *last* num_queries positions of the key sequence (bottom-right
    alignment): with a KV cache holding 5 tokens and a chunk of 3 new ones, query 0 is
    position 5 and sees keys 0..5, not just key 0.
    """
    query_positions = torch.arange(num_keys - num_queries, num_keys, device=device)
    key_positions = torch.arange(num_keys, device=device)
    return key_positions[None, :] <= query_positions[:, None]


def padding_mask(num_queries: int, key_is_real: Bool[Tensor, "batch keys"]) -> Bool[Tensor, "batch 1 queries keys"]:
    """The causal mask of a padded batch: query i sees key j if j ≤ i and key j is a real token.

    A query also always sees itself: a pad's own row then is never empty (all −inf would give
    0/0 = NaN in the softmax, and a NaN in a pad's output would reach the real tokens through the
    next layer's values, since 0 · NaN is NaN). Real queries never see a pad.
    """
    num_keys = key_is_real.shape[-1]
    causal = causal_mask(num_queries, num_keys, device=key_is_real.device)
    query_slots = torch.arange(num_keys - num_queries, num_keys, device=key_is_real.device)
    itself = torch.arange(num_keys, device=key_is_real.device)[None, :] == query_slots[:, None]
    return (causal & (key_is_real[:, None, :] | itself))[:, None]  # one mask for every head


class RotaryPositionalEmbedding(nn.Module):
    """RoPE on interleaved pairs: dims (2k, 2k+1) rotate by angle pos · θ^(−2k/d).

    Pair k is the complex number x_2k + i·x_2k+1, and rotating it by an angle is multiplying
    it by e^{i·angle}: one complex product, where real arithmetic takes four products, a sum,
    a difference and a stack, each a pass over q or k, forward and backward.
    """

    def __init__(self, theta: float, d_k: int, max_seq_len: int, device=None):
        super().__init__()
        if d_k % 2:
            raise ValueError(f"RoPE needs an even head dimension, got d_k={d_k}")
        # Angles in float64 so that float64 models stay exact.
        pair = torch.arange(d_k // 2, dtype=torch.float64, device=device)
        inv_freq = theta ** (-2.0 * pair / d_k)
        positions = torch.arange(max_seq_len, dtype=torch.float64, device=device)
        angles = torch.outer(positions, inv_freq)  # (max_seq_len, d_k/2)
        # e^{i·angle} = cos(angle) + i·sin(angle)
        self.register_buffer("rotation", torch.polar(torch.ones_like(angles), angles), persistent=False)
        # The same table in complex64, for float32 (and 16-bit) inputs: casting the looked-up rows instead
        # costs a copy at every call, and decoding calls RoPE twice per layer for every token.
        self.register_buffer("rotation_complex64", self.rotation.to(torch.complex64), persistent=False)

    def forward(
        self, x: Float[Tensor, "... seq d_k"], token_positions: Int[Tensor, "... seq"]
    ) -> Float[Tensor, "... seq d_k"]:
        # Complex numbers exist for float32 and float64 only: 16-bit inputs rotate in float32.
        dtype = torch.promote_types(x.dtype, torch.float32)
        table = self.rotation if dtype == torch.float64 else self.rotation_complex64
        rotation = table[token_positions]  # (... seq, d_k/2)
        pairs = torch.view_as_complex(x.to(dtype).unflatten(-1, (-1, 2)).contiguous())  # dims (2k, 2k+1) as re, im
        rotated = torch.view_as_real(pairs * rotation)  # (... seq, d_k/2, 2)
        return rotated.flatten(-2).to(x.dtype)


class LayerKVCache:
    """Keys and values one attention layer has seen, in buffers preallocated to max_seq_len.

    Writing a new chunk is a copy into the buffer, so a token costs O(1) writes instead of
    the O(length) re-copy that torch.cat would do at every step.
    """

    def __init__(self, max_seq_len: int):
        self.max_seq_len = max_seq_len
        self.length = 0
        self.keys: Tensor | None = None
        self.values: Tensor | None = None

    def update(
        self, k: Float[Tensor, "... heads new d_head"], v: Float[Tensor, "... heads new d_head"]
    ) -> tuple[Float[Tensor, "... heads total d_head"], Float[Tensor, "... heads total d_head"]]:
        new = k.shape[-2]
        end = self.length + new
        if end > self.max_seq_len:
            raise ValueError(f"KV cache holds at most {self.max_seq_len} tokens; got {end}")
        if self.keys is None:
            buffer_shape = (*k.shape[:-2], self.max_seq_len, k.shape[-1])
            self.keys = k.new_empty(buffer_shape)
            self.values = v.new_empty(buffer_shape)
        self.keys[..., self.length : end, :] = k
        self.values[..., self.length : end, :] = v
        self.length = end
        return self.keys[..., :end, :], self.values[..., :end, :]


class KVCache:
    """One LayerKVCache per Transformer block, and which cached tokens are real (padded batches)."""

    def __init__(self, num_layers: int, max_seq_len: int):
        self.layers = [LayerKVCache(max_seq_len) for _ in range(num_layers)]
        # (batch, length): False at the pads of a padded batch; None while every cached token is real.
        self.key_is_real: Tensor | None = None

    @property
    def length(self) -> int:
        return self.layers[0].length


class MultiHeadSelfAttention(nn.Module):
    """Causal multi-head self-attention; RoPE on q and k when theta is given."""

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        max_seq_len: int | None = None,
        theta: float | None = None,
        device=None,
        dtype=None,
    ):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.d_head = d_model // num_heads
        self.q_proj = Linear(d_model, d_model, device=device, dtype=dtype)
        self.k_proj = Linear(d_model, d_model, device=device, dtype=dtype)
        self.v_proj = Linear(d_model, d_model, device=device, dtype=dtype)
        self.output_proj = Linear(d_model, d_model, device=device, dtype=dtype)
        self.rope = None
        if theta is not None:
            self.rope = RotaryPositionalEmbedding(theta, self.d_head, max_seq_len, device=device)

    def forward(
        self,
        x: Float[Tensor, "... seq d_model"],
        token_positions: Int[Tensor, "... seq"] | None = None,
        kv_cache: LayerKVCache | None = None,
        key_is_real: Bool[Tensor, "batch keys"] | None = None,
    ) -> Float[Tensor, "... seq d_model"]:
        """key_is_real: in a padded batch, False at the pads among the keys (the cached ones and these)."""
        seq = x.shape[-2]
        past = kv_cache.length if kv_cache is not None else 0
        if token_positions is None:
            token_positions = torch.arange(past, past + seq, device=x.device)

        # Rows of each projection are ordered (heads, d_head): (... seq d_model) -> (... heads seq d_head).
        def split_heads(t: Tensor) -> Tensor:
            return t.unflatten(-1, (self.num_heads, self.d_head)).transpose(-3, -2)

        q, k, v = split_heads(self.q_proj(x)), split_heads(self.k_proj(x)), split_heads(self.v_proj(x))

        if self.rope is not None:
            head_positions = token_positions.unsqueeze(-2)  # same positions for every head
            q = self.rope(q, head_positions)
            k = self.rope(k, head_positions)

        if kv_cache is not None:
            k, v = kv_cache.update(k, v)

        mask = None  # one new token and no pads (cached decoding): the last position sees every key
        if key_is_real is not None:
            mask = padding_mask(seq, key_is_real)
        elif seq > 1:
            mask = causal_mask(seq, k.shape[-2], device=x.device)
        out = scaled_dot_product_attention(q, k, v, mask)
        out = out.transpose(-3, -2).flatten(-2)  # (... seq, heads · d_head)
        return self.output_proj(out)
