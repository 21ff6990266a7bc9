"""Scaled dot-product attention and causal multi-head self-attention (with and without RoPE)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from . import compositions
from .checks import assert_unchanged, call_or_own_parts, check_against_reference, on, property_or_own_parts
from .strategies import LM_CONFIGS, batch_sizes, layouts, leading_dims, lm_configs, randint, randn, seeds

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "An attention failure is usually the mask (True = may attend), the 1/√d_k scale, or how heads are "
    "split and merged."
    "\n"
    "Ask yourself: with fewer queries than keys, which keys may query i see? Does your head split keep "
    "each head's d_k columns together?"
)

ATTENTION_SIZES = st.sampled_from([(1, 1), (4, 4), (3, 6), (5, 2)])  # (queries, keys)


def sdpa_args(lead, queries, keys, d_k, d_v, seed, with_mask=True, scale=1.0):
    args = dict(
        Q=randn((*lead, queries, d_k), seed, scale),
        K=randn((*lead, keys, d_k), seed + 1, scale),
        V=randn((*lead, keys, d_v), seed + 2),
    )
    if with_mask:
        mask = torch.rand((*lead, queries, keys), generator=torch.Generator().manual_seed(seed + 3)) < 0.6
        rows = torch.arange(queries)
        mask[..., rows, rows % keys] = True  # every query may attend to at least one key
        args["mask"] = mask
    return args


def mha_args(config, batch, seq, seed, lead=(), rope=False, positions="default"):
    d = config.d_model
    args = dict(
        d_model=d,
        num_heads=config.num_heads,
        q_proj_weight=randn((d, d), seed, d**-0.5),
        k_proj_weight=randn((d, d), seed + 1, d**-0.5),
        v_proj_weight=randn((d, d), seed + 2, d**-0.5),
        o_proj_weight=randn((d, d), seed + 3, d**-0.5),
        in_features=randn((*lead, batch, seq, d), seed + 4),
    )
    if rope:
        args.update(max_seq_len=config.context_length, theta=config.rope_theta)
        if positions == "shuffled":  # explicit, non-monotone positions below the context length
            args["token_positions"] = randint(config.context_length, (*lead, batch, seq), seed + 5)
        elif positions == "arange":
            args["token_positions"] = torch.arange(seq)
    return args


SDPA_WRT = ["Q", "K", "V"]
MHA_WRT = ["q_proj_weight", "k_proj_weight", "v_proj_weight", "o_proj_weight", "in_features"]
FIXED_SDPA = [((2,), 4, 4, 8, False, 0), ((2, 3), 3, 6, 5, True, 1), ((), 5, 2, 4, True, 2)]
FIXED_MHA = [(LM_CONFIGS[0], 3, 5, 0), (LM_CONFIGS[2], 2, 16, 1), (LM_CONFIGS[1], 1, 1, 2)]


@given(lead=leading_dims, sizes=ATTENTION_SIZES, d_v=st.sampled_from([4, 8]), with_mask=st.booleans(), layout=layouts, seed=seeds)
def test_attention_output_is_queries_by_d_v_in_input_dtype(impl, device, lead, sizes, d_v, with_mask, layout, seed):
    queries, keys = sizes
    args = on(sdpa_args(lead, queries, keys, 8, d_v, seed, with_mask), device=device, layout=layout)
    out = impl.run_scaled_dot_product_attention(**args)
    assert out.shape == (*lead, queries, d_v) and out.dtype == torch.float32 and out.device.type == device.type


@given(lead=leading_dims, sizes=ATTENTION_SIZES, seed=seeds)
def test_attention_ignores_keys_and_values_the_mask_hides(impl, lead, sizes, seed):
    """Mask True = may attend: K and V at a key no query may see cannot change the output."""
    queries, keys = sizes
    if keys < 2:
        return
    args = sdpa_args(lead, queries, keys, 8, 8, seed)
    args["mask"][..., -1] = False  # nobody may see the last key…
    args["mask"][..., 0] = True  # …and everybody may see the first
    args = on(args)
    changed = dict(args, K=args["K"].clone(), V=args["V"].clone())
    changed["K"][..., -1, :] += 5.0
    changed["V"][..., -1, :] -= 7.0
    assert_unchanged(impl.run_scaled_dot_product_attention(**changed), impl.run_scaled_dot_product_attention(**args),
                     "attention output after changing K and V at a masked-out key", component="attention")


@given(config=lm_configs, batch=batch_sizes, lead=st.sampled_from([(), (2,)]), rope=st.booleans(), layout=layouts, seed=seeds)
def test_multihead_attention_output_keeps_input_shape_and_dtype(impl, device, config, batch, lead, rope, layout, seed):
    args = on(mha_args(config, batch, config.context_length - 1, seed, lead, rope), device=device, layout=layout)
    name = "run_multihead_self_attention_with_rope" if rope else "run_multihead_self_attention"
    out = call_or_own_parts(impl, name, compositions.COMPOSITIONS[name], **args)
    if out is None:
        return  # it crashes where its own Linear, RoPE or attention crashes: charged there
    assert out.shape == args["in_features"].shape and out.dtype == torch.float32 and out.device.type == device.type


@given(config=lm_configs, batch=batch_sizes, rope=st.booleans(), cut=st.integers(1, 11), seed=seeds)
def test_multihead_attention_is_causal(impl, config, batch, rope, cut, seed):
    """Changing inputs at positions ≥ t leaves every output before t unchanged."""
    seq = config.context_length
    args = on(mha_args(config, batch, seq, seed, rope=rope))
    name = "run_multihead_self_attention_with_rope" if rope else "run_multihead_self_attention"
    future = args["in_features"].clone()
    future[:, cut:] = randn(future[:, cut:].shape, seed + 99).float()
    changed = dict(args, in_features=future)

    def check():
        before, after = getattr(impl, name)(**args), getattr(impl, name)(**changed)
        assert_unchanged(after[:, :cut], before[:, :cut], f"attention outputs at positions < {cut} after changing inputs at ≥ {cut}",
                         component="attention")

    property_or_own_parts(check, impl, name, compositions.COMPOSITIONS[name], [args, changed], "attention")


@given(config=lm_configs, batch=st.sampled_from([2, 3]), seed=seeds)
def test_multihead_attention_default_positions_are_0_to_seq_minus_1(impl, config, batch, seed):
    seq = config.context_length // 2
    default = impl.run_multihead_self_attention_with_rope(**on(mha_args(config, batch, seq, seed, rope=True)))
    explicit = impl.run_multihead_self_attention_with_rope(**on(mha_args(config, batch, seq, seed, rope=True, positions="arange")))
    assert_unchanged(default, explicit, "attention with token_positions=None vs token_positions=arange(seq)", component="attention")


@pytest.mark.parametrize("lead, queries, keys, d_v, with_mask, seed", FIXED_SDPA)
def test_attention_matches_reference_on_fixed_cases(impl, oracle, device, lead, queries, keys, d_v, with_mask, seed):
    args = sdpa_args(lead, queries, keys, 8, d_v, seed, with_mask)
    check_against_reference(impl, oracle, "run_scaled_dot_product_attention", args, wrt=SDPA_WRT, component="attention",
                            device=device, composition=compositions.scaled_dot_product_attention)


@pytest.mark.parametrize("config, batch, seq, seed", FIXED_MHA)
@pytest.mark.parametrize("rope", [False, True])
def test_multihead_attention_matches_reference_on_fixed_cases(impl, oracle, device, config, batch, seq, seed, rope):
    args = mha_args(config, batch, seq, seed, rope=rope, positions="shuffled" if seed == 1 else "default")
    fn = "run_multihead_self_attention_with_rope" if rope else "run_multihead_self_attention"
    check_against_reference(impl, oracle, fn, args, wrt=MHA_WRT, component="attention", device=device,
                            composition=compositions.COMPOSITIONS[fn])


@pytest.mark.parametrize("config, seed", [(LM_CONFIGS[0], 3), (LM_CONFIGS[1], 4)])
def test_multihead_attention_with_per_row_positions_matches_reference_when_batch_equals_heads(impl, oracle, device, config, seed):
    """batch == heads: positions of shape (batch, seq) broadcast against the heads axis without a shape error."""
    args = mha_args(config, config.num_heads, config.context_length // 2, seed, rope=True, positions="shuffled")
    check_against_reference(impl, oracle, "run_multihead_self_attention_with_rope", args, wrt=MHA_WRT, component="attention",
                            device=device, composition=compositions.multihead_self_attention_with_rope)
