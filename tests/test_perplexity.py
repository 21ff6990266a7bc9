"""Sliding-window perplexity: every token after the first scored once, exp(total NLL / scored tokens)."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lmgrade.compare import Mismatch, assert_close
from lmgrade.diagnosis import diagnose_measurement, explained

from .checks import on
from .strategies import lm_weights, randint, seeds
from .test_generate import GEN_CONFIG, is_value_error, no_shrinking
from .tolerances import Tolerance, tolerance

# A perplexity is exp(mean NLL): its relative error is the absolute error of the mean NLL.
# float64, same LM, different bookkeeping: only the order of additions differs.
PPL64 = Tolerance(rtol=1e-10, atol=1e-12)

# The model of the generation tests (two layers, context 10): einx traces each new shape once,
# and these lengths and strides make every window the model sees 1, 8 or 10 tokens long.
PPL_CONFIG = GEN_CONFIG
C = PPL_CONFIG.context_length
# 2: one target; 9 and C+1: a single window; 19: several windows, the last one shorter for strides 5 and 10.
LENGTHS = st.sampled_from([2, 9, C + 1, 19])
STRIDES = st.sampled_from([1, 4, C // 2, C])
LM_KEYS = ("vocab_size", "context_length", "d_model", "num_layers", "num_heads", "d_ff", "rope_theta", "weights")


def ppl_args(config, n: int, stride: int, seed: int) -> dict:
    return dict(**config.args(), weights=lm_weights(config, seed), token_ids=randint(config.vocab_size, (n,), seed + 100),
                stride=stride)


def scoring_windows(n: int, context_length: int, stride: int) -> dict[int, list[int]]:
    """{window start: the target positions it scores}, decided token by token.

    The window starting at s feeds tokens s … s+C−1 and predicts s+1 … s+C. Target t belongs
    to the first window start k·stride that predicts it: the smallest k ≥ 0 with k·stride + C ≥ t.
    """
    owners: dict[int, list[int]] = {}
    for t in range(1, n):
        k = max(0, -(-(t - context_length) // stride))  # ceil((t − C) / stride), at least 0
        owners.setdefault(k * stride, []).append(t)
    return owners


def window_nlls(logits_of, token_ids: torch.Tensor, context_length: int, stride: int) -> list[torch.Tensor]:
    """The NLL of every scored target, grouped by the window that scores it (float64).

    `logits_of(window)` returns the LM's logits for a (1, context_length) window. Windows
    near the end are padded with token 0: the LM is causal, so padding after the last
    input does not change the logits that are read.
    """
    n, groups = len(token_ids), []
    for start, targets in scoring_windows(n, context_length, stride).items():
        window = token_ids[start : start + context_length]
        padded = torch.cat([window, window.new_zeros(context_length - len(window))])
        logits = logits_of(padded[None])[0].double().cpu()
        rows = torch.tensor(targets) - 1 - start  # logits at position i predict token i + 1
        log_probs = torch.log_softmax(logits[rows], dim=-1)
        groups.append(-log_probs.gather(-1, token_ids[targets][:, None]).squeeze(-1))
    return groups


def token_weighted_ppl(groups: list[torch.Tensor]) -> float:
    nll = torch.cat(groups)
    return math.exp(float(nll.sum()) / len(nll))


def lm_logits(impl, args: dict):
    return lambda window: impl.run_transformer_lm(**{k: args[k] for k in LM_KEYS}, in_indices=window)


def assert_ppl_close(got: float, expected: float, tol: Tolerance, what: str) -> None:
    assert isinstance(got, float), f"perplexity must be a Python float, got {type(got).__name__}"
    assert_close(torch.tensor([got], dtype=torch.float64), torch.tensor([expected], dtype=torch.float64), tol, what)


def check_ppl_against(impl, oracle, args: dict, expected: float, dtype: torch.dtype, device: torch.device, what: str) -> None:
    """impl's perplexity for args (in dtype on device) is within tolerance of expected; a mismatch names the bug it matches."""

    def ppl_of(bound) -> float:
        return bound.run_perplexity(**on(args, dtype, device))

    got = ppl_of(impl)
    try:
        assert_ppl_close(got, expected, tolerance("cross_entropy", dtype), what)
    except Mismatch as error:
        raise explained(error, lambda: diagnose_measurement(oracle, "run_perplexity", ppl_of, got,
                                                            lambda a, b: math.isclose(a, b, rel_tol=1e-6)))


# --- properties ---------------------------------------------------------------------------------


@no_shrinking
@given(n=LENGTHS, stride=STRIDES, seed=seeds, dtype=st.sampled_from([torch.float32, torch.float64]))
def test_perplexity_is_a_finite_python_float_of_at_least_one(impl, device, n, stride, seed, dtype):
    ppl = impl.run_perplexity(**on(ppl_args(PPL_CONFIG, n, stride, seed), dtype, device))
    assert isinstance(ppl, float) and math.isfinite(ppl) and ppl >= 1.0 - 1e-6, f"perplexity {ppl!r} (n={n}, stride={stride})"


@no_shrinking
@given(n=LENGTHS, stride=STRIDES, seed=seeds)
def test_perplexity_is_exp_of_the_mean_nll_with_every_token_after_the_first_scored_once(impl, n, stride, seed):
    """The model's own logits, windows assigned token by token in the test: each target once, by its first window."""
    args = ppl_args(PPL_CONFIG, n, stride, seed)
    expected = token_weighted_ppl(window_nlls(lm_logits(impl, args), args["token_ids"], C, stride))
    assert_ppl_close(impl.run_perplexity(**args), expected, PPL64,
                     f"perplexity (n={n}, stride={stride}, context_length={C}) vs exp(mean NLL) of tokens 1 … {n - 1}, "
                     "each scored once by the first window that predicts it")


@pytest.mark.parametrize("n, stride", [(19, C), (19, 4)])
def test_perplexity_is_the_token_weighted_mean_not_a_mean_of_window_means(impl, n, stride):
    """The windows score different numbers of tokens here (10 then 8; or 10, 4 and 4), so the two means differ."""
    args = ppl_args(PPL_CONFIG, n, stride, seed=3)
    groups = window_nlls(lm_logits(impl, args), args["token_ids"], C, stride)
    token_weighted = token_weighted_ppl(groups)
    window_means = math.exp(sum(float(g.mean()) for g in groups) / len(groups))
    assert abs(window_means / token_weighted - 1) > 1e-4, "test precondition: the two means must differ for these inputs"
    got = impl.run_perplexity(**args)
    assert_ppl_close(got, token_weighted, PPL64,
                     f"perplexity (n={n}, stride={stride}) vs exp(total NLL / number of scored tokens) = {token_weighted:.6g} "
                     f"(a mean of the windows' means gives {window_means:.6g})")


@no_shrinking
@given(n=st.sampled_from([2, 9, C + 1]), stride=STRIDES, seed=seeds)
def test_a_sequence_of_at_most_context_plus_one_tokens_is_one_window_for_every_stride(impl, n, stride, seed):
    """ppl = exp(cross-entropy of one forward pass over tokens[:-1] against tokens[1:]), whatever the stride."""
    args = ppl_args(PPL_CONFIG, n, stride, seed)
    ids = args["token_ids"]
    logits = impl.run_transformer_lm(**{k: args[k] for k in LM_KEYS}, in_indices=ids[None, :-1])[0]
    nll = -torch.log_softmax(logits, dim=-1).gather(-1, ids[1:, None])
    assert_ppl_close(impl.run_perplexity(**args), math.exp(float(nll.mean())), PPL64,
                     f"perplexity of {n} tokens (context_length {C}, stride {stride}) vs the plain next-token loss of one pass")


@pytest.mark.parametrize("n, stride", [(0, 1), (1, 1), (1, C), (9, 0), (9, C + 1), (19, -1)])
def test_fewer_than_two_tokens_or_a_stride_outside_1_to_context_length_raises_value_error(impl, n, stride):
    with pytest.raises(Exception) as raised:
        impl.run_perplexity(**ppl_args(PPL_CONFIG, n, stride, seed=0))
    if not is_value_error(raised.value):
        raise raised.value


FIXED = [(2, 1, 0), (C + 1, C, 1), (19, C, 2), (19, 4, 3), (16, 1, 4), (19, C // 2, 5)]


@pytest.mark.parametrize("n, stride, seed", FIXED)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_perplexity_matches_reference_logits_scored_window_by_window_on_fixed_cases(impl, oracle, device, n, stride, seed, dtype):
    """Expected: the reference LM's logits (through the oracle, so the handout ships them) scored by the SPEC windows."""
    args = ppl_args(PPL_CONFIG, n, stride, seed)
    reference_lm = {k: args[k] for k in LM_KEYS}

    def reference_logits(window):
        return oracle.expected("run_transformer_lm", dict(reference_lm, in_indices=window))["output"]

    expected = token_weighted_ppl(window_nlls(reference_logits, args["token_ids"], C, stride))
    check_ppl_against(impl, oracle, args, expected, dtype, device, f"perplexity (n={n}, stride={stride}, {dtype}) vs the reference")
