"""The GPT-2 LM: wte + wpe → pre-norm blocks (LayerNorm, c_attn/c_proj, c_fc → GELU → c_proj, biases)
→ ln_f → the tied head. Weights under transformers' GPT2LMHeadModel names, Conv1D layout (d_in, d_out)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from . import compositions
from .checks import assert_unchanged, call_or_own_parts, check_against_reference, on, property_or_own_parts
from .strategies import GPT2_CONFIGS, gpt2_cases, gpt2_weights, layouts, randint, randn

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "A GPT-2 LM failure, when LayerNorm and GELU pass, is usually the Conv1D layout (GPT-2 stores weights "
    "(d_in, d_out): y = x W + b, no transpose), q, k and v taken from the wrong columns of c_attn, a bias "
    "left out, the positions (wpe rows 0 … seq−1), or a head that is a copy of wte instead of wte itself."
    "\n"
    "Ask yourself: is lm_head.weight the very same Parameter as transformer.wte.weight, and which "
    "columns of c_attn's output are q, k and v?"
)


def gpt2_args(config, batch, seq, seed):
    return dict(**config.args(), weights=gpt2_weights(config, seed),
                in_indices=randint(config.vocab_size, (batch, seq), seed + 100))


FIXED = [(GPT2_CONFIGS[0], 3, 16, 0), (GPT2_CONFIGS[1], 2, 7, 1), (GPT2_CONFIGS[1], 1, 1, 2)]


def gpt2_property(impl, check, calls):
    """A property of the GPT-2 LM; if it fails where the LM equals the composition of its own parts, or where your
    causal attention (whose mask GPT-2 shares) is wrong on its own, a part pays."""
    try:
        property_or_own_parts(check, impl, "run_gpt2_lm", compositions.gpt2_lm_from_parts, calls, "gpt2_lm")
    except AssertionError:
        if own_causal_attention_is_wrong(impl):
            return
        raise


@given(case=gpt2_cases(), layout=layouts)
def test_gpt2_logits_are_batch_by_seq_by_vocab_in_weight_dtype(impl, device, case, layout):
    config, batch, seq, seed = case
    out = call_or_own_parts(impl, "run_gpt2_lm", compositions.gpt2_lm_from_parts,
                            **on(gpt2_args(config, batch, seq, seed), device=device, layout=layout))
    if out is None:
        return  # it crashes where its own LayerNorm, GELU or attention crash: charged there
    assert out.shape == (batch, seq, config.vocab_size) and out.dtype == torch.float32 and out.device.type == device.type


@given(case=gpt2_cases(min_seq=2), cut=st.integers(1, 15))
def test_gpt2_is_causal(impl, case, cut):
    """Changing tokens at positions ≥ t leaves every logit before t unchanged."""
    config, batch, seq, seed = case
    cut = min(cut, seq - 1)
    args = on(gpt2_args(config, batch, seq, seed))
    future = args["in_indices"].clone()
    future[:, cut:] = (future[:, cut:] + 1) % config.vocab_size
    changed = dict(args, in_indices=future)

    def check():
        before, after = impl.run_gpt2_lm(**args), impl.run_gpt2_lm(**changed)
        assert_unchanged(after[:, :cut], before[:, :cut], f"logits at positions < {cut} after changing tokens at ≥ {cut}",
                         component="gpt2_lm")

    gpt2_property(impl, check, [args, changed])


@given(case=gpt2_cases(min_seq=2))
def test_gpt2_position_t_uses_row_t_of_the_position_table(impl, case):
    """Changing wpe rows ≥ t leaves every logit before t unchanged, and changing row 0 changes position 0:
    the positions of a sequence are 0 … seq−1 (not counted from the end, not from 1)."""
    config, batch, seq, seed = case
    cut = seq // 2
    args = on(gpt2_args(config, batch, seq, seed))
    later = dict(args["weights"])
    later["transformer.wpe.weight"] = later["transformer.wpe.weight"].clone()
    later["transformer.wpe.weight"][cut:] += 1.0
    first = dict(args["weights"])
    first["transformer.wpe.weight"] = first["transformer.wpe.weight"].clone()
    first["transformer.wpe.weight"][0] += 1.0
    calls = [args, dict(args, weights=later), dict(args, weights=first)]

    def check():
        base, with_later, with_first = (impl.run_gpt2_lm(**call) for call in calls)
        assert_unchanged(with_later[:, :cut], base[:, :cut], f"logits at positions < {cut} after changing wpe rows ≥ {cut}",
                         component="gpt2_lm")
        assert not torch.allclose(with_first[:, 0], base[:, 0]), "changing wpe row 0 must change the logits at position 0"

    gpt2_property(impl, check, calls)


@given(case=gpt2_cases())
def test_gpt2_head_is_the_token_embedding_matrix(impl, case):
    """The tied head: the logit of token v is x · wte[v], so zeroing wte rows of tokens absent from the input
    makes exactly those logits 0 (the head has no weights of its own)."""
    config, batch, seq, seed = case
    args = on(gpt2_args(config, batch, seq, seed))
    absent = torch.ones(config.vocab_size, dtype=torch.bool)
    absent[args["in_indices"].flatten()] = False
    weights = dict(args["weights"])
    weights["transformer.wte.weight"] = torch.where(absent[:, None], 0.0, weights["transformer.wte.weight"])
    zeroed = dict(args, weights=weights)

    def check():
        logits = impl.run_gpt2_lm(**zeroed)[..., absent]
        assert_unchanged(logits, torch.zeros_like(logits), "logits of tokens whose wte row is 0 (the head is wte)",
                         component="gpt2_lm")

    gpt2_property(impl, check, [zeroed])


@pytest.mark.parametrize("config, batch, seq, seed", FIXED)
def test_gpt2_matches_reference_on_fixed_cases(impl, oracle, device, config, batch, seq, seed):
    """Logits and gradients w.r.t. every weight (the tied wte gets the embedding's and the head's part) equal the
    reference's, or GPT-2's composition of your own LayerNorm, GELU and attention."""
    check_gpt2_against_reference(impl, oracle, gpt2_args(config, batch, seq, seed), device)


def check_gpt2_against_reference(impl, oracle, args, device, layout="contiguous"):
    """Logits and gradients equal the reference's, or GPT-2's composition of your own parts; excused where your
    causal multi-head attention (whose mask GPT-2 shares) is wrong on its own: charged in the attention item."""
    try:
        check_against_reference(impl, oracle, "run_gpt2_lm", args, wrt=[f"weights/{name}" for name in args["weights"]], component="gpt2_lm", device=device,
                                layout=layout, composition=compositions.gpt2_lm_from_parts)
    except AssertionError:
        if own_causal_attention_is_wrong(impl):
            return
        raise


def own_causal_attention_is_wrong(impl) -> bool:
    """Your causal multi-head attention vs the composition of your own Linear and scaled dot-product attention
    under the SPEC causal mask (a crash is no excuse)."""
    d_model, heads, seq = 16, 2, 5
    weights = [randn((d_model, d_model), 50 + k, d_model**-0.5) for k in range(4)]
    x = randn((2, seq, d_model), 54)
    args = on(dict(d_model=d_model, num_heads=heads, q_proj_weight=weights[0], k_proj_weight=weights[1],
                   v_proj_weight=weights[2], o_proj_weight=weights[3], in_features=x))
    try:
        got = impl.run_multihead_self_attention(**args)
        own = compositions.multihead_self_attention(impl, **args)
    except Exception:  # noqa: BLE001
        return False
    return not torch.allclose(got.double().cpu(), own.double().cpu(), rtol=1e-4, atol=1e-5)
