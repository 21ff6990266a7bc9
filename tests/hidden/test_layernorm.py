"""LayerNorm against the hidden reference on drawn shapes, magnitudes and shifts (forward and gradients)."""

from hypothesis import given
from hypothesis import strategies as st

from ..checks import check_against_reference
from ..strategies import layouts, leading_dims, model_dims, scales, seeds
from ..test_layernorm import WRT, layernorm_args


@given(lead=leading_dims, d_model=model_dims, scale=scales, shift=st.sampled_from([0.0, 2.0]), layout=layouts, seed=seeds)
def test_layernorm_matches_reference_forward_and_backward(impl, oracle, device, lead, d_model, scale, shift, layout, seed):
    args = layernorm_args(lead, d_model, seed, scale, shift)
    check_against_reference(impl, oracle, "run_layernorm", args, wrt=WRT, component="layernorm", device=device, layout=layout)
