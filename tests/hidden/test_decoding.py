"""The next-token distribution against the hidden reference on drawn logits and settings."""

from hypothesis import assume, given
from hypothesis import strategies as st

from ..checks import check_against_reference
from ..strategies import float_dtypes
from ..test_decoding import COMPONENT, distribution_cases, top_p_margin


@given(case=distribution_cases(), dtype=float_dtypes, strided=st.booleans())
def test_distribution_matches_reference(impl, oracle, device, case, dtype, strided):
    # float32 rounding moves cumulative masses by ~1e-6: draws with a mass that close to p are discarded.
    assume(top_p_margin(**case) > 1e-5)
    check_against_reference(impl, oracle, "run_next_token_distribution", case, component=COMPONENT, dtype=dtype,
                            device=device, strided=strided)
