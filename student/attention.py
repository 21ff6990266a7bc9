"""Attention: scaled dot-product attention, the causal mask, RoPE, the KV cache, and
causal multi-head self-attention.

Layout used throughout: per-head tensors are (..., heads, seq, d_head), so that the last
two dims are the matrix that attention works on and everything in front (batch, heads)
is a batch-like dim. Same rules as layers.py: no `torch.nn.functional.softmax` /
`scaled_dot_product_attention`, no `nn.MultiheadAttention`, no bias.
"""

from __future__ import annotations

from jaxtyping import Bool, Float, Int
from torch import Tensor, nn


def scaled_dot_product_attention(
    Q: Float[Tensor, "... queries d_k"],
    K: Float[Tensor, "... keys d_k"],
    V: Float[Tensor, "... keys d_v"],
    mask: Bool[Tensor, "... queries keys"] | None = None,
) -> Float[Tensor, "... queries d_v"]:
    """Attention(Q, K, V) = softmax(Q Kᵀ / √d_k + M) V, softmax over the keys.

    Shapes: Q (..., queries, d_k), K (..., keys, d_k), V (..., keys, d_v) → (..., queries, d_v).
    The leading dims `...` (batch, heads, ...) are arbitrary and shared; `queries` may
    differ from `keys` (it does with a KV cache).

    mask: boolean, True = this query MAY attend to this key. M is 0 where mask is True
    and -inf where it is False; apply it with `scores.masked_fill(~mask, float("-inf"))`
    (or torch.where) before the softmax, so masked keys get weight exactly 0. No query row
    is ever fully masked in the tests. `mask=None` means everyone sees everyone. Use your
    own `softmax` from layers.py.

    The traps:
      * Flipped convention: torch's own attn_mask and many tutorials use True = BLOCKED.
        Here True = allowed.
      * Adding the boolean mask as numbers (scores + mask, i.e. +1 / +0): nothing gets
        masked. The mask must become -inf, not 1.
      * Scaling by d_k, by √d_model, or not at all. The scale is 1/√d_k with d_k = Q.shape[-1]
        (the per-head size when called from multi-head attention).
      * Softmax over the queries axis (dim=-2) instead of the keys axis (dim=-1).
    """
    raise NotImplementedError("scaled_dot_product_attention")


def causal_mask(num_queries: int, num_keys: int, device=None) -> Bool[Tensor, "queries keys"]:
    """Boolean (num_queries, num_keys) mask, True where query i may see key j.

    The queries are the LAST num_queries positions of the key sequence (bottom-right
    alignment): query i sits at absolute position p_i = num_keys − num_queries + i and may
    see key j iff j ≤ p_i. With num_queries == num_keys this is the usual lower triangle.

    Example, a KV cache holding 5 tokens and a chunk of 3 new ones (3 queries, 8 keys):

        query 0 (position 5): keys 0..5
        query 1 (position 6): keys 0..6
        query 2 (position 7): keys 0..7

    The trap: `torch.tril(torch.ones(num_queries, num_keys))` is TOP-left aligned: query 0
    would see only key 0. That is right for a full forward pass and silently wrong as soon
    as a KV cache makes num_queries < num_keys (decoding one token at a time would then
    let the new token see only the first key).
    """
    raise NotImplementedError("causal_mask")


class RotaryPositionalEmbedding(nn.Module):
    """RoPE: rotate each pair of features by an angle that grows with the token position.

    For a vector x of size d = d_k and integer position p, the pairs are INTERLEAVED:
    dims (2k, 2k+1) for k = 0 … d/2 − 1, rotated by the angle

        φ(p, k) = p · θ^(−2k/d)

        out[2k]   = x[2k] · cos φ − x[2k+1] · sin φ
        out[2k+1] = x[2k] · sin φ + x[2k+1] · cos φ

    Constructor: theta (θ, e.g. 10000), d_k (must be even; raise ValueError otherwise),
    max_seq_len (positions are < max_seq_len), device. No learnable parameters: precompute
    cos and sin tables of shape (max_seq_len, d_k/2) and keep them as buffers with
    `self.register_buffer(name, tensor, persistent=False)`. Compute the angles in float64
    and cast to x.dtype when used, so a float64 model stays exact.

    forward(x, token_positions): x (..., seq, d_k), token_positions (..., seq) integers,
    broadcastable against x's leading dims (e.g. (seq,) for every batch row). Look the
    angles up by token_positions; do not assume positions are 0..seq−1.

    The traps:
      * Rotating halves (x[:d/2] with x[d/2:], the GPT-NeoX / Llama-HF layout) instead of
        interleaved pairs (2k, 2k+1). Same maths, different weights: the reference
        disagrees.
      * Exponent −k/d, or using the dim index 2k where the pair index k belongs
        (θ^(−4k/d)). The frequency of pair k is θ^(−2k/d).
      * Storing the tables as nn.Parameter or as a persistent buffer: they then show up in
        parameters()/state_dict() and loading the SPEC weights fails on unexpected keys.
      * Applying RoPE to v. Only q and k are rotated.
    """

    def __init__(self, theta: float, d_k: int, max_seq_len: int, device=None):
        super().__init__()
        raise NotImplementedError("RotaryPositionalEmbedding.__init__: precompute the cos/sin buffers")

    def forward(
        self, x: Float[Tensor, "... seq d_k"], token_positions: Int[Tensor, "... seq"]
    ) -> Float[Tensor, "... seq d_k"]:
        """x (..., seq, d_k) rotated pair by pair at token_positions → (..., seq, d_k), x's dtype."""
        raise NotImplementedError("RotaryPositionalEmbedding.forward")


class LayerKVCache:
    """The keys and values that ONE attention layer has already computed.

    The interface the rest of the model relies on:
        LayerKVCache(max_seq_len)          an empty cache that can hold max_seq_len tokens
        .length -> int                     how many tokens it holds (0 when empty)
        .update(k, v) -> (k_all, v_all)    append the new chunk and return everything so far

    k, v are (..., heads, new, d_head): the new tokens' keys (already rotated by RoPE) and
    values; k_all, v_all are (..., heads, length + new, d_head), old tokens first. Raise
    ValueError if length + new would exceed max_seq_len.

    Storing keys AFTER RoPE is what makes caching work: a key's rotation depends only on
    its own position, which never changes.

    The trap: `torch.cat((cache, new))` at every step re-copies the whole cache, O(length)
    work per generated token, O(n²) for a sequence. Allocate buffers of max_seq_len slots
    once (on the first update, when you know batch, heads, dtype and device) and copy the
    new chunk into the next free slots; return views `[..., :length, :]`.
    """

    def __init__(self, max_seq_len: int):
        raise NotImplementedError("LayerKVCache.__init__: remember max_seq_len, start empty (length 0)")

    def update(
        self, k: Float[Tensor, "... heads new d_head"], v: Float[Tensor, "... heads new d_head"]
    ) -> tuple[Float[Tensor, "... heads total d_head"], Float[Tensor, "... heads total d_head"]]:
        raise NotImplementedError("LayerKVCache.update")


class KVCache:
    """The whole model's cache: one LayerKVCache per Transformer block.

    Interface:
        KVCache(num_layers, max_seq_len)
        .layers: list[LayerKVCache]    layer i's cache is .layers[i]
        .length -> int                 tokens already processed (all layers agree)

    The trap: sharing ONE LayerKVCache between all layers (then layer 2 reads layer 1's
    keys), or advancing the length once per layer instead of once per forward call.
    """

    def __init__(self, num_layers: int, max_seq_len: int):
        raise NotImplementedError("KVCache.__init__: one LayerKVCache per layer")

    @property
    def length(self) -> int:
        raise NotImplementedError("KVCache.length")


class MultiHeadSelfAttention(nn.Module):
    """Causal multi-head self-attention, with RoPE on q and k when `theta` is given.

        q, k, v = x W_qᵀ, x W_kᵀ, x W_vᵀ                        each (..., seq, d_model)
        split into heads                                       (..., heads, seq, d_head)
        q, k = RoPE(q, positions), RoPE(k, positions)           every head, same positions
        k, v = cache.update(k, v)                               if a cache is given
        out = scaled_dot_product_attention(q, k, v, causal)     (..., heads, seq, d_head)
        merge heads, project: out W_oᵀ                          (..., seq, d_model)

    Parameters (Linear layers, no bias), each weight (d_model, d_model):
        q_proj, k_proj, v_proj, output_proj
    d_head = d_model / num_heads (raise ValueError if it does not divide). Rows of the
    q/k/v weights are ordered (heads, d_head): output feature h·d_head + i is feature i of
    head h, so splitting is `(... seq (heads d_head)) -> (... heads seq d_head)`, and
    merging is the exact inverse, giving output_proj its input columns in (heads, d_head)
    order. One projection for all heads — no per-head weight matrices.

    Constructor: max_seq_len and theta are both None for attention without RoPE; with
    theta given, build `RotaryPositionalEmbedding(theta, d_head, max_seq_len)`. RoPE uses
    d_head, not d_model.

    forward(x, token_positions=None, kv_cache=None):
        x: (..., seq, d_model).
        token_positions: (..., seq) integers; None means past, past+1, …, past+seq−1 where
            past = kv_cache.length (0 without a cache). It has no heads dim: the same
            positions apply to every head, so add one (unsqueeze) before RoPE.
        kv_cache: a LayerKVCache or None. The causal mask is then (seq queries) × (past +
            seq keys), bottom-right aligned: use `causal_mask`.

    The traps:
      * Splitting heads as (d_head, heads) (`view(..., d_head, heads)`): runs, wrong numbers.
      * Merging with a reshape that skips the transpose back, which scrambles heads and
        positions together.
      * Scaling by √d_model instead of √d_head (happens if attention runs before the split).
      * Forgetting the mask, or a top-left `tril` that breaks with a KV cache.
      * With a cache: positions restarting at 0 for each chunk (they continue from
        kv_cache.length), or rotating keys again after reading them from the cache.
    """

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
        raise NotImplementedError(
            "MultiHeadSelfAttention.__init__: create q_proj, k_proj, v_proj, output_proj (and RoPE if theta)"
        )

    def forward(
        self,
        x: Float[Tensor, "... seq d_model"],
        token_positions: Int[Tensor, "... seq"] | None = None,
        kv_cache: LayerKVCache | None = None,
    ) -> Float[Tensor, "... seq d_model"]:
        """x (..., seq, d_model) → (..., seq, d_model); output i depends on inputs ≤ i only."""
        raise NotImplementedError("MultiHeadSelfAttention.forward")
