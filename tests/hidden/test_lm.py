"""The Transformer LM against the hidden reference (logits and gradients w.r.t. every weight)."""

from hypothesis import given

from ..checks import check_against_reference
from ..strategies import float_dtypes, lm_cases
from ..test_lm import lm_args, lm_wrt


@given(case=lm_cases(), dtype=float_dtypes)
def test_lm_matches_reference_forward_and_backward(impl, oracle, device, case, dtype):
    config, batch, seq, seed = case
    check_against_reference(impl, oracle, "run_transformer_lm", lm_args(config, batch, seq, seed), wrt=lm_wrt(config),
                            component="lm", dtype=dtype, device=device)
