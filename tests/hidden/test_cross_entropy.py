"""Cross-entropy against the hidden reference on drawn shapes, magnitudes, ignore values and memory layouts."""

from hypothesis import given
from hypothesis import strategies as st

from ..checks import check_against_reference
from ..strategies import layouts, seeds
from ..test_cross_entropy import IGNORE_VALUES, LEADS, VOCABS, ce_args, component_for


@given(lead=LEADS, vocab=VOCABS, scale=st.sampled_from([1.0, 10.0, 1000.0]), ignore=st.one_of(st.none(), IGNORE_VALUES),
       fraction=st.sampled_from([0.0, 0.5, 0.9]), layout=layouts, seed=seeds)
def test_cross_entropy_matches_reference_forward_and_backward(impl, oracle, device, lead, vocab, scale, ignore, fraction,
                                                              layout, seed):
    args = ce_args(lead, vocab, seed, scale, ignore, fraction)
    check_against_reference(impl, oracle, "run_cross_entropy", args, wrt=["inputs"], component=component_for(scale),
                            device=device, layout=layout)
