"""Attention against the hidden reference on drawn shapes and values (forward and gradients)."""

from hypothesis import given
from hypothesis import strategies as st

from .. import compositions
from ..checks import check_against_reference
from ..strategies import batch_sizes, layouts, leading_dims, lm_cases, scales, seeds
from ..test_attention import ATTENTION_SIZES, MHA_WRT, SDPA_WRT, mha_args, sdpa_args


@given(lead=leading_dims, sizes=ATTENTION_SIZES, d_v=st.sampled_from([4, 8]), with_mask=st.booleans(), scale=scales,
       layout=layouts, seed=seeds)
def test_attention_matches_reference_forward_and_backward(impl, oracle, device, lead, sizes, d_v, with_mask, scale, layout, seed):
    queries, keys = sizes
    args = sdpa_args(lead, queries, keys, 8, d_v, seed, with_mask, scale=min(scale, 1.0))
    check_against_reference(impl, oracle, "run_scaled_dot_product_attention", args, wrt=SDPA_WRT, component="attention",
                            device=device, layout=layout, composition=compositions.scaled_dot_product_attention)


@given(case=lm_cases(), lead=st.sampled_from([(), (2,)]), positions=st.sampled_from(["default", "shuffled"]), layout=layouts)
def test_multihead_attention_with_rope_matches_reference_forward_and_backward(impl, oracle, device, case, lead, positions, layout):
    config, batch, seq, seed = case
    args = mha_args(config, batch, seq, seed, lead, rope=True, positions=positions)
    check_against_reference(impl, oracle, "run_multihead_self_attention_with_rope", args, wrt=MHA_WRT, component="attention",
                            device=device, layout=layout, composition=compositions.multihead_self_attention_with_rope)


@given(case=lm_cases(), lead=st.sampled_from([(), (2,)]), layout=layouts)
def test_multihead_attention_matches_reference_forward_and_backward(impl, oracle, device, case, lead, layout):
    config, batch, seq, seed = case
    args = mha_args(config, batch, seq, seed, lead)
    check_against_reference(impl, oracle, "run_multihead_self_attention", args, wrt=MHA_WRT, component="attention",
                            device=device, layout=layout, composition=compositions.multihead_self_attention)
