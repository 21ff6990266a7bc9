"""The small building blocks: Linear, Embedding, RMSNorm, SiLU, SwiGLU, softmax.

Rules for the whole assignment
------------------------------
* Build everything from tensors: `torch.empty` + `nn.Parameter` + `nn.init.trunc_normal_`,
  elementwise ops, reductions, indexing, `torch.einsum` / `einx` / `einops`.
* NOT allowed (they are the exercise): `nn.Linear`, `nn.Embedding`, `nn.RMSNorm`,
  `nn.MultiheadAttention`, and `torch.nn.functional.{linear, embedding, silu, softmax,
  log_softmax, scaled_dot_product_attention, cross_entropy, nll_loss}`.
* No bias anywhere. Every function takes any number of leading ("batch-like") dims `...`
  and keeps them, in the same order, in front of the output.
* Keep the input dtype and device: float64 in → float64 out (the grader compares in
  float64 against the reference).
* The grader builds each module with the constructor arguments below, then loads its own
  weights into the attributes named here (`weight`, `w1`, `w2`, `w3`). A parameter with
  another name, an extra parameter (a bias), or a transposed shape fails before any
  number is compared.
"""

from __future__ import annotations

from jaxtyping import Float, Int
from torch import Tensor, nn


class Linear(nn.Module):
    """y = x Wᵀ — a linear map without bias.

    Parameters (the grader loads into these):
        weight: (out_features, in_features), i.e. (d_out, d_in), the layout nn.Linear uses.
            Row o holds the coefficients of output feature o.

    Init: truncated normal, mean 0, std σ = sqrt(2 / (d_in + d_out)), cut at ±3σ
    (`nn.init.trunc_normal_`). Honour `device=` and `dtype=`.

    The trap: storing W as (d_in, d_out) and computing `x @ W`. With d_in == d_out every
    shape still matches and the output is silently W instead of Wᵀ. Write the product as
    an einsum whose labels say which axis is contracted:
    "... d_in, d_out d_in -> ... d_out".
    """

    def __init__(self, in_features: int, out_features: int, device=None, dtype=None):
        super().__init__()
        raise NotImplementedError("Linear.__init__: create self.weight of shape (out_features, in_features)")

    def forward(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_out"]:
        """x: (..., d_in) → (..., d_out). Any number of leading dims, including none."""
        raise NotImplementedError("Linear.forward")


class Embedding(nn.Module):
    """Lookup table: token id t → row t of a (vocab_size, d_model) matrix.

    Parameters:
        weight: (num_embeddings, embedding_dim) = (vocab_size, d_model).

    Init: truncated normal, mean 0, std 1, cut at ±3.

    The trap: a one-hot matrix product gives the same numbers but costs
    O(vocab · d_model) per token and memory to match; index the table instead. Token ids
    arrive with any leading shape (a single id, (seq,), (batch, seq), ...), and the output
    is that shape plus d_model.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, device=None, dtype=None):
        super().__init__()
        raise NotImplementedError("Embedding.__init__: create self.weight of shape (num_embeddings, embedding_dim)")

    def forward(self, token_ids: Int[Tensor, "..."]) -> Float[Tensor, "... d_model"]:
        """token_ids: (...) integers in [0, vocab_size) → (..., d_model)."""
        raise NotImplementedError("Embedding.forward")


class RMSNorm(nn.Module):
    """RMSNorm(x) = x / sqrt(mean(x², over the last dim) + eps) · g.

    Parameters:
        weight: (d_model,), the gain g, initialised to ones.
    Also keep `eps` (default 1e-5) as an attribute; it is a hyper-parameter, not a Parameter.

    Precision: compute in at least float32 and cast the result back to the input dtype.
    The dtype to compute in is `torch.promote_types(x.dtype, torch.float32)`: float16 and
    bfloat16 go up to float32, float32 stays, float64 STAYS float64.

    The traps:
      * eps outside the root (`x / (rms + eps)`): a different function; eps goes INSIDE.
      * `x.float()`: silently turns float64 into float32 and ruins float64 results.
      * Squaring in float16 overflows for |x| > 256; hence the upcast.
      * Averaging over every dim instead of the last one only.
      * Returning float32 for a bfloat16 input: cast back.
    """

    def __init__(self, d_model: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        raise NotImplementedError("RMSNorm.__init__: store eps, create self.weight = ones(d_model)")

    def forward(self, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        """x: (..., d_model) → (..., d_model), same dtype as x."""
        raise NotImplementedError("RMSNorm.forward")


def silu(x: Float[Tensor, "..."]) -> Float[Tensor, "..."]:
    """silu(x) = x · σ(x), elementwise; σ is the logistic sigmoid.

    `torch.sigmoid` is allowed; `torch.nn.functional.silu` is not.

    The trap: returning σ(x) alone. Second trap: writing σ as 1 / (1 + exp(-x)) by hand;
    for x ≈ -100 in float32, exp(-x) overflows and the GRADIENT becomes inf/inf = NaN
    (the forward value still looks fine). torch.sigmoid has no such problem.
    """
    raise NotImplementedError("silu")


class SwiGLU(nn.Module):
    """The position-wise feed-forward network: FFN(x) = W2( silu(W1 x) ⊙ W3 x ).

    Parameters (each a `Linear` from this file, so the weight keys are `w1.weight`, ...):
        w1: Linear(d_model → d_ff), weight (d_ff, d_model) — the GATED branch, goes through silu
        w3: Linear(d_model → d_ff), weight (d_ff, d_model) — the linear branch
        w2: Linear(d_ff → d_model), weight (d_model, d_ff) — projects back

    The trap: swapping w1 and w3 (putting silu on W3 x). The shapes are identical, so
    nothing crashes; only the comparison with the reference notices.
    """

    def __init__(self, d_model: int, d_ff: int, device=None, dtype=None):
        super().__init__()
        raise NotImplementedError("SwiGLU.__init__: create self.w1, self.w2, self.w3 as Linear layers")

    def forward(self, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        """x: (..., d_model) → (..., d_model)."""
        raise NotImplementedError("SwiGLU.forward")


def softmax(x: Float[Tensor, "..."], dim: int) -> Float[Tensor, "..."]:
    """exp(x) / Σ exp(x), normalised along `dim` (any dim, negative allowed); same shape.

    Numerical stability: softmax(x) = softmax(x − c) for any c constant along `dim`, so
    subtract the max along `dim` (keepdim=True) before exponentiating. Then the largest
    exponent is exp(0) = 1 and nothing overflows; inputs shifted by +1000 must still work.
    Entries equal to -inf (masked scores) must come out as exactly 0.

    The trap: `torch.exp(x)` first: exp(1000) = inf and inf / inf = NaN. Second trap:
    taking the max over the whole tensor, or over the wrong dim, instead of along `dim`.
    """
    raise NotImplementedError("softmax")
