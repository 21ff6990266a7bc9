"""Chunked forward with the KV cache against the hidden reference's full forward."""

import torch
from hypothesis import given
from hypothesis import strategies as st

from lmgrade.core.compare import Mismatch
from lmgrade.catalogue.diagnosis import diagnose_measurement, explained

from .. import compositions
from ..checks import check_against_reference, count_flops, on, raise_unless_own_parts_crash
from ..strategies import LM_CONFIGS, cached_lm_cases, chunk_schedules, layouts
from ..test_lm import lm_args


@given(case=cached_lm_cases, layout=layouts, data=st.data())
def test_chunked_forward_matches_reference_logits(impl, oracle, device, case, layout, data):
    config, batch, seq, seed = case
    schedule = data.draw(chunk_schedules(seq), label="chunk_sizes")
    args = dict(lm_args(config, batch, seq, seed), chunk_sizes=schedule)
    check_against_reference(impl, oracle, "run_transformer_lm_incremental", args, component="kv_cache", device=device,
                            layout=layout, composition=compositions.KV_CACHE)


def test_a_cached_decoding_step_costs_no_more_than_twice_the_reference_step(impl, oracle):
    """FLOPs of one cached step, measured against the reference's own cached step (not a formula)."""
    config = LM_CONFIGS[2]
    prefix = config.context_length - 1
    args = on(lm_args(config, 1, prefix + 1, seed=5))

    def step_flops(bound) -> int:
        with torch.no_grad():
            with_step, error = count_flops(bound, "run_transformer_lm_incremental", **args, chunk_sizes=[prefix, 1])
            prefill, _ = count_flops(bound, "run_transformer_lm_incremental",
                                     **dict(args, in_indices=args["in_indices"][:, :prefix]), chunk_sizes=[prefix])
        if error is not None and bound is impl and raise_unless_own_parts_crash(
                error, impl, "run_transformer_lm_incremental", compositions.KV_CACHE, **args, chunk_sizes=[prefix, 1]):
            return None  # its own parts crash the same way: charged to them
        if error is not None:
            raise error
        return with_step - prefill

    got = step_flops(impl)
    if got is None:
        return
    expected = step_flops(oracle.reference)
    if got > 2 * expected:
        raise explained(
            Mismatch(f"one cached decoding step cost {got} FLOPs, the reference's {expected}: is the prefix recomputed?"),
            lambda: diagnose_measurement(oracle, "run_transformer_lm_incremental", step_flops, got, lambda a, b: a == b))
