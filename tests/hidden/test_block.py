"""The Transformer block against the hidden reference (forward and gradients w.r.t. every weight)."""

from hypothesis import given

from .. import compositions
from ..checks import check_against_reference
from ..strategies import layouts, lm_cases, scales
from ..test_block import WRT, block_args


@given(case=lm_cases(), scale=scales, layout=layouts)
def test_block_matches_reference_forward_and_backward(impl, oracle, device, case, scale, layout):
    config, batch, seq, seed = case
    check_against_reference(impl, oracle, "run_transformer_block", block_args(config, batch, seq, seed, scale), wrt=WRT,
                            component="block", device=device, layout=layout, composition=compositions.transformer_block)
