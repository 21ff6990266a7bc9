"""The next-token distribution: temperature, then top-k, then top-p, renormalised; ties to the lower id."""

import math

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from .checks import assert_unchanged, check_against_reference, on
from .strategies import float_dtypes, randint, randn, seeds
from .tolerances import Tolerance

# logits + 1000 in float64 rounds them to ~1e-13 absolute, which moves the probabilities by about as much.
SHIFTED = Tolerance(rtol=1e-10, atol=1e-12)
SUMS32 = Tolerance(rtol=1e-5, atol=1e-5)
# The result is a masked, renormalised softmax: the reference comparison uses softmax's tolerance.
COMPONENT = "softmax"

VOCABS = st.sampled_from([5, 37])
LEADS = st.sampled_from([(), (3,), (2, 3)])
# normal: distinct values; ties: integers 0..3, many equal logits; peaked: one logit 30 above
# the rest; flat: all logits equal (every rank is a tie).
KINDS = st.sampled_from(["normal", "ties", "peaked", "flat"])
TEMPERATURES = st.sampled_from([0.0, 0.5, 1.0, 2.5])
# Values of p far from any fraction j/k with k ≤ 37, so no cumulative mass lands on p by accident.
TOP_PS_BELOW_ONE = [1e-3, 0.3141592, 0.6180339, 0.9271828]
TOP_PS = st.sampled_from([None, *TOP_PS_BELOW_ONE, 1.0])
# top_k relative to the vocabulary: "vocab" keeps everything, "vocab+10" is larger than the vocabulary.
TOP_KS = st.sampled_from([None, 1, 3, "vocab", "vocab+10"])


def dist_logits(kind: str, lead: tuple, vocab: int, seed: int, scale: float = 3.0) -> torch.Tensor:
    shape = (*lead, vocab)
    if kind == "normal":
        return randn(shape, seed, scale)
    if kind == "ties":
        return randint(4, shape, seed).double()
    if kind == "peaked":
        top = torch.nn.functional.one_hot(randint(vocab, lead, seed + 1), vocab).double()
        return randn(shape, seed) + 30.0 * top
    if kind == "flat":
        return torch.full(shape, 0.5, dtype=torch.float64)
    raise ValueError(kind)


def resolve_top_k(top_k, vocab: int):
    if isinstance(top_k, str):
        return vocab + (10 if top_k == "vocab+10" else 0)
    return top_k


@st.composite
def distribution_cases(draw, top_ps=TOP_PS):
    """Keyword arguments of run_next_token_distribution (float64 CPU logits) from a small description."""
    kind, lead, vocab, seed = draw(KINDS), draw(LEADS), draw(VOCABS), draw(seeds)
    return dict(
        logits=dist_logits(kind, lead, vocab, seed, draw(st.sampled_from([1.0, 10.0]))),
        temperature=draw(TEMPERATURES),
        top_k=resolve_top_k(draw(TOP_KS), vocab),
        top_p=draw(top_ps),
    )


# --- an independent model of the rules, in float64 and plain Python --------------------------


def ranked(probs: list[float]) -> list[int]:
    """Token ids, most probable first; equal probabilities in increasing id order."""
    return sorted(range(len(probs)), key=lambda i: (-probs[i], i))


def kept_tokens(probs: list[float], top_k: int | None, top_p: float | None) -> list[int]:
    order = ranked(probs)
    if top_k is not None:
        order = order[:top_k]
    if top_p is not None and top_p < 1.0:
        total = sum(probs[i] for i in order)
        kept, mass = [], 0.0
        for i in order:
            if kept and mass / total >= top_p:  # the mass above reaches p: stop (the top token always stays)
                break
            kept.append(i)
            mass += probs[i]
        order = kept
    return order


def expected_distribution(logits: torch.Tensor, temperature: float, top_k, top_p) -> torch.Tensor:
    """What the SPEC asks for, row by row, without sorting tensors."""
    rows = logits.double().reshape(-1, logits.shape[-1])
    out = torch.zeros_like(rows)
    for r, row in enumerate(rows.tolist()):
        if temperature == 0:
            out[r, row.index(max(row))] = 1.0  # list.index finds the FIRST maximum
            continue
        probs = torch.softmax(torch.tensor(row, dtype=torch.float64) / temperature, dim=-1).tolist()
        kept = kept_tokens(probs, top_k, top_p)
        total = sum(probs[i] for i in kept)
        for i in kept:
            out[r, i] = probs[i] / total
    return out.reshape(logits.shape)


def top_p_margin(logits: torch.Tensor, temperature: float, top_k, top_p) -> float:
    """How far every cumulative mass of the ranked (top-k) distribution is from p; inf when top-p is off.

    A cumulative mass within rounding of p makes the kept set depend on the order of additions;
    tests discard such draws rather than judge rounding.
    """
    if temperature == 0 or top_p is None or top_p >= 1.0:
        return math.inf
    margin = math.inf
    for row in logits.double().reshape(-1, logits.shape[-1]):
        probs = torch.softmax(row / temperature, dim=-1).tolist()
        order = ranked(probs)[:top_k] if top_k is not None else ranked(probs)
        total, mass = sum(probs[i] for i in order), 0.0
        for i in order:
            mass += probs[i]
            margin = min(margin, abs(mass / total - top_p))
    return margin


def describe(args: dict) -> str:
    return f"temperature={args['temperature']}, top_k={args['top_k']}, top_p={args['top_p']}"


# --- properties ---------------------------------------------------------------------------------


@given(case=distribution_cases(), dtype=float_dtypes)
def test_distribution_keeps_shape_and_dtype_is_nonnegative_and_rows_sum_to_one(impl, device, case, dtype):
    probs = impl.run_next_token_distribution(**on(case, dtype, device))
    assert probs.shape == case["logits"].shape and probs.dtype == dtype and probs.device.type == device.type
    assert bool((probs >= 0).all()) and bool(probs.isfinite().all()), f"probabilities must be finite and ≥ 0 ({describe(case)})"
    total = probs.double().sum(-1).cpu()
    assert_unchanged(total, torch.ones_like(total), f"row sums of the distribution ({describe(case)})",
                     tol=None if dtype == torch.float64 else SUMS32)


@given(case=distribution_cases(top_ps=st.sampled_from([None, *TOP_PS_BELOW_ONE])))
def test_top_k_then_top_p_keep_exactly_the_expected_tokens_with_renormalised_probabilities(impl, case):
    """Support and values equal an independent model: stable ranking, top-k on the ranking, top-p on what top-k kept."""
    assume(top_p_margin(**case) > 1e-9)
    probs = impl.run_next_token_distribution(**case)
    expected = expected_distribution(**case)
    got_support, expected_support = probs > 0, expected > 0
    if not torch.equal(got_support, expected_support):
        row = int((got_support != expected_support).reshape(-1, probs.shape[-1]).any(-1).nonzero()[0])
        flat_got = got_support.reshape(-1, probs.shape[-1])[row].nonzero().flatten().tolist()
        flat_exp = expected_support.reshape(-1, probs.shape[-1])[row].nonzero().flatten().tolist()
        raise AssertionError(
            f"row {row} ({describe(case)}) keeps tokens {flat_got}, expected {flat_exp}: temperature, then the top_k most "
            "probable (ties to the lower id), then the smallest most-probable set of what top-k kept whose mass reaches top_p"
        )
    assert_unchanged(probs, expected, f"probabilities of the kept tokens, renormalised ({describe(case)})", SHIFTED)


@given(kind=KINDS, lead=LEADS, vocab=VOCABS, seed=seeds, top_k=st.sampled_from([None, 3]),
       temperature=st.sampled_from([0.5, 1.0, 2.5]))
def test_top_token_always_survives_a_top_p_smaller_than_its_probability(impl, kind, lead, vocab, seed, top_k, temperature):
    """With p below the top token's probability only that token stays: one-hot on it (the lowest id among ties)."""
    logits = dist_logits(kind, lead, vocab, seed)
    probs = impl.run_next_token_distribution(logits=logits, temperature=temperature, top_k=top_k, top_p=1e-3)
    first_argmax = logits.argmax(-1)
    one_hot = torch.nn.functional.one_hot(first_argmax, vocab).double()
    assert_unchanged(probs, one_hot, f"top_p=1e-3 (below the top probability), top_k={top_k}, temperature={temperature}: "
                     "the top token must survive alone")


@given(case=distribution_cases(), shift=st.sampled_from([-7.5, 1000.0]))
def test_adding_a_constant_to_every_logit_changes_nothing(impl, case, shift):
    assume(top_p_margin(**case) > 1e-6)
    shifted = dict(case, logits=case["logits"] + shift)
    assert_unchanged(impl.run_next_token_distribution(**shifted), impl.run_next_token_distribution(**case),
                     f"distribution of logits + {shift} vs of the logits ({describe(case)})", SHIFTED)


@given(kind=st.sampled_from(["normal", "ties"]), lead=LEADS, vocab=VOCABS, seed=seeds,
       temperature=st.sampled_from([0.5, 2.5]), top_k=st.sampled_from([None, 3]), top_p=st.sampled_from([None, 0.6180339]))
def test_temperature_divides_the_logits(impl, kind, lead, vocab, seed, temperature, top_k, top_p):
    """distribution(z, T) == distribution(z / T, 1): temperature acts before the softmax (dividing probabilities does nothing)."""
    logits = dist_logits(kind, lead, vocab, seed)
    assume(top_p_margin(logits, temperature, top_k, top_p) > 1e-6)
    got = impl.run_next_token_distribution(logits=logits, temperature=temperature, top_k=top_k, top_p=top_p)
    expected = impl.run_next_token_distribution(logits=logits / temperature, temperature=1.0, top_k=top_k, top_p=top_p)
    assert_unchanged(got, expected, f"distribution(z, T={temperature}) vs distribution(z / {temperature}, T=1)", SHIFTED)


@given(kind=KINDS, lead=LEADS, vocab=VOCABS, seed=seeds, top_k=TOP_KS, top_p=TOP_PS, dtype=float_dtypes)
def test_temperature_zero_is_one_hot_on_the_first_argmax(impl, device, kind, lead, vocab, seed, top_k, top_p, dtype):
    logits = dist_logits(kind, lead, vocab, seed)
    args = dict(logits=logits, temperature=0.0, top_k=resolve_top_k(top_k, vocab), top_p=top_p)
    probs = impl.run_next_token_distribution(**on(args, dtype, device))
    one_hot = torch.nn.functional.one_hot(logits.to(dtype).argmax(-1), vocab).to(dtype)
    assert torch.equal(probs.cpu(), one_hot), (
        f"temperature 0 must give exactly one-hot on the first argmax (lowest id among equal maxima); "
        f"got row sums {probs.sum(-1).flatten().tolist()[:4]}, argmax {probs.argmax(-1).flatten().tolist()[:4]}, "
        f"expected {one_hot.argmax(-1).flatten().tolist()[:4]}"
    )


# (probabilities, top_k, top_p, kept ids): small cases a student can check by hand.
HAND_CASES = [
    ([0.1, 0.3, 0.3, 0.3], 2, None, [1, 2]),  # ties at the top-k boundary: lower ids win
    ([0.1, 0.3, 0.3, 0.3], None, 0.5, [1, 2]),  # .3 < .5, then .3 + .3 ≥ .5
    ([0.7, 0.2, 0.1], None, 0.5, [0]),  # the top token alone exceeds p: it stays, alone
    ([0.05, 0.45, 0.1, 0.4], 2, 0.6, [1, 3]),  # top-k keeps {1, 3}; renormalised .53 < .6, so 3 stays too
    ([0.5, 0.3, 0.2], 2, 0.62, [0]),  # top-k leaves (.625, .375): .625 ≥ .62, only token 0 (on the full distribution, .5 < .62 would keep 1)
    ([0.5, 0.3, 0.2], None, 0.62, [0, 1]),
]


@pytest.mark.parametrize("probs, top_k, top_p, kept", HAND_CASES)
def test_hand_checked_cases_keep_the_documented_tokens(impl, probs, top_k, top_p, kept):
    logits = torch.tensor(probs, dtype=torch.float64).log()
    got = impl.run_next_token_distribution(logits=logits, temperature=1.0, top_k=top_k, top_p=top_p)
    expected = torch.zeros(len(probs), dtype=torch.float64)
    expected[kept] = torch.tensor(probs, dtype=torch.float64)[kept]
    assert_unchanged(got, expected / expected.sum(), f"distribution of probabilities {probs} with top_k={top_k}, top_p={top_p}", SHIFTED)


FIXED = [
    ("normal", (3,), 37, 0, 1.0, None, None),
    ("normal", (2, 3), 37, 1, 0.5, 5, 0.9271828),
    ("ties", (3,), 5, 2, 1.0, 3, 0.6180339),
    ("peaked", (), 37, 3, 2.5, None, 0.3141592),
    ("flat", (3,), 5, 4, 1.0, 2, 1.0),
    ("ties", (2, 3), 37, 5, 0.0, None, None),
]


@pytest.mark.parametrize("kind, lead, vocab, seed, temperature, top_k, top_p", FIXED)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_distribution_matches_reference_on_fixed_cases(impl, oracle, device, kind, lead, vocab, seed, temperature, top_k, top_p, dtype):
    args = dict(logits=dist_logits(kind, lead, vocab, seed), temperature=temperature, top_k=top_k, top_p=top_p)
    check_against_reference(impl, oracle, "run_next_token_distribution", args, component=COMPONENT, dtype=dtype, device=device)
