"""Linear: y = x Wᵀ, weight (d_out, d_in), no bias."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from .checks import check_against_reference, on
from .strategies import layouts, leading_dims, model_dims, randn, scales, seeds

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "A Linear failure is usually the weight's layout: W is stored (d_out, d_in), so y = x Wᵀ; or a "
    ".view() that breaks on inputs whose leading dimensions are transposed or sliced in memory."
    "\n"
    "Ask yourself: does your Linear give the right shape when d_in ≠ d_out, and does it still work on "
    "x.transpose(0, 1)?"
)


def linear_args(lead, d_in, d_out, seed, scale=1.0):
    return dict(
        d_in=d_in,
        d_out=d_out,
        weights=randn((d_out, d_in), seed, d_in**-0.5),
        in_features=randn((*lead, d_in), seed + 1, scale),
    )


WRT = ["weights", "in_features"]
FIXED = [((2, 5), 16, 8, 0), ((), 8, 24, 1), ((3, 1, 2), 24, 5, 2)]


@given(lead=leading_dims, d_in=model_dims, d_out=st.sampled_from([5, 16]), layout=layouts, seed=seeds)
def test_linear_output_has_leading_dims_then_d_out_in_input_dtype(impl, device, lead, d_in, d_out, layout, seed):
    args = on(linear_args(lead, d_in, d_out, seed), device=device, layout=layout)
    out = impl.run_linear(**args)
    assert out.shape == (*lead, d_out) and out.dtype == torch.float32 and out.device.type == device.type


@pytest.mark.parametrize("lead, d_in, d_out, seed", FIXED)
def test_linear_matches_reference_on_fixed_cases(impl, oracle, device, lead, d_in, d_out, seed):
    args = linear_args(lead, d_in, d_out, seed)
    check_against_reference(impl, oracle, "run_linear", args, wrt=WRT, component="linear", device=device)


@pytest.mark.parametrize("lead, d, seed", [((4,), 16, 3), ((2, 3), 8, 4)])
def test_linear_with_a_square_weight_matches_reference(impl, oracle, device, lead, d, seed):
    """d_in == d_out: x W has the shape of x Wᵀ, so only the values can tell a transposed weight."""
    args = linear_args(lead, d, d, seed)
    check_against_reference(impl, oracle, "run_linear", args, wrt=WRT, component="linear", device=device)
