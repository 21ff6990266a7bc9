"""The Transformer LM: embeddings → blocks → ln_final → lm_head, unnormalised logits."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from . import compositions
from .checks import assert_unchanged, call_or_own_parts, check_against_reference, on, property_or_own_parts
from .strategies import LM_CONFIGS, layouts, lm_cases, lm_weights, randint

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "An LM failure, when the block passes, is usually the positions (0 … seq−1 for every sequence), the "
    "final RMSNorm, or the LM head."
    "\n"
    "Ask yourself: does the final RMSNorm come before lm_head, and do the positions follow the sequence, "
    "not the context length?"
)


def lm_args(config, batch, seq, seed):
    return dict(**config.args(), weights=lm_weights(config, seed), in_indices=randint(config.vocab_size, (batch, seq), seed + 100))


def lm_wrt(config):
    return [f"weights/{name}" for name in lm_weights(config, 0)]


FIXED = [(LM_CONFIGS[0], 3, 16, 0), (LM_CONFIGS[1], 2, 7, 1), (LM_CONFIGS[2], 1, 1, 2)]


def lm_property(impl, check, calls):
    """A property of the LM; if it fails where the LM equals the composition of its own parts, a part pays."""
    property_or_own_parts(check, impl, "run_transformer_lm", compositions.transformer_lm, calls, "lm")


@given(case=lm_cases(), layout=layouts)
def test_lm_logits_are_batch_by_seq_by_vocab_in_weight_dtype(impl, device, case, layout):
    config, batch, seq, seed = case
    out = call_or_own_parts(impl, "run_transformer_lm", compositions.transformer_lm,
                            **on(lm_args(config, batch, seq, seed), device=device, layout=layout))
    if out is None:
        return  # it crashes where its own embedding, blocks, RMSNorm or Linear crash: charged there
    assert out.shape == (batch, seq, config.vocab_size) and out.dtype == torch.float32 and out.device.type == device.type


@given(case=lm_cases(min_seq=2), cut=st.integers(1, 15))
def test_lm_is_causal(impl, case, cut):
    """Changing tokens at positions ≥ t leaves every logit before t unchanged."""
    config, batch, seq, seed = case
    cut = min(cut, seq - 1)
    args = on(lm_args(config, batch, seq, seed))
    future = args["in_indices"].clone()
    future[:, cut:] = (future[:, cut:] + 1 + randint(config.vocab_size - 1, future[:, cut:].shape, seed + 3)) % config.vocab_size
    changed = dict(args, in_indices=future)

    def check():
        before, after = impl.run_transformer_lm(**args), impl.run_transformer_lm(**changed)
        assert_unchanged(after[:, :cut], before[:, :cut], f"logits at positions < {cut} after changing tokens at ≥ {cut}", component="lm")

    lm_property(impl, check, [args, changed])


@given(case=lm_cases(min_seq=2))
def test_lm_logits_of_a_prefix_equal_the_first_logits_of_the_whole(impl, case):
    config, batch, seq, seed = case
    args = on(lm_args(config, batch, seq, seed))
    prefix_args = dict(args, in_indices=args["in_indices"][:, : seq // 2])

    def check():
        prefix = impl.run_transformer_lm(**prefix_args)
        assert_unchanged(prefix, impl.run_transformer_lm(**args)[:, : seq // 2], "logits of the prefix alone vs within the full sequence",
                         component="lm")

    lm_property(impl, check, [args, prefix_args])


@given(case=lm_cases())
def test_lm_rows_of_a_batch_are_independent(impl, case):
    config, batch, seq, seed = case
    args = on(lm_args(config, 3, seq, seed))
    rows = [dict(args, in_indices=args["in_indices"][row : row + 1]) for row in range(3)]

    def check():
        whole = impl.run_transformer_lm(**args)
        for row in range(3):
            assert_unchanged(impl.run_transformer_lm(**rows[row]), whole[row : row + 1], f"logits of batch row {row} alone vs within the batch",
                             component="lm")

    lm_property(impl, check, [args, *rows])


@pytest.mark.parametrize("config, batch, seq, seed", FIXED)
def test_lm_matches_reference_on_fixed_cases(impl, oracle, device, config, batch, seq, seed):
    """Equal to the reference LM, or to embedding → your own blocks → ln_final → lm_head."""
    check_against_reference(impl, oracle, "run_transformer_lm", lm_args(config, batch, seq, seed), wrt=lm_wrt(config),
                            component="lm", device=device, composition=compositions.transformer_lm)
