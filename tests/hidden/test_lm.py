"""The Transformer LM against the hidden reference (logits and gradients w.r.t. every weight)."""

from hypothesis import given

from .. import compositions
from ..checks import check_against_reference
from ..strategies import layouts, lm_cases
from ..test_lm import lm_args, lm_wrt


@given(case=lm_cases(), layout=layouts)
def test_lm_matches_reference_forward_and_backward(impl, oracle, device, case, layout):
    config, batch, seq, seed = case
    check_against_reference(impl, oracle, "run_transformer_lm", lm_args(config, batch, seq, seed), wrt=lm_wrt(config),
                            component="lm", device=device, layout=layout, composition=compositions.transformer_lm)
