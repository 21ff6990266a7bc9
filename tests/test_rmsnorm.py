"""RMSNorm: x * rsqrt(mean(x²) + eps) * g, in at least float32, cast back to the input dtype."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from .checks import assert_unchanged, check_against_reference, on
from .strategies import layouts, leading_dims, model_dims, randn, seeds

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "An RMSNorm failure is usually eps in the wrong place, a sum or a variance where the mean of squares "
    "belongs, or the gain applied before normalising."
    "\n"
    "Ask yourself: is eps inside the square root, and do you average the squares over the last dimension "
    "only?"
)


def rmsnorm_args(lead, d_model, seed, scale=1.0, eps=1e-5):
    return dict(
        d_model=d_model,
        eps=eps,
        weights=1.0 + 0.2 * randn((d_model,), seed),
        in_features=randn((*lead, d_model), seed + 1, scale),
    )


WRT = ["weights", "in_features"]
# Scale 0.01 puts mean(x²) near 1e-4, where eps = 1e-5 inside vs outside the root differ by ~5%;
# eps = 0.0 is a valid eps (no smoothing): "eps or 1e-5" would put 1e-5 back.
FIXED = [((2, 5), 16, 0, 1.0, 1e-5), ((3,), 8, 1, 0.01, 1e-5), ((2, 3, 4), 24, 2, 10.0, 1e-5), ((4,), 16, 3, 0.01, 0.0)]


@given(lead=leading_dims, d_model=model_dims, layout=layouts, seed=seeds)
def test_rmsnorm_output_keeps_input_shape_and_dtype(impl, device, lead, d_model, layout, seed):
    out = impl.run_rmsnorm(**on(rmsnorm_args(lead, d_model, seed), device=device, layout=layout))
    assert out.shape == (*lead, d_model) and out.dtype == torch.float32 and out.device.type == device.type


@given(lead=leading_dims, d_model=model_dims, scale=st.sampled_from([1.0, 10.0]), seed=seeds)
def test_rmsnorm_with_unit_gain_gives_unit_root_mean_square(impl, lead, d_model, scale, seed):
    args = rmsnorm_args(lead, d_model, seed, scale, eps=1e-12)
    args["weights"] = torch.ones(d_model, dtype=torch.float64)
    out = impl.run_rmsnorm(**on(args)).double()
    rms = out.pow(2).mean(-1).sqrt()
    assert_unchanged(rms, torch.ones_like(rms), "root mean square of RMSNorm output (gain 1, eps 1e-12)", component="rmsnorm")


@pytest.mark.parametrize("lead, d_model, seed, scale, eps", FIXED)
def test_rmsnorm_matches_reference_on_fixed_cases(impl, oracle, device, lead, d_model, seed, scale, eps):
    args = rmsnorm_args(lead, d_model, seed, scale, eps)
    check_against_reference(impl, oracle, "run_rmsnorm", args, wrt=WRT, component="rmsnorm", device=device)
