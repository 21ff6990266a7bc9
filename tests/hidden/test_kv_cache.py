"""Chunked forward with the KV cache against the hidden reference's full forward."""

import torch
from hypothesis import given
from hypothesis import strategies as st

from ..checks import check_against_reference
from ..strategies import chunk_schedules, float_dtypes, lm_cases
from ..test_lm import lm_args


@given(case=lm_cases(min_seq=2), dtype=float_dtypes, data=st.data())
def test_chunked_forward_matches_reference_logits(impl, oracle, device, case, dtype, data):
    config, batch, seq, seed = case
    schedule = data.draw(chunk_schedules(seq), label="chunk_sizes")
    args = dict(lm_args(config, batch, seq, seed), chunk_sizes=schedule)
    check_against_reference(impl, oracle, "run_transformer_lm_incremental", args, component="lm", dtype=dtype, device=device)
