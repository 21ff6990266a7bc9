"""The Transformer block against the hidden reference (forward and gradients w.r.t. every weight)."""

from hypothesis import given
from hypothesis import strategies as st

from ..checks import check_against_reference
from ..strategies import float_dtypes, lm_cases, scales
from ..test_block import WRT, block_args


@given(case=lm_cases(), scale=scales, dtype=float_dtypes, strided=st.booleans())
def test_block_matches_reference_forward_and_backward(impl, oracle, device, case, scale, dtype, strided):
    config, batch, seq, seed = case
    check_against_reference(impl, oracle, "run_transformer_block", block_args(config, batch, seq, seed, scale), wrt=WRT,
                            component="block", dtype=dtype, device=device, strided=strided)
