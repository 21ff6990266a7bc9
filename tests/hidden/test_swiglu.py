"""SiLU and SwiGLU against the hidden reference on drawn shapes and values (forward and gradients)."""

from hypothesis import given
from hypothesis import strategies as st

from .. import compositions
from ..checks import check_against_reference
from ..strategies import layouts, leading_dims, model_dims, scales, seeds
from ..test_swiglu import SWIGLU_WRT, silu_args, swiglu_args


@given(lead=leading_dims, scale=scales, layout=layouts, seed=seeds)
def test_silu_matches_reference_forward_and_backward(impl, oracle, device, lead, scale, layout, seed):
    check_against_reference(impl, oracle, "run_silu", silu_args(lead, seed, scale), wrt=["in_features"],
                            component="silu", device=device, layout=layout)


@given(lead=leading_dims, d_model=model_dims, d_ff=st.sampled_from([24, 40]), scale=scales, layout=layouts, seed=seeds)
def test_swiglu_matches_reference_forward_and_backward(impl, oracle, device, lead, d_model, d_ff, scale, layout, seed):
    check_against_reference(impl, oracle, "run_swiglu", swiglu_args(lead, d_model, d_ff, seed, scale), wrt=SWIGLU_WRT,
                            component="swiglu", device=device, layout=layout, composition=compositions.swiglu)
