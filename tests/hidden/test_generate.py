"""Generation against the hidden reference: greedy and seeded sampling, token for token, with and without eos."""

from hypothesis import given
from hypothesis import strategies as st

from ..test_generate import check_tokens_against_reference, generate_cases, no_shrinking


@no_shrinking
@given(case=generate_cases(), eos=st.one_of(st.none(), st.integers(0, 36)))
def test_generation_matches_reference_token_for_token(impl, oracle, device, case, eos):
    check_tokens_against_reference(impl, oracle, dict(case, eos_token_id=eos), device)


# A crash that the submission's own LM also raises is charged to the LM, not here (SPEC §4.6).
from ..checks import excuse_crashes_of_the_own_lm  # noqa: E402

excuse_crashes_of_the_own_lm(globals())
