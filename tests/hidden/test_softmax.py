"""Softmax against the hidden reference on drawn shapes, dims and magnitudes (forward and gradient)."""

from hypothesis import given
from hypothesis import strategies as st

from ..checks import check_against_reference
from ..strategies import layouts, scales, seeds
from ..test_softmax import shapes_and_dims, softmax_args


@given(shape_dim=shapes_and_dims, scale=scales, layout=layouts, seed=seeds)
def test_softmax_matches_reference_forward_and_backward(impl, oracle, device, shape_dim, scale, layout, seed):
    shape, dim = shape_dim
    # In float32, inputs of scale 10 make softmax nearly one-hot: its gradient is then far below float32
    # rounding relative to its largest entry, and two correct formulas disagree there. Large inputs
    # are covered by the +1000 tests.
    scale = min(scale, 1.0)
    check_against_reference(impl, oracle, "run_softmax", softmax_args(shape, dim, seed, scale), wrt=["in_features"],
                            component="softmax", device=device, layout=layout)
