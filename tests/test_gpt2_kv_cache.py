"""GPT-2's KV cache: chunks fed through one model give the full forward's logits; positions (rows of wpe)
continue from the cache length."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from . import compositions
from .checks import assert_unchanged, check_against_reference, on, property_or_own_parts
from .strategies import GPT2_CONFIGS, LM_CONFIGS, chunk_schedules, gpt2_cases
from .test_gpt2_lm import gpt2_args
from .test_lm import lm_args

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "A GPT-2 KV-cache failure is usually the learned positions of a later chunk: they are rows past … "
    "past+m−1 of wpe, not 0 … m−1; or the mask of a chunk after the cache (bottom-right, not top-left)."
    "\n"
    "Ask yourself: which rows of wpe does a chunk of m tokens after n cached ones add?"
)


def gpt2_kv_property(impl, args, schedule):
    """Chunked == your own full forward; excused where the chunked logits equal the reference's cache logic
    over your own parts."""
    def check():
        chunked = impl.run_gpt2_lm_incremental(**args, chunk_sizes=schedule)
        assert_unchanged(chunked.cpu(), impl.run_gpt2_lm(**args).cpu(), f"logits fed in chunks {schedule} vs your own full forward",
                         component="gpt2_kv_cache")

    try:
        property_or_own_parts(check, impl, "run_gpt2_lm_incremental", compositions.GPT2_KV_CACHE[1:],
                              [dict(args, chunk_sizes=schedule)], "gpt2_kv_cache")
    except AssertionError:
        if own_llama_cache_gives_wrong_logits(impl):
            return  # the cache you share with the Llama-style model is wrong there too: charged in the kv_cache item
        raise


def own_llama_cache_gives_wrong_logits(impl) -> bool:
    """Your Llama-style model fed in chunks [2, 3, 1, 2] vs its own full forward (a crash is not an excuse)."""
    args = on(lm_args(LM_CONFIGS[2], 2, 8, seed=3))
    try:
        chunked = impl.run_transformer_lm_incremental(**args, chunk_sizes=[2, 3, 1, 2])
        full = impl.run_transformer_lm(**args)
    except Exception:  # noqa: BLE001
        return False
    return not torch.allclose(chunked.double().cpu(), full.double().cpu(), rtol=1e-4, atol=1e-4)


@given(case=gpt2_cases(min_seq=2, batches=st.just(2)), data=st.data())
def test_gpt2_chunked_forward_with_cache_equals_full_forward_for_random_schedules(impl, case, data):
    config, batch, seq, seed = case
    schedule = data.draw(chunk_schedules(seq), label="chunk_sizes")
    gpt2_kv_property(impl, on(gpt2_args(config, batch, seq, seed)), schedule)


# A prefill, then multi-token chunks: the positions must continue (wpe rows), which a single chunk never shows.
SCHEDULES = [[5, 3, 4, 4], [1, 1, 1, 13], [8, 1, 2, 5], [16]]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: "+".join(map(str, s)))
def test_gpt2_multi_token_chunks_after_a_prefill_equal_the_full_forward(impl, device, schedule):
    args = on(gpt2_args(GPT2_CONFIGS[0], 2, sum(schedule), seed=11), device=device)
    gpt2_kv_property(impl, args, schedule)


@pytest.mark.parametrize("schedule", [[4, 1, 1, 6], [1] * 12], ids=["prefill+steps", "token_by_token"])
def test_gpt2_chunked_logits_match_reference(impl, oracle, device, schedule):
    check_gpt2_cache_against_reference(impl, oracle, dict(gpt2_args(GPT2_CONFIGS[1], 2, sum(schedule), seed=5),
                                                          chunk_sizes=schedule), device)


def check_gpt2_cache_against_reference(impl, oracle, args, device):
    """Chunked logits equal the reference's (or a composition of your own parts, GPT2_KV_CACHE); excused where
    the cache you share with the Llama-style model is wrong there too (charged in the kv_cache item)."""
    try:
        check_against_reference(impl, oracle, "run_gpt2_lm_incremental", args, component="gpt2_kv_cache", device=device,
                                composition=compositions.GPT2_KV_CACHE)
    except AssertionError:
        if own_llama_cache_gives_wrong_logits(impl):
            return
        raise
