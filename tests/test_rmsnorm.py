"""RMSNorm: x * rsqrt(mean(x²) + eps) * g, in at least float32, cast back to the input dtype."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from .checks import assert_unchanged, check_against_reference, on
from .strategies import float_dtypes, leading_dims, model_dims, randn, scales, seeds
from .tolerances import Tolerance


def rmsnorm_args(lead, d_model, seed, scale=1.0, eps=1e-5):
    return dict(
        d_model=d_model,
        eps=eps,
        weights=1.0 + 0.2 * randn((d_model,), seed),
        in_features=randn((*lead, d_model), seed + 1, scale),
    )


WRT = ["weights", "in_features"]
# Scale 0.01 puts mean(x²) near 1e-4, where eps = 1e-5 inside vs outside the root differ by ~5%.
FIXED = [((2, 5), 16, 0, 1.0), ((3,), 8, 1, 0.01), ((2, 3, 4), 24, 2, 10.0)]


@given(lead=leading_dims, d_model=model_dims, dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16]), seed=seeds)
def test_rmsnorm_output_keeps_input_shape_and_dtype(impl, device, lead, d_model, dtype, seed):
    out = impl.run_rmsnorm(**on(rmsnorm_args(lead, d_model, seed), dtype, device))
    assert out.shape == (*lead, d_model) and out.dtype == dtype and out.device.type == device.type


@given(lead=leading_dims, d_model=model_dims, scale=st.sampled_from([1.0, 10.0]), seed=seeds)
def test_rmsnorm_with_unit_gain_gives_unit_root_mean_square(impl, lead, d_model, scale, seed):
    args = rmsnorm_args(lead, d_model, seed, scale, eps=1e-12)
    args["weights"] = torch.ones(d_model, dtype=torch.float64)
    out = impl.run_rmsnorm(**args)
    rms = out.pow(2).mean(-1).sqrt()
    assert_unchanged(rms, torch.ones_like(rms), "root mean square of RMSNorm output (gain 1, eps 1e-12)", Tolerance(1e-9, 1e-9))


@pytest.mark.parametrize("lead, d_model, seed, scale", FIXED)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rmsnorm_matches_reference_on_fixed_cases(impl, oracle, device, lead, d_model, seed, scale, dtype):
    args = rmsnorm_args(lead, d_model, seed, scale)
    check_against_reference(impl, oracle, "run_rmsnorm", args, wrt=WRT, component="rmsnorm", dtype=dtype, device=device)


# float16 keeps ~3 significant digits: its inputs are rounded by ~5e-4 relative, and so is the output.
FLOAT16 = Tolerance(rtol=4e-3, atol=4e-3)


@pytest.mark.parametrize("lead, d_model, seed", [((2, 5), 16, 0), ((3,), 24, 1)])
def test_rmsnorm_of_float16_inputs_in_the_hundreds_matches_reference(impl, oracle, device, lead, d_model, seed):
    """x² of 300 overflows float16 (max 65504): the mean of squares must be taken in float32."""
    args = rmsnorm_args(lead, d_model, seed, scale=300.0)
    check_against_reference(impl, oracle, "run_rmsnorm", args, component="rmsnorm", dtype=torch.float16, device=device, tol=FLOAT16)
