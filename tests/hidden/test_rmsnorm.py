"""RMSNorm against the hidden reference on drawn shapes and magnitudes (forward and gradients)."""

from hypothesis import given
from hypothesis import strategies as st

from ..checks import check_against_reference
from ..strategies import layouts, leading_dims, model_dims, scales, seeds
from ..test_rmsnorm import WRT, rmsnorm_args


@given(lead=leading_dims, d_model=model_dims, scale=scales, layout=layouts, seed=seeds)
def test_rmsnorm_matches_reference_forward_and_backward(impl, oracle, device, lead, d_model, scale, layout, seed):
    args = rmsnorm_args(lead, d_model, seed, scale)
    check_against_reference(impl, oracle, "run_rmsnorm", args, wrt=WRT, component="rmsnorm", device=device, layout=layout)
