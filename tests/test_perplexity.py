"""Sliding-window perplexity: every token after the first scored once, exp(total NLL / scored tokens).

float32 weights throughout (SPEC §4.1). Perplexity is a composite (SPEC §4.6): it passes when it
equals the reference's perplexity OR the SPEC windowing applied to the submission's OWN
run_transformer_lm logits (the NLL taken in float64 from its float32 logits), so a wrong LM is
charged to the LM item, not here.
"""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lmgrade.core.compare import Mismatch, assert_close
from lmgrade.catalogue.diagnosis import diagnose_measurement, explained

from .checks import ground_truth, on
from .strategies import lm_weights, randint, seeds
from .test_generate import GEN_CONFIG, is_value_error, no_shrinking
from .tolerances import Tolerance, tolerance

# A perplexity is exp(mean NLL): its relative error is the absolute error of the mean NLL, which
# the "perplexity" row bounds (float32 logits; other window shapes sum in other orders).
PPL = tolerance("perplexity", torch.float32)

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

    `logits_of(window)` returns the LM's logits for a (1, length) window. A window starting at s
    feeds tokens s … min(s + C, n − 1) − 1, as the reference does (no padding: the result does not
    lean on the LM being causal, so a submission's own non-causal LM is scored as its own
    perplexity would score it).
    """
    n, groups = len(token_ids), []
    for start, targets in scoring_windows(n, context_length, stride).items():
        window = token_ids[start : min(start + context_length, n - 1)]
        logits = logits_of(window[None])[0].detach().double().cpu()
        rows = torch.tensor(targets) - 1 - start  # logits at position i predict token i + 1
        log_probs = torch.log_softmax(logits[rows], dim=-1)
        groups.append(-log_probs.gather(-1, token_ids[targets][:, None].cpu()).squeeze(-1))
    return groups


def token_weighted_ppl(groups: list[torch.Tensor]) -> float:
    nll = torch.cat(groups)
    return math.exp(float(nll.sum()) / len(nll))


def lm_logits(impl, args: dict):
    """args: the impl's arguments (float32 weights, on its device)."""
    return lambda window: impl.run_transformer_lm(**{k: args[k] for k in LM_KEYS}, in_indices=window)


def own_ppl(impl, impl_args: dict) -> float:
    """The SPEC windowing applied to impl's own run_transformer_lm logits (NLL in float64)."""
    groups = window_nlls(lm_logits(impl, impl_args), impl_args["token_ids"].cpu(), impl_args["context_length"],
                         impl_args["stride"])
    return token_weighted_ppl(groups)


def assert_ppl_close(got: float, expected: float, tol: Tolerance, what: str) -> None:
    assert isinstance(got, float), f"perplexity must be a Python float, got {type(got).__name__}"
    assert_close(torch.tensor([got], dtype=torch.float64), torch.tensor([expected], dtype=torch.float64), tol, what)


def ppl_of(bound, args: dict, device: torch.device = torch.device("cpu")) -> float:
    """bound's perplexity for the float64 description args, given float32 weights on device."""
    return bound.run_perplexity(**on(args, device=device))


def check_ppl_against(impl, oracle, args: dict, expected: float, device: torch.device, what: str) -> None:
    """impl's perplexity for args (float32 on device) is within tolerance of expected (the reference's),
    or of the SPEC windowing of its own LM's logits; a mismatch names the bug it matches."""
    got = ppl_of(impl, args, device)
    try:
        assert_ppl_close(got, expected, PPL, what)
    except Mismatch as error:
        try:
            own = own_ppl(impl, on(args, device=device))
            assert_ppl_close(got, own, PPL, "")
            return  # the SPEC windowing of its own logits: a wrong LM is charged in the LM item
        except Exception:  # noqa: BLE001 - no own LM to excuse it, or it disagrees with that too
            pass
        error.args = (f"{error.args[0]}\n(it also differs from the SPEC windows scored with your own run_transformer_lm's "
                      "logits, so the mistake is in the perplexity itself)",)
        raise explained(error, lambda: diagnose_measurement(oracle, "run_perplexity", lambda bound: ppl_of(bound, args, device),
                                                            got, lambda a, b: math.isclose(a, b, rel_tol=1e-6)))


# --- properties ---------------------------------------------------------------------------------


@no_shrinking
@given(n=LENGTHS, stride=STRIDES, seed=seeds)
def test_perplexity_is_a_finite_python_float_of_at_least_one(impl, device, n, stride, seed):
    ppl = ppl_of(impl, ppl_args(PPL_CONFIG, n, stride, seed), device)
    assert isinstance(ppl, float) and math.isfinite(ppl) and ppl >= 1.0 - 1e-6, f"perplexity {ppl!r} (n={n}, stride={stride})"


@no_shrinking
@given(n=LENGTHS, stride=STRIDES, seed=seeds)
def test_perplexity_is_exp_of_the_mean_nll_with_every_token_after_the_first_scored_once(impl, n, stride, seed):
    """The model's own logits, windows assigned token by token in the test: each target once, by its first window."""
    args = on(ppl_args(PPL_CONFIG, n, stride, seed))
    assert_ppl_close(impl.run_perplexity(**args), own_ppl(impl, args), PPL,
                     f"perplexity (n={n}, stride={stride}, context_length={C}) vs exp(mean NLL) of tokens 1 … {n - 1}, "
                     "each scored once by the first window that predicts it, with your own LM's logits")


@pytest.mark.parametrize("n, stride", [(19, C), (19, 4)])
def test_perplexity_is_the_token_weighted_mean_not_a_mean_of_window_means(impl, n, stride):
    """The windows score different numbers of tokens here (10 then 8; or 10, 4 and 4), so the two means differ."""
    args = on(ppl_args(PPL_CONFIG, n, stride, seed=3))
    groups = window_nlls(lm_logits(impl, args), args["token_ids"], C, stride)
    token_weighted = token_weighted_ppl(groups)
    window_means = math.exp(sum(float(g.mean()) for g in groups) / len(groups))
    if abs(window_means / token_weighted - 1) <= 1e-3:
        return  # your own LM's logits make the two means equal (e.g. it returns probabilities): nothing to tell apart
    got = impl.run_perplexity(**args)
    assert_ppl_close(got, token_weighted, PPL,
                     f"perplexity (n={n}, stride={stride}) vs exp(total NLL / number of scored tokens) = {token_weighted:.6g} "
                     f"(a mean of the windows' means gives {window_means:.6g})")


@no_shrinking
@given(n=st.sampled_from([2, 9, C + 1]), stride=STRIDES, seed=seeds)
def test_a_sequence_of_at_most_context_plus_one_tokens_is_one_window_for_every_stride(impl, n, stride, seed):
    """ppl = exp(cross-entropy of one forward pass over tokens[:-1] against tokens[1:]), whatever the stride."""
    args = on(ppl_args(PPL_CONFIG, n, stride, seed))
    ids = args["token_ids"]
    logits = impl.run_transformer_lm(**{k: args[k] for k in LM_KEYS}, in_indices=ids[None, :-1])[0].detach().double()
    nll = -torch.log_softmax(logits, dim=-1).gather(-1, ids[1:, None])
    assert_ppl_close(impl.run_perplexity(**args), math.exp(float(nll.mean())), PPL,
                     f"perplexity of {n} tokens (context_length {C}, stride {stride}) vs the plain next-token loss of one pass")


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_tokens_raise_value_error(impl, n):
    with pytest.raises(Exception) as raised:
        ppl_of(impl, ppl_args(PPL_CONFIG, n, 1, seed=0))
    if not is_value_error(raised.value):
        raise raised.value


FIXED = [(2, 1, 0), (C + 1, C, 1), (19, C, 2), (19, 4, 3), (16, 1, 4), (19, C // 2, 5)]


@pytest.mark.parametrize("n, stride, seed", FIXED)
def test_perplexity_matches_reference_logits_scored_window_by_window_on_fixed_cases(impl, oracle, device, n, stride, seed):
    """Expected: the reference LM's logits (through the oracle, so the handout ships them) scored by the SPEC windows."""
    args = ppl_args(PPL_CONFIG, n, stride, seed)
    truth = ground_truth(args)
    reference_lm = {k: truth[k] for k in LM_KEYS}

    def reference_logits(window):
        return oracle.expected("run_transformer_lm", dict(reference_lm, in_indices=window))["output"]

    expected = token_weighted_ppl(window_nlls(reference_logits, truth["token_ids"], C, stride))
    check_ppl_against(impl, oracle, args, expected, device, f"perplexity (n={n}, stride={stride}) vs the reference")


# A crash that the submission's own LM also raises is charged to the LM, not here (SPEC §4.6).
from .checks import excuse_crashes_of_the_own_lm  # noqa: E402

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "A perplexity failure is usually the shift by one (the logits at t predict token t + 1), or windows "
    "that score a token twice or not at all."
    "\n"
    "Ask yourself: with stride < context, which targets does each window score, and is the mean over "
    "tokens, not over windows?"
)

excuse_crashes_of_the_own_lm(globals())
