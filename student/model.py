"""The pre-norm Transformer block and the decoder-only language model.

    in_indices (batch, seq)
      → token_embeddings                      (batch, seq, d_model)
      → layers[0] … layers[num_layers − 1]    (batch, seq, d_model)
      → ln_final                              (batch, seq, d_model)
      → lm_head                               (batch, seq, vocab_size)   unnormalised logits

State-dict names the grader loads weights into (SPEC §2):

    token_embeddings.weight                (vocab_size, d_model)
    layers.{i}.attn.q_proj.weight          (d_model, d_model)   # rows ordered (num_heads, d_head)
    layers.{i}.attn.k_proj.weight          (d_model, d_model)
    layers.{i}.attn.v_proj.weight          (d_model, d_model)
    layers.{i}.attn.output_proj.weight     (d_model, d_model)
    layers.{i}.ln1.weight                  (d_model,)
    layers.{i}.ffn.w1.weight               (d_ff, d_model)
    layers.{i}.ffn.w2.weight               (d_model, d_ff)
    layers.{i}.ffn.w3.weight               (d_ff, d_model)
    layers.{i}.ln2.weight                  (d_model,)
    ln_final.weight                        (d_model,)
    lm_head.weight                         (vocab_size, d_model)

`model.state_dict().keys()` must be exactly this set: no extra parameters or persistent
buffers, nothing missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

# The pieces you will assemble here.
from .attention import KVCache, LayerKVCache, MultiHeadSelfAttention  # noqa: F401
from .layers import Embedding, Linear, RMSNorm, SwiGLU  # noqa: F401


@dataclass
class TransformerConfig:
    """Hyper-parameters of a TransformerLM (given, not part of the exercise)."""

    vocab_size: int
    context_length: int  # the longest sequence the model (and its KV cache) accepts
    d_model: int
    num_layers: int
    num_heads: int
    d_ff: int
    rope_theta: float = 10000.0


class TransformerBlock(nn.Module):
    """Pre-norm block:

        x = x + attn(ln1(x))
        x = x + ffn(ln2(x))

    Sub-modules (names are the state-dict prefixes):
        ln1, ln2: RMSNorm(d_model)
        attn:     MultiHeadSelfAttention(d_model, num_heads, max_seq_len, theta)  — causal, RoPE
        ffn:      SwiGLU(d_model, d_ff)
    Pass device= and dtype= on to every sub-module.

    forward(x, token_positions=None, kv_cache=None): x (..., seq, d_model); the positions
    and this layer's LayerKVCache are handed to attn unchanged.

    The traps:
      * Post-norm (`x = ln1(x + attn(x))`): the original 2017 layout, not this one.
      * Adding the residual to the NORMALISED input (`h = ln1(x); x = h + attn(h)`): the
        residual stream must carry the un-normalised x.
      * One RMSNorm shared by both sub-layers: there are two, with separate gains.
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, max_seq_len: int, theta: float, device=None, dtype=None):
        super().__init__()
        raise NotImplementedError("TransformerBlock.__init__: create ln1, attn, ln2, ffn")

    def forward(
        self,
        x: Float[Tensor, "... seq d_model"],
        token_positions: Int[Tensor, "... seq"] | None = None,
        kv_cache: LayerKVCache | None = None,
    ) -> Float[Tensor, "... seq d_model"]:
        """x (..., seq, d_model) → (..., seq, d_model)."""
        raise NotImplementedError("TransformerBlock.forward")


class TransformerLM(nn.Module):
    """Decoder-only language model: token ids → next-token logits at every position.

    Sub-modules:
        token_embeddings: Embedding(vocab_size, d_model)
        layers:           nn.ModuleList of num_layers TransformerBlock(d_model, num_heads,
                          d_ff, max_seq_len=context_length, theta=rope_theta)
        ln_final:         RMSNorm(d_model)
        lm_head:          Linear(d_model, vocab_size)
    No positional embedding table (RoPE inside attention does positions), no dropout, no
    bias, and lm_head is NOT tied to token_embeddings (two separate matrices). Keep the
    config as `self.config`; decoding reads `model.config.context_length`.

    forward(in_indices, kv_cache=None) returns logits (batch, seq, vocab_size):
    `logits[b, i]` scores the token that FOLLOWS in_indices[b, i], having seen tokens 0..i.
    Without a cache the positions are 0 … seq−1. With a cache (from `make_kv_cache()`),
    in_indices are the next tokens after the `kv_cache.length` already processed ones:
    their positions are past … past+seq−1, and layer i uses `kv_cache.layers[i]`. Raise
    ValueError when past + seq > context_length.

    Whatever the chunking, the logits must agree with one full forward pass:

        full = model(ids)                                           # (b, n, V)
        cache = model.make_kv_cache()
        parts = [model(ids[:, :5], cache), model(ids[:, 5:6], cache), model(ids[:, 6:], cache)]
        torch.cat(parts, dim=1) ≈ full

    Training pairs logits with the NEXT token (the shift is the caller's job, not the
    model's or the loss's):

        logits = model(ids)                                          # (b, n, V)
        loss = cross_entropy(logits[:, :-1], ids[:, 1:])             # position i predicts i+1

    The traps:
      * Returning probabilities (softmax) instead of unnormalised logits.
      * Tying lm_head to token_embeddings, or forgetting ln_final.
      * With a cache: positions restarting at 0 for each chunk (must continue from
        kv_cache.length), or a top-left causal mask (see attention.causal_mask).
      * Decoding by re-running the whole prefix at every step: correct numbers, O(n²)
        work; with a cache one new token costs O(context), and only logits[:, -1] is
        needed to pick it.
    """

    def __init__(self, config: TransformerConfig, device=None, dtype=None):
        super().__init__()
        raise NotImplementedError("TransformerLM.__init__: create token_embeddings, layers, ln_final, lm_head")

    def make_kv_cache(self) -> KVCache:
        """A fresh, empty KVCache for this model: num_layers layers, context_length tokens."""
        raise NotImplementedError("TransformerLM.make_kv_cache")

    def forward(
        self,
        in_indices: Int[Tensor, "batch seq"],
        kv_cache: KVCache | None = None,
        attention_mask: Bool[Tensor, "batch seq"] | None = None,
    ) -> Float[Tensor, "batch seq vocab_size"]:
        """in_indices (batch, seq) → unnormalised logits (batch, seq, vocab_size).

        Padded batches (do this last): attention_mask (batch, seq), True at real tokens and
        False at pads, which may be on the left (["pad", "pad", "The", "cat"]) or on the right.
        For every row, the logits at its real tokens must equal those of the row run alone,
        without its pads; the logits at pads are not graded. Three things make that true:
          * positions count the row's real tokens only: with a cache, they continue from the
            number of REAL tokens cached in that row, not from kv_cache.length (the padded
            width); (batch, seq) positions, one row each (token_positions may be per row);
          * no query attends to a pad: the causal mask AND "the key is real", kept in the cache
            for the later chunks (which may come without a mask: then all their tokens are real);
          * a pad's own query must still see something (e.g. itself): a row of −inf only gives
            NaN, and a NaN in a pad's output reaches the real tokens through the next layer's
            values (0 · NaN = NaN).
        With RoPE, left padding only shifts a row's positions by a constant, which attention does
        not see; right padding followed by more tokens (a cache) does.
        """
        raise NotImplementedError("TransformerLM.forward")
