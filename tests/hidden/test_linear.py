"""Linear against the hidden reference on drawn shapes and values (forward and gradients)."""

from hypothesis import given
from hypothesis import strategies as st

from ..checks import check_against_reference
from ..strategies import layouts, leading_dims, model_dims, scales, seeds
from ..test_linear import WRT, linear_args


@given(lead=leading_dims, d_in=model_dims, d_out=st.sampled_from([5, 16]), scale=scales, layout=layouts, seed=seeds)
def test_linear_matches_reference_forward_and_backward(impl, oracle, device, lead, d_in, d_out, scale, layout, seed):
    args = linear_args(lead, d_in, d_out, seed, scale)
    check_against_reference(impl, oracle, "run_linear", args, wrt=WRT, component="linear", device=device, layout=layout)
