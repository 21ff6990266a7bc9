"""Padded batches on drawn configurations, lengths, sides and chunk schedules (same properties as the visible file)."""

import torch
from hypothesis import given
from hypothesis import strategies as st

from lmgrade.core.compare import Mismatch

from ..checks import assert_unchanged
from ..strategies import LM_CONFIGS, seeds
from ..test_padding import CACHED, LM_TOL, SIDES, check_rows, drawn_lengths, generate, model_args, padded_batch


@given(config=st.sampled_from(LM_CONFIGS), side=st.sampled_from(SIDES), extra=st.sampled_from([1, 2]), seed=seeds,
       data=st.data())
def test_padding_cached_chunks_of_any_schedule_equal_the_full_padded_forward(impl, oracle, config, side, extra, seed, data):
    args = model_args(config, seed)
    rows, ids, mask = padded_batch(config, drawn_lengths(config.context_length - 2, extra, seed), side, seed)
    width, chunks = ids.shape[1], []
    while sum(chunks) < width:
        chunks.append(data.draw(st.integers(1, width - sum(chunks)), label="chunk"))

    def judge(chunked):
        full = impl.run_transformer_lm(**args, in_indices=ids, attention_mask=mask)
        assert_unchanged(chunked[mask].cpu(), full[mask].cpu(), f"padded batch in chunks {chunks} vs the full padded forward",
                         component="kv_cache")

    check_rows(impl, oracle, args, f"{side} padding, chunks {chunks}", lambda bound: bound.run_transformer_lm_incremental(
        **args, in_indices=ids, chunk_sizes=chunks, attention_mask=mask), judge, LM_TOL, CACHED)


@given(config=st.sampled_from(LM_CONFIGS), side=st.sampled_from(SIDES), seed=seeds)
def test_padding_greedy_generation_of_drawn_padded_prompts_matches_each_prompt_alone(impl, oracle, config, side, seed):
    args = model_args(config, seed)
    rows, ids, mask = padded_batch(config, drawn_lengths(config.context_length // 2, 1, seed), side, seed)
    new = 4

    def judge(out):
        for b, row in enumerate(rows):
            alone = generate(impl, args, row[None], new)[0, len(row):]
            if not torch.equal(out[b, ids.shape[1]:].cpu(), alone.cpu()):
                raise Mismatch(f"row {b} ({len(row)} real tokens, {side}-padded to {ids.shape[1]}): "
                               f"{out[b, ids.shape[1]:].tolist()} in the batch, {alone.tolist()} alone")

    check_rows(impl, oracle, args, f"greedy generation, {side} padding", lambda bound: generate(bound, args, ids, new, mask),
               judge, stands_on=CACHED)
