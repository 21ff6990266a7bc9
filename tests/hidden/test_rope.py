"""RoPE against the hidden reference on drawn shapes, positions and θ (forward and gradient)."""

from hypothesis import given
from hypothesis import strategies as st

from ..checks import check_against_reference
from ..strategies import layouts, leading_dims, seeds
from ..test_rope import D_KS, THETAS, rope_args


@given(lead=leading_dims, seq=st.sampled_from([1, 5]), d_k=D_KS, theta=THETAS, layout=layouts, seed=seeds)
def test_rope_matches_reference_forward_and_backward(impl, oracle, device, lead, seq, d_k, theta, layout, seed):
    args = rope_args(lead, seq, d_k, theta, seed)
    check_against_reference(impl, oracle, "run_rope", args, wrt=["in_query_or_key"], component="rope",
                            device=device, layout=layout)
