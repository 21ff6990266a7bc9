"""The pre-norm Transformer block: x + attn(ln1(x)), then + ffn(ln2(x))."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from . import compositions
from .checks import assert_unchanged, call_or_own_parts, check_against_reference, on, property_or_own_parts
from .strategies import LM_CONFIGS, block_weights, layouts, lm_cases, randn

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "A block failure, when attention, RMSNorm and SwiGLU pass on their own, is in the wiring: pre-norm "
    "order, residuals, which norm goes where."
    "\n"
    "Ask yourself: is it h = x + attn(ln1(x)) and then h + ffn(ln2(h))?"
)

BLOCK_WEIGHT_NAMES = list(block_weights(8, 8, 0))


def block_args(config, batch, seq, seed, scale=1.0):
    return dict(
        d_model=config.d_model,
        num_heads=config.num_heads,
        d_ff=config.d_ff,
        max_seq_len=config.context_length,
        theta=config.rope_theta,
        weights=block_weights(config.d_model, config.d_ff, seed),
        in_features=randn((batch, seq, config.d_model), seed + 100, scale),
    )


WRT = [f"weights/{name}" for name in BLOCK_WEIGHT_NAMES] + ["in_features"]
FIXED = [(LM_CONFIGS[0], 3, 5, 0), (LM_CONFIGS[2], 2, 16, 1), (LM_CONFIGS[1], 1, 1, 2)]


@given(case=lm_cases(), layout=layouts)
def test_block_output_keeps_input_shape_and_dtype(impl, device, case, layout):
    config, batch, seq, seed = case
    out = call_or_own_parts(impl, "run_transformer_block", compositions.transformer_block,
                            **on(block_args(config, batch, seq, seed), device=device, layout=layout))
    if out is None:
        return  # it crashes where its own RMSNorm, attention or SwiGLU crashes: charged there
    assert out.shape == (batch, seq, config.d_model) and out.dtype == torch.float32 and out.device.type == device.type


@given(case=lm_cases(min_seq=2), cut=st.integers(1, 15))
def test_block_is_causal(impl, case, cut):
    """Changing inputs at positions ≥ t leaves every block output before t unchanged."""
    config, batch, seq, seed = case
    cut = min(cut, seq - 1)
    args = on(block_args(config, batch, seq, seed))
    future = args["in_features"].clone()
    future[:, cut:] = randn(future[:, cut:].shape, seed + 7).float()
    changed = dict(args, in_features=future)

    def check():
        before, after = impl.run_transformer_block(**args), impl.run_transformer_block(**changed)
        assert_unchanged(after[:, :cut], before[:, :cut], f"block outputs at positions < {cut} after changing inputs at ≥ {cut}",
                         component="block")

    property_or_own_parts(check, impl, "run_transformer_block", compositions.transformer_block, [args, changed], "block")


@pytest.mark.parametrize("config, batch, seq, seed", FIXED)
def test_block_matches_reference_on_fixed_cases(impl, oracle, device, config, batch, seq, seed):
    """Equal to the reference block, or to x + attn(ln1(x)), + ffn(ln2(·)) built from your own parts."""
    check_against_reference(impl, oracle, "run_transformer_block", block_args(config, batch, seq, seed), wrt=WRT,
                            component="block", device=device, composition=compositions.transformer_block)
