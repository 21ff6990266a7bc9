"""The GPT-2 variant: the same decoder-only LM, with GPT-2's choices where it differs.

    in_indices (batch, seq)
      → transformer.wte(tokens) + transformer.wpe(positions)   (batch, seq, d_model)
      → transformer.h[0] … h[num_layers − 1]                   (batch, seq, d_model)
      → transformer.ln_f                                       (batch, seq, d_model)
      → x · wteᵀ  (the tied lm_head)                           (batch, seq, vocab_size)

What differs from the Llama-style model (model.py), and where students slip:

- LayerNorm, not RMSNorm: subtract the mean, divide by sqrt(var + eps) (the biased variance,
  eps 1e-5 inside the root), then `· weight + bias`.
- GELU with the tanh approximation (GPT-2's "gelu_new"), not the exact erf form.
- Learned absolute positions: `wpe` is a (context_length, d_model) table added to the token
  embeddings; after a KV cache the positions continue from the cache length.
- Biases in every projection (c_attn, c_proj, c_fc, c_proj).
- The Conv1D layout: GPT-2 stores every projection weight as (d_in, d_out), the transpose of
  Linear's, so `y = x W + b`. c_attn's 3·d_model columns are q | k | v, each split into heads
  as (num_heads, d_head), like the Llama-style q_proj rows.
- The tied head: `lm_head.weight` IS `transformer.wte.weight` (one Parameter, so its gradient
  gets both the embedding's and the head's part). A copy is not tied.

State-dict names and shapes, exactly those of transformers' GPT2LMHeadModel (so a GPT-2
checkpoint loads unchanged):

    transformer.wte.weight                  (vocab_size, d_model)
    transformer.wpe.weight                  (context_length, d_model)
    transformer.h.{i}.ln_1.weight, .bias    (d_model,)
    transformer.h.{i}.attn.c_attn.weight    (d_model, 3·d_model)    bias (3·d_model,)
    transformer.h.{i}.attn.c_proj.weight    (d_model, d_model)      bias (d_model,)
    transformer.h.{i}.ln_2.weight, .bias    (d_model,)
    transformer.h.{i}.mlp.c_fc.weight       (d_model, d_ff)         bias (d_ff,)
    transformer.h.{i}.mlp.c_proj.weight     (d_ff, d_model)         bias (d_model,)
    transformer.ln_f.weight, .bias          (d_model,)
    lm_head.weight                          (vocab_size, d_model)   the same tensor as transformer.wte.weight

`model.named_parameters()` lists the tied weight once (as transformer.wte.weight); the grader
loads its weights by those names. GPT2LM has TransformerLM's interface (config.context_length,
make_kv_cache(), forward(in_indices, kv_cache=None, attention_mask=None)), so your `generate`
and `perplexity` run it unchanged.

You may not call torch.nn.LayerNorm / F.layer_norm or F.gelu: these are the exercise.
"""

from __future__ import annotations

from dataclasses import dataclass

from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

# The pieces you can reuse from the Llama-style model.
from .attention import KVCache, LayerKVCache, scaled_dot_product_attention  # noqa: F401
from .layers import Embedding  # noqa: F401


@dataclass
class GPT2Config:
    """Hyper-parameters of a GPT2LM (given, not part of the exercise)."""

    vocab_size: int
    context_length: int  # GPT-2's n_positions: the rows of the position table, the longest sequence
    d_model: int
    num_layers: int
    num_heads: int
    d_ff: int  # GPT-2 uses 4 · d_model
    layer_norm_eps: float = 1e-5


class LayerNorm(nn.Module):
    """y = (x − mean(x)) / sqrt(var(x) + eps) · weight + bias over the last dim.

    var is the biased variance (mean of squared deviations, divided by d_model). Parameters:
    weight (d_model,) initialised to ones, bias (d_model,) to zeros. Compute in at least float32
    and return the input's dtype (as RMSNorm).
    """

    def __init__(self, d_model: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        raise NotImplementedError("LayerNorm.__init__")

    def forward(self, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        raise NotImplementedError("LayerNorm.forward")


def gelu(x: Float[Tensor, "..."]) -> Float[Tensor, "..."]:
    """GELU, tanh approximation: 0.5 · x · (1 + tanh(sqrt(2/π) · (x + 0.044715 · x³))).

    Not the exact x·Φ(x) (erf): the two differ by up to about 5e-4, which the grader sees.
    """
    raise NotImplementedError("gelu")


class Conv1D(nn.Module):
    """GPT-2's linear layer: y = x W + b, with weight (d_in, d_out) (transposed vs Linear) and bias (d_out,)."""

    def __init__(self, d_in: int, d_out: int, device=None, dtype=None):
        super().__init__()
        raise NotImplementedError("Conv1D.__init__")

    def forward(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_out"]:
        raise NotImplementedError("Conv1D.forward")


class GPT2Attention(nn.Module):
    """Causal multi-head self-attention with sub-modules c_attn = Conv1D(d_model, 3·d_model)
    (columns q | k | v) and c_proj = Conv1D(d_model, d_model). With a KV cache, the new queries see
    every cached key (bottom-right causal mask); with key_is_real (a padded batch), never a pad."""

    def __init__(self, d_model: int, num_heads: int, device=None, dtype=None):
        super().__init__()
        raise NotImplementedError("GPT2Attention.__init__")

    def forward(
        self,
        x: Float[Tensor, "batch seq d_model"],
        kv_cache: LayerKVCache | None = None,
        key_is_real: Bool[Tensor, "batch keys"] | None = None,
    ) -> Float[Tensor, "batch seq d_model"]:
        raise NotImplementedError("GPT2Attention.forward")


class GPT2LM(nn.Module):
    """transformer.{wte, wpe, h, ln_f} and the tied lm_head (see the module docstring).

    forward(in_indices, kv_cache=None, attention_mask=None) returns logits (batch, seq, vocab_size):
    - positions 0 … seq−1, or past … past+seq−1 after a KV cache holding `past` tokens;
    - with attention_mask (True = real token), each row's positions count its real tokens only and
      pads are never attended to, as in TransformerLM;
    - more than context_length tokens (cached + new) raises ValueError.
    make_kv_cache() returns an empty KVCache for num_layers layers.
    """

    def __init__(self, config: GPT2Config, device=None, dtype=None):
        super().__init__()
        raise NotImplementedError("GPT2LM.__init__")

    def make_kv_cache(self) -> KVCache:
        raise NotImplementedError("GPT2LM.make_kv_cache")

    def forward(
        self,
        in_indices: Int[Tensor, "batch seq"],
        kv_cache: KVCache | None = None,
        attention_mask: Bool[Tensor, "batch seq"] | None = None,
    ) -> Float[Tensor, "batch seq vocab_size"]:
        raise NotImplementedError("GPT2LM.forward")
