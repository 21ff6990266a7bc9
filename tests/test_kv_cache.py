"""The KV cache: feeding a sequence in chunks gives the full forward's logits, at O(context) cost per token."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from . import compositions
from .checks import assert_unchanged, check_against_reference, count_flops, on, property_or_own_parts, raise_unless_own_parts_crash
from .strategies import LM_CONFIGS, cached_lm_cases, chunk_schedules
from .test_lm import lm_args

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "A KV-cache failure is usually the positions of a later chunk (they continue from the cache's length,"
    " not from 0), or its mask: a chunk's queries see every cached key and the causal part of their own "
    "chunk."
    "\n"
    "Ask yourself: for a chunk of m tokens after n cached ones, what are the queries' positions, and "
    "which keys may query i see? (A top-left causal mask is wrong here.)"
)


@given(case=cached_lm_cases, data=st.data())
def test_chunked_forward_with_cache_equals_full_forward_for_random_schedules(impl, case, data):
    config, batch, seq, seed = case
    schedule = data.draw(chunk_schedules(seq), label="chunk_sizes")
    args = on(lm_args(config, batch, seq, seed))
    kv_property(impl, args, schedule)


def kv_property(impl, args, schedule):
    """Chunked == your own full forward; excused where the chunked logits equal the reference's cache
    logic over your own parts (then a part, e.g. a softmax over all queries, is what differs)."""
    def check():
        chunked = impl.run_transformer_lm_incremental(**args, chunk_sizes=schedule)
        assert_unchanged(chunked.cpu(), impl.run_transformer_lm(**args).cpu(), f"logits fed in chunks {schedule} vs your own full forward",
                         component="kv_cache")

    property_or_own_parts(check, impl, "run_transformer_lm_incremental", compositions.KV_CACHE[1:],
                          [dict(args, chunk_sizes=schedule)], "kv_cache")


# A prefill, then multi-token chunks: the new queries must see the whole cache (bottom-right
# causal mask) and continue the positions (RoPE offset), which one-token steps do not reveal.
SCHEDULES = [[5, 3, 4, 4], [1, 1, 1, 13], [8, 1, 2, 5], [16]]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: "+".join(map(str, s)))
def test_multi_token_chunks_after_a_prefill_equal_the_full_forward(impl, device, schedule):
    config = LM_CONFIGS[2]
    args = on(lm_args(config, 2, sum(schedule), seed=11), device=device)
    kv_property(impl, args, schedule)


def test_decoding_one_token_with_the_cache_does_not_recompute_the_prefix(impl):
    """FLOPs of one cached step ≈ one token through every matmul, plus attention over the cache.

    Re-running the prefix would cost about `prefix` times as much; the bound allows 2× the
    analytical count of a cached step, so any implementation that caches passes.
    """
    config = LM_CONFIGS[2]
    prefix = config.context_length - 1
    args = on(lm_args(config, 1, prefix + 1, seed=5))
    with torch.no_grad():
        with_step, error = count_flops(impl, "run_transformer_lm_incremental", **args, chunk_sizes=[prefix, 1])
        prefill_only, _ = count_flops(impl, "run_transformer_lm_incremental", **dict(args, in_indices=args["in_indices"][:, :prefix]), chunk_sizes=[prefix])
    if error is not None and raise_unless_own_parts_crash(error, impl, "run_transformer_lm_incremental", compositions.KV_CACHE,
                                                          **args, chunk_sizes=[prefix, 1]):
        return  # its own parts crash the same way: charged to them
    step = with_step - prefill_only
    d, f, L, V = config.d_model, config.d_ff, config.num_layers, config.vocab_size
    per_token_matmuls = 2 * (L * (4 * d * d + 3 * d * f) + d * V)
    attention_over_cache = 2 * L * 2 * (prefix + 1) * d  # q·k and weights·v over every cached key
    analytical = per_token_matmuls + attention_over_cache
    assert step <= 2 * analytical, (
        f"one cached decoding step cost {step} FLOPs; a step that reuses the cache needs about {analytical} "
        f"(a full re-run of the {prefix}-token prefix costs about {prefix * per_token_matmuls}): is the prefix recomputed?"
    )


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: "+".join(map(str, s)))
def test_multi_token_chunks_after_a_prefill_match_the_reference_logits(impl, oracle, device, schedule):
    """Equal to the reference's logits, or to your own full forward, or to the reference's cache logic over
    your own parts (so a wrong LM, attention or softmax is charged to its own item)."""
    args = dict(lm_args(LM_CONFIGS[2], 2, sum(schedule), seed=11), chunk_sizes=schedule)
    check_against_reference(impl, oracle, "run_transformer_lm_incremental", args, component="kv_cache", device=device,
                            composition=compositions.KV_CACHE)
