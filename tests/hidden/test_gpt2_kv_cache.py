"""GPT-2's KV cache against the hidden reference for drawn chunk schedules."""

from hypothesis import given
from hypothesis import strategies as st

from ..strategies import chunk_schedules, gpt2_cases
from ..test_gpt2_kv_cache import check_gpt2_cache_against_reference
from ..test_gpt2_lm import gpt2_args


@given(case=gpt2_cases(min_seq=2, batches=st.just(2)), data=st.data())
def test_gpt2_chunked_logits_match_reference_for_random_schedules(impl, oracle, device, case, data):
    config, batch, seq, seed = case
    schedule = data.draw(chunk_schedules(seq), label="chunk_sizes")
    check_gpt2_cache_against_reference(impl, oracle, dict(gpt2_args(config, batch, seq, seed), chunk_sizes=schedule), device)
