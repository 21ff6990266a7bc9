"""The GPT-2 LM against the hidden reference (logits and gradients w.r.t. every weight)."""

from hypothesis import given

from ..strategies import gpt2_cases, layouts
from ..test_gpt2_lm import check_gpt2_against_reference, gpt2_args


@given(case=gpt2_cases(), layout=layouts)
def test_gpt2_matches_reference_forward_and_backward(impl, oracle, device, case, layout):
    config, batch, seq, seed = case
    check_gpt2_against_reference(impl, oracle, gpt2_args(config, batch, seq, seed), device, layout)
