"""SiLU and the SwiGLU feed-forward network: W2( silu(W1 x) ⊙ W3 x )."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from . import compositions
from .checks import assert_unchanged, call_or_own_parts, check_against_reference, on
from .strategies import layouts, leading_dims, model_dims, randn, scales, seeds

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "A SwiGLU failure is usually w1, w2 and w3 swapped, or SiLU applied after the product instead of to "
    "w1 x."
    "\n"
    "Ask yourself: is your output w2(silu(w1 x) ⊙ w3 x), with silu(x) = x · σ(x)?"
)


def silu_args(lead, seed, scale=1.0):
    return dict(in_features=randn((*lead, 7), seed, scale))


def swiglu_args(lead, d_model, d_ff, seed, scale=1.0):
    return dict(
        d_model=d_model,
        d_ff=d_ff,
        w1_weight=randn((d_ff, d_model), seed, d_model**-0.5),
        w2_weight=randn((d_model, d_ff), seed + 1, d_ff**-0.5),
        w3_weight=randn((d_ff, d_model), seed + 2, d_model**-0.5),
        in_features=randn((*lead, d_model), seed + 3, scale),
    )


SWIGLU_WRT = ["w1_weight", "w2_weight", "w3_weight", "in_features"]
FIXED_SWIGLU = [((2, 5), 16, 40, 0), ((3,), 8, 24, 1), ((2, 1, 3), 24, 64, 2)]


@given(lead=leading_dims, layout=layouts, seed=seeds)
def test_silu_keeps_shape_and_dtype(impl, device, lead, layout, seed):
    args = on(silu_args(lead, seed, 5.0), device=device, layout=layout)
    out = impl.run_silu(**args)
    assert out.shape == args["in_features"].shape and out.dtype == torch.float32 and out.device.type == device.type


@given(lead=leading_dims, seed=seeds)
def test_silu_equals_x_sigmoid_x(impl, lead, seed):
    x = on(silu_args(lead, seed, 5.0))["in_features"]
    assert_unchanged(impl.run_silu(in_features=x), x / (1 + torch.exp(-x)), "silu(x) vs x / (1 + exp(-x))", component="silu")


@given(lead=leading_dims, d_model=model_dims, d_ff=st.sampled_from([24, 40]), layout=layouts, seed=seeds)
def test_swiglu_output_keeps_input_shape_and_dtype(impl, device, lead, d_model, d_ff, layout, seed):
    out = call_or_own_parts(impl, "run_swiglu", compositions.swiglu, **on(swiglu_args(lead, d_model, d_ff, seed), device=device, layout=layout))
    if out is None:
        return  # it crashes where its own Linear or SiLU crashes: charged there
    assert out.shape == (*lead, d_model) and out.dtype == torch.float32 and out.device.type == device.type


def test_silu_matches_reference_on_fixed_cases(impl, oracle, device):
    args = silu_args((3, 4), 0, 4.0)
    check_against_reference(impl, oracle, "run_silu", args, wrt=["in_features"], component="silu", device=device)


@pytest.mark.parametrize("lead, d_model, d_ff, seed", FIXED_SWIGLU)
def test_swiglu_matches_reference_on_fixed_cases(impl, oracle, device, lead, d_model, d_ff, seed):
    args = swiglu_args(lead, d_model, d_ff, seed)
    check_against_reference(impl, oracle, "run_swiglu", args, wrt=SWIGLU_WRT, component="swiglu", device=device,
                            composition=compositions.swiglu)
