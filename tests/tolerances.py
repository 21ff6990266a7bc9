"""Every tolerance of the suite, in one place, with the reasoning.

Ground truth is the reference run in float64 on the CPU. The implementation under test runs
in the test's dtype (float32 or float64) on the test's device. Errors are judged as
|got − expected| ≤ atol · max|expected| + rtol · |expected| (see lmgrade.compare.Tolerance).

float64: a correct float64 program that orders its sums differently (matmul vs einsum, fused
QKV, complex RoPE) differs by ~1e-16 per operation; the deepest graph here (a 2-layer LM and
its gradients) stays below 1e-12 relative. 1e-9 leaves a wide margin, and every bug we must
catch moves outputs by far more (RMSNorm's eps outside the root: ≥1e-6 relative at the
drawn scales; wrong scale or mask: O(1)).

float32: machine epsilon is 1.2e-7. A single matmul or norm of the sizes drawn here stays
within ~1e-6 of float64; a 2-layer LM with softmaxes and its gradients accumulates ~1e-5.
Gradients of cross-entropy with logits ×1000 cancel large terms, hence its looser atol.

Properties without a reference (causality, prefix and batch independence, ignore_index,
chunked vs full) are checked in float64 to `EXACT64`: "unchanged to float64 precision".
"""

from __future__ import annotations

import torch

from lmgrade.compare import Tolerance

__all__ = ["EXACT64", "FLOAT64", "Tolerance", "tolerance"]

FLOAT64 = Tolerance(rtol=1e-9, atol=1e-10)

_FLOAT32 = {
    "linear": Tolerance(rtol=1e-5, atol=1e-5),
    "embedding": Tolerance(rtol=1e-6, atol=1e-7),  # a lookup copies rows: only float32 rounding of the table
    "rmsnorm": Tolerance(rtol=1e-5, atol=1e-5),
    "silu": Tolerance(rtol=1e-5, atol=1e-6),
    "swiglu": Tolerance(rtol=1e-5, atol=1e-5),
    "softmax": Tolerance(rtol=1e-5, atol=1e-6),
    "attention": Tolerance(rtol=1e-4, atol=1e-5),
    "rope": Tolerance(rtol=1e-5, atol=1e-5),
    "block": Tolerance(rtol=1e-4, atol=2e-5),
    "lm": Tolerance(rtol=1e-4, atol=5e-5),
    "cross_entropy": Tolerance(rtol=1e-4, atol=1e-5),
}

# Reference-free properties in float64: only re-association of sums may differ.
EXACT64 = Tolerance(rtol=1e-12, atol=1e-12)


def tolerance(component: str, dtype: torch.dtype) -> Tolerance:
    if dtype == torch.float64:
        return FLOAT64
    if dtype == torch.float32:
        return _FLOAT32[component]
    raise ValueError(f"no tolerance defined for {dtype}")
