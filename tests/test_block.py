"""The pre-norm Transformer block: x + attn(ln1(x)), then + ffn(ln2(x))."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from .checks import assert_unchanged, check_against_reference, on
from .strategies import LM_CONFIGS, block_weights, float_dtypes, lm_cases, randn

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


@given(case=lm_cases(), dtype=float_dtypes)
def test_block_output_keeps_input_shape_and_dtype(impl, device, case, dtype):
    config, batch, seq, seed = case
    out = impl.run_transformer_block(**on(block_args(config, batch, seq, seed), dtype, device))
    assert out.shape == (batch, seq, config.d_model) and out.dtype == dtype and out.device.type == device.type


@given(case=lm_cases(min_seq=2), cut=st.integers(1, 15))
def test_block_is_causal(impl, case, cut):
    """Changing inputs at positions ≥ t leaves every block output before t unchanged."""
    config, batch, seq, seed = case
    cut = min(cut, seq - 1)
    args = block_args(config, batch, seq, seed)
    future = args["in_features"].clone()
    future[:, cut:] = randn(future[:, cut:].shape, seed + 7)
    before, after = impl.run_transformer_block(**args), impl.run_transformer_block(**dict(args, in_features=future))
    assert_unchanged(after[:, :cut], before[:, :cut], f"block outputs at positions < {cut} after changing inputs at ≥ {cut}")


@pytest.mark.parametrize("config, batch, seq, seed", FIXED)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_block_matches_reference_on_fixed_cases(impl, oracle, device, config, batch, seq, seed, dtype):
    args = block_args(config, batch, seq, seed)
    check_against_reference(impl, oracle, "run_transformer_block", args, wrt=WRT, component="block", dtype=dtype, device=device)
