"""Every tolerance of the suite, in one table: one row per (component, dtype, device), each with its reason.

Ground truth is the reference run in float64 on the CPU, on the very float32 values the
implementation under test received (so input rounding is not counted as error). An output is
judged element by element:

    |got − expected| ≤ atol · max|expected| + rtol · |expected|

The absolute part is relative to the size of the whole tensor, so one row serves inputs of
any magnitude, and elements near zero are not judged by relative error alone.

How float32 error grows (u = 2⁻²⁴ ≈ 6e-8, the unit roundoff): an elementwise op is off by at
most u relative; a sum or dot product of n terms by at most n·u·Σ|terms| (worst case, the
usual case is about √n·u), so the error grows with the reduction length n. The largest
reductions the suite draws are n = 48 (d_ff), 16 keys, and a 2-layer model whose errors
compound through two norms, two softmaxes and the backward pass. Each row below gives n and
how far its bound sits above the worst error a correct float32 implementation was seen to
make (the reference computing in float32, and an independent float32 CS336-style
submission, selftests/cs336_float32).

CUDA: the grader turns TF32 off (pytest_plugin's device fixture), so CUDA float32 has the
same error model, with other summation orders: the CUDA rows are the CPU rows × 2.

A wrong program differs by far more than any row: eps outside the root moves RMSNorm by ≥5%
at the drawn scales, a wrong scale or mask moves attention by O(1), a float32 RoPE table
at position 30 is still within 2e-6 (float32 is what students write; that is not a bug).
"""

from __future__ import annotations

import torch

from lmgrade.core.compare import Tolerance

__all__ = ["EXACT64", "FLOAT64", "Tolerance", "tolerance", "property_tolerance"]

# (rtol, atol, reason) per component, float32 on the CPU.
_FLOAT32_ROWS: dict[str, tuple[float, float, str]] = {
    "linear": (1e-5, 1e-5, "one dot product of n ≤ 48 terms: ≤ 48·u ≈ 3e-6 of max|y|"),
    "embedding": (1e-6, 1e-7, "a lookup copies rows: no arithmetic, only the table's own float32 values"),
    "rmsnorm": (1e-5, 1e-5, "a mean of n ≤ 48 squares, a rsqrt and two products: ≤ (48 + 4)·u"),
    "silu": (1e-5, 1e-6, "elementwise exp, add, divide: a few u per element"),
    "swiglu": (1e-5, 1e-5, "three dot products (n ≤ 48) and a silu, in sequence: ~3 × linear's"),
    "softmax": (1e-5, 1e-6, "a max, n ≤ 17 exps and a sum: ≤ 17·u relative per probability"),
    "softmax_near_1000": (1e-3, 5e-4, "inputs near 1000 (exact in float32, steps of 1/8): a correct log-sum-exp there is "
                                      "rounded to ulp(1000)/2 = 3e-5, which x − lse carries into every probability; the "
                                      "gradient s ⊙ (g − Σ s g) cancels terms and carries ~10× that relative to its largest"),
    "attention": (1e-4, 1e-5, "QKᵀ (n = d_k), softmax over ≤ 16 keys, weights·V, and for MHA four projections; "
                              "gradients add the softmax Jacobian: ~10× linear's"),
    "rope": (1e-5, 1e-5, "cos/sin of angles ≤ 32 rad: a float32 angle table is off by ≤ 32·u ≈ 2e-6"),
    "block": (1e-4, 2e-5, "two norms, attention and SwiGLU in sequence, residuals: the sum of their rows"),
    "lm": (1e-4, 5e-5, "2 blocks, a norm and the head (n = d_model), and gradients summed over ≤ 48 positions"),
    "kv_cache": (1e-4, 5e-5, "the LM's row: chunked and full forwards differ only in summation order"),
    "cross_entropy": (1e-4, 1e-5, "a log-sum-exp over ≤ 17 logits and a mean over ≤ 24 targets; logits ×1000 "
                                  "cancel large terms in the gradient"),
    "cross_entropy_large_logits": (1e-4, 2e-4, "logits ×1000: float32 spacing there is ulp(1000) = 6e-5, so a correct "
                                               "log-sum-exp (torch.logsumexp, or max + log Σ) is off by up to that in log space, "
                                               "i.e. ~6e-5 of a probability, relative to the gradient's scale 1/N"),
    "decoding": (1e-5, 1e-6, "a softmax over ≤ 17 logits and a renormalising sum"),
    "perplexity": (1e-4, 1e-5, "exp of a mean of ≤ 40 NLLs, each off by the LM's row"),
    "gradient_clipping": (1e-5, 1e-6, "a sum of ≤ 200 squares, a square root and one scale per element: ≤ 200·u"),
    "adamw": (1e-5, 2e-5, "≤ 10 steps of elementwise updates (a few u each, relative to lr); CS336's form of the same "
                          "update (decay after the step, ε not rescaled) differs from torch's by lr²·λ ≤ 9e-7 per step "
                          "at the drawn lr ≤ 3e-3, λ ≤ 0.1, and by ε/√v̂ ≤ 1e-5 relative for gradients ≥ 1e-3"),
    "layernorm": (1e-5, 1e-5, "a mean, n ≤ 24 squared deviations, a rsqrt, a scale and a shift: ≤ (2·24 + 5)·u; "
                              "inputs shifted by 5 cancel in x − mean, which costs ~5·u of |x| more"),
    "gelu": (1e-5, 1e-6, "elementwise cube, tanh and products: a few u per element (the exact erf form is off by up "
                         "to 5e-4: far outside)"),
    "gpt2_lm": (1e-4, 5e-5, "the LM's row: 2 blocks of LayerNorm, attention and a 4·d_model MLP, the tied head, and "
                            "gradients summed over ≤ 48 positions (wte gets the embedding's and the head's)"),
    "gpt2_kv_cache": (1e-4, 5e-5, "the GPT-2 LM's row: chunked and full forwards differ only in summation order"),
    "lr_schedule": (1e-9, 1e-12, "Python floats (float64): a cos and a few products"),
    "training": (1e-5, 1e-5, "ten float32 steps of a 2-layer LM from the same weights: the reference in float32 vs "
                             "float64 differs by ≤ 3e-7 (absolute, losses ≈ 2–3.5, 4 seeds); ×30 for other "
                             "summation orders and CS336's form of AdamW"),
}

# float64 (the `dtype` item): a correct float64 program that orders its sums differently
# (matmul vs einsum, fused QKV, complex RoPE) differs by ~1e-16 per operation; the deepest
# graph (a 2-layer LM and its gradients) stays below 1e-12 relative. float32 intermediates
# anywhere give ~1e-7: 1e-9 tells the two apart with margin both ways.
FLOAT64 = Tolerance(rtol=1e-9, atol=1e-10, row="float64 (any component)")

# Reference-free properties computed twice by the same float64 code: only re-association differs.
EXACT64 = Tolerance(rtol=1e-12, atol=1e-12, row="float64 property: unchanged to float64 precision")

_DEVICE_FACTOR = {"cpu": 1.0, "cuda": 2.0}


def tolerance(component: str, dtype: torch.dtype, device: str | torch.device = "cpu") -> Tolerance:
    """The row for (component, dtype, device)."""
    device = torch.device(device).type
    if dtype == torch.float64:
        return FLOAT64
    if dtype != torch.float32:
        raise ValueError(f"no tolerance row for {dtype}: the suite grades float32 (and float64 in the dtype item)")
    if component not in _FLOAT32_ROWS:
        raise KeyError(f"no float32 tolerance row for component {component!r}; rows: {sorted(_FLOAT32_ROWS)}")
    rtol, atol, reason = _FLOAT32_ROWS[component]
    factor = _DEVICE_FACTOR.get(device, 2.0)
    return Tolerance(rtol=rtol * factor, atol=atol * factor, row=f"{component}, float32, {device}", reason=reason)


def property_tolerance(component: str) -> Tolerance:
    """Reference-free properties in float32 (the same program run twice on inputs that differ
    where they must not matter): only summation order may differ, bounded by the component's row."""
    return tolerance(component, torch.float32)


def rows() -> dict[tuple[str, str, str], Tolerance]:
    """The whole table, for the README and the recipe test."""
    table = {}
    for component in _FLOAT32_ROWS:
        for device in _DEVICE_FACTOR:
            table[(component, "float32", device)] = tolerance(component, torch.float32, device)
    table[("*", "float64", "*")] = FLOAT64
    return table
