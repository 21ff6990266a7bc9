"""Softmax against the hidden reference on drawn shapes, dims and magnitudes (forward and gradient)."""

from hypothesis import given
from hypothesis import strategies as st

from ..checks import check_against_reference
from ..strategies import float_dtypes, scales, seeds
from ..test_softmax import shapes_and_dims, softmax_args


@given(shape_dim=shapes_and_dims, scale=scales, dtype=float_dtypes, strided=st.booleans(), seed=seeds)
def test_softmax_matches_reference_forward_and_backward(impl, oracle, device, shape_dim, scale, dtype, strided, seed):
    shape, dim = shape_dim
    check_against_reference(impl, oracle, "run_softmax", softmax_args(shape, dim, seed, scale), wrt=["in_features"],
                            component="softmax", dtype=dtype, device=device, strided=strided)
