"""LayerNorm (the GPT-2 variant): (x − mean) / sqrt(var + eps) · weight + bias, in at least float32."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from .checks import assert_unchanged, check_against_reference, on
from .strategies import layouts, leading_dims, model_dims, randn, seeds

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "A LayerNorm failure is usually the mean left in (that is RMSNorm), the unbiased variance (÷ d−1), eps "
    "outside the square root, or the bias left out."
    "\n"
    "Ask yourself: do you subtract the mean before dividing by sqrt(var + eps), with var = mean of squared "
    "deviations, and then scale by weight and shift by bias?"
)


def layernorm_args(lead, d_model, seed, scale=1.0, shift=0.0, eps=1e-5):
    return dict(
        d_model=d_model,
        eps=eps,
        weight=1.0 + 0.2 * randn((d_model,), seed),
        bias=0.2 * randn((d_model,), seed + 1),
        in_features=randn((*lead, d_model), seed + 2, scale) + shift,
    )


WRT = ["weight", "bias", "in_features"]
# A shift of 3 makes the mean matter; scale 0.01 makes eps matter (var ≈ 1e-4 vs eps 1e-5); d = 8 makes
# the unbiased variance (÷ 7) differ from the biased one (÷ 8) by 7 %.
FIXED = [((2, 5), 16, 0, 1.0, 3.0, 1e-5), ((3,), 8, 1, 0.01, 0.0, 1e-5), ((2, 3, 4), 24, 2, 10.0, -2.0, 1e-5),
         ((4,), 8, 3, 1.0, 0.5, 0.0)]


@given(lead=leading_dims, d_model=model_dims, layout=layouts, seed=seeds)
def test_layernorm_output_keeps_input_shape_and_dtype(impl, device, lead, d_model, layout, seed):
    out = impl.run_layernorm(**on(layernorm_args(lead, d_model, seed), device=device, layout=layout))
    assert out.shape == (*lead, d_model) and out.dtype == torch.float32 and out.device.type == device.type


@given(lead=leading_dims, d_model=model_dims, scale=st.sampled_from([1.0, 10.0]), shift=st.sampled_from([0.0, 4.0]),
       seed=seeds)
def test_layernorm_with_unit_weight_and_zero_bias_gives_zero_mean_and_unit_variance(impl, lead, d_model, scale, shift, seed):
    args = layernorm_args(lead, d_model, seed, scale, shift, eps=1e-12)
    args["weight"], args["bias"] = torch.ones(d_model, dtype=torch.float64), torch.zeros(d_model, dtype=torch.float64)
    out = impl.run_layernorm(**on(args)).double()
    mean, var = out.mean(-1), out.var(-1, unbiased=False)
    assert_unchanged(torch.stack([mean, var]), torch.stack([torch.zeros_like(mean), torch.ones_like(var)]),
                     "mean and (biased) variance over the last dim of LayerNorm's output (weight 1, bias 0, eps 1e-12)",
                     component="layernorm")


@given(lead=leading_dims, d_model=model_dims, shift=st.sampled_from([-3.0, 5.0]), seed=seeds)
def test_layernorm_ignores_a_constant_added_to_every_feature(impl, lead, d_model, shift, seed):
    """LayerNorm(x + c) = LayerNorm(x) for a per-row constant c: the mean is subtracted (RMSNorm's is not)."""
    args = on(layernorm_args(lead, d_model, seed))
    shifted = dict(args, in_features=args["in_features"] + shift)
    assert_unchanged(impl.run_layernorm(**shifted), impl.run_layernorm(**args),
                     f"LayerNorm(x + {shift}) vs LayerNorm(x)", component="layernorm")


@pytest.mark.parametrize("lead, d_model, seed, scale, shift, eps", FIXED)
def test_layernorm_matches_reference_on_fixed_cases(impl, oracle, device, lead, d_model, seed, scale, shift, eps):
    args = layernorm_args(lead, d_model, seed, scale, shift, eps)
    check_against_reference(impl, oracle, "run_layernorm", args, wrt=WRT, component="layernorm", device=device)
