"""GELU, tanh approximation (the GPT-2 variant): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))."""

import torch
from hypothesis import given

from .checks import assert_unchanged, check_against_reference, on
from .strategies import layouts, leading_dims, randn, seeds

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "A GELU failure is usually the exact erf form where GPT-2 uses the tanh approximation, a constant "
    "mistyped (0.044715, √(2/π)), or the cube left out."
    "\n"
    "Ask yourself: is yours 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), and did you check it at x = 1, "
    "where the exact and the tanh forms differ in the fourth digit?"
)


def gelu_args(lead, seed, scale=3.0):
    return dict(in_features=randn((*lead, 9), seed, scale))


@given(lead=leading_dims, layout=layouts, seed=seeds)
def test_gelu_keeps_shape_and_dtype(impl, device, lead, layout, seed):
    args = on(gelu_args(lead, seed), device=device, layout=layout)
    out = impl.run_gelu(**args)
    assert out.shape == args["in_features"].shape and out.dtype == torch.float32 and out.device.type == device.type


@given(lead=leading_dims, seed=seeds)
def test_gelu_of_x_minus_gelu_of_minus_x_is_x(impl, lead, seed):
    """GELU(x) − GELU(−x) = x, for the exact form and the tanh form alike (x·Φ(x) with Φ(x) + Φ(−x) = 1)."""
    x = on(gelu_args(lead, seed))["in_features"]
    assert_unchanged(impl.run_gelu(in_features=x) - impl.run_gelu(in_features=-x), x, "gelu(x) − gelu(−x) vs x",
                     component="gelu")


def test_gelu_matches_reference_on_fixed_cases(impl, oracle, device):
    """Values from −9 to 9: the exact (erf) GELU differs from the tanh form by up to ~5e-4 around |x| ≈ 2."""
    check_against_reference(impl, oracle, "run_gelu", gelu_args((4, 5), 0), wrt=["in_features"], component="gelu",
                            device=device)
