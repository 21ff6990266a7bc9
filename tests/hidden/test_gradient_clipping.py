"""Gradient clipping on drawn shapes, magnitudes, limits and missing gradients, against float64."""

from hypothesis import given
from hypothesis import strategies as st

from ..strategies import seeds
from ..test_gradient_clipping import clip, global_norm, grads_of, params_of, check_clip

shape_sets = st.sampled_from([[(5,)], [(3, 4), (2,)], [(2, 2, 3), (6,), (1,), (4, 4)], [(10, 10), (10,)]])


@given(shapes=shape_sets, seed=seeds, scale=st.sampled_from([0.01, 1.0, 100.0]),
       fraction=st.sampled_from([0.05, 0.5, 0.9, 2.0]), drop_first=st.booleans())
def test_gradient_clipping_matches_float64_on_drawn_cases(impl, oracle, shapes, seed, scale, fraction, drop_first):
    missing = (0,) if drop_first and len(shapes) > 1 else ()
    grads = grads_of(shapes, seed, scale, missing=missing)
    max_l2_norm = fraction * global_norm(grads)
    check_clip(impl, oracle, params_of(shapes, seed), grads, max_l2_norm, f"max_l2_norm = {fraction} × the global norm")
