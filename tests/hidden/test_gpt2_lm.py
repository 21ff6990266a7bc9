"""The GPT-2 LM against the hidden reference (logits and gradients w.r.t. every weight)."""

from hypothesis import given

from .. import compositions
from ..checks import check_against_reference
from ..strategies import gpt2_cases, layouts
from ..test_gpt2_lm import gpt2_args, gpt2_wrt


@given(case=gpt2_cases(), layout=layouts)
def test_gpt2_matches_reference_forward_and_backward(impl, oracle, device, case, layout):
    config, batch, seq, seed = case
    check_against_reference(impl, oracle, "run_gpt2_lm", gpt2_args(config, batch, seq, seed), wrt=gpt2_wrt(config),
                            component="gpt2_lm", device=device, layout=layout, composition=compositions.gpt2_lm_from_parts)
