"""GELU against the hidden reference on drawn shapes and values (forward and gradients)."""

from hypothesis import given

from ..checks import check_against_reference
from ..strategies import layouts, leading_dims, scales, seeds
from ..test_gelu import gelu_args


@given(lead=leading_dims, scale=scales, layout=layouts, seed=seeds)
def test_gelu_matches_reference_forward_and_backward(impl, oracle, device, lead, scale, layout, seed):
    check_against_reference(impl, oracle, "run_gelu", gelu_args(lead, seed, scale), wrt=["in_features"], component="gelu",
                            device=device, layout=layout)
