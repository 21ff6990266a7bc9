"""The next-token distribution against the hidden reference on drawn logits, settings and memory layouts."""

from hypothesis import assume, given

from ..checks import check_against_reference
from ..strategies import layouts
from ..test_decoding import COMPONENT, FLOAT32_MARGIN, decision_margin, distribution_cases


@given(case=distribution_cases(), layout=layouts)
def test_distribution_matches_reference(impl, oracle, device, case, layout):
    # The logits are float32 values: draws where float32 rounding could flip a cut (a cumulative mass
    # within rounding of p, two probabilities within rounding of each other at a cut) are discarded.
    assume(decision_margin(**case) > FLOAT32_MARGIN)
    check_against_reference(impl, oracle, "run_next_token_distribution", case, component=COMPONENT, device=device,
                            layout=layout)
