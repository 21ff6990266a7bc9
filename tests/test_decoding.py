"""The next-token distribution: temperature, then top-k, then top-p, renormalised; ties to the lower id.

float32 logits throughout (SPEC §4.1). Draws whose outcome float32 rounding could flip (a
cumulative mass within rounding of p, two probabilities within rounding of each other at a
top-k or top-p cut) are discarded; exact-boundary behaviour is tested on values that are exact
in float32 (uniform rows: every probability 1/V, every cumulative mass k/V).
"""

import math

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from lmgrade.core.compare import Mismatch, describe_difference
from lmgrade.core.layouts import broadcast_values
from lmgrade.catalogue.diagnosis import diagnose_measurement, explained

from .checks import assert_unchanged, check_against_reference, on
from .strategies import layouts, randint, randn, seeds
from .tolerances import Tolerance, property_tolerance

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "A decoding failure is usually the order (temperature, then top-k, then top-p), a top-p cut that "
    "drops the token that reaches p, or temperature 0 not being greedy."
    "\n"
    "Ask yourself: is the token whose mass reaches p kept, and does the top token always stay?"
)

COMPONENT = "decoding"
F32 = torch.float32
# (z + 1024) / T for a temperature that is not a power of two rounds to half an ulp of |z + 1024| / T
# (≤ 3e-5 absolute for T = 2.5), twice (numerator and normaliser): ≤ 6e-5 relative per probability.
SHIFTED = Tolerance(rtol=2e-4, atol=1e-6, row="decoding, float32, logits + 1024",
                    reason="(z + 1024)/T rounds to ≤ 3e-5 absolute; probabilities move by ≤ 6e-5 relative")
# Draws whose decisions float32 rounding could flip are discarded (see decision_margin).
FLOAT32_MARGIN = 1e-5

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
    """float64 CPU logits whose values are float32 numbers (what the implementation will see)."""
    return _dist_logits(kind, lead, vocab, seed, scale).to(F32).double()


def _dist_logits(kind: str, lead: tuple, vocab: int, seed: int, scale: float) -> torch.Tensor:
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


def decision_margin(logits: torch.Tensor, temperature: float, top_k, top_p) -> float:
    """The smallest relative distance at which float32 rounding could change which tokens stay.

    Two things decide the kept set: where a cumulative mass meets p (top_p_margin), and the
    order of two tokens on either side of a cut (top-k's, top-p's, or the argmax for
    temperature 0). Exactly equal values are a tie the rule resolves by id, not a risk.
    """
    margin = top_p_margin(logits, temperature, top_k, top_p)
    for row in logits.double().reshape(-1, logits.shape[-1]):
        values = sorted(row.tolist(), reverse=True)
        scale = max(1.0, abs(values[0]))
        cuts = [1] if temperature == 0 else [c for c in (top_k,) if c is not None and c < len(values)]
        if temperature != 0 and top_p is not None and top_p < 1.0:
            cuts.append(len(expected_kept(row, temperature, top_k, top_p)))
        for cut in cuts:
            if cut < len(values) and values[cut - 1] != values[cut]:
                margin = min(margin, (values[cut - 1] - values[cut]) / scale)
    return margin


def expected_kept(row: torch.Tensor, temperature: float, top_k, top_p) -> list[int]:
    probs = torch.softmax(row.double() / temperature, dim=-1).tolist()
    return kept_tokens(probs, top_k, top_p)


def describe(args: dict) -> str:
    return f"temperature={args['temperature']}, top_k={args['top_k']}, top_p={args['top_p']}"


# --- properties ---------------------------------------------------------------------------------


def distribution(impl, args: dict, device: torch.device = torch.device("cpu"), layout: str = "contiguous") -> torch.Tensor:
    """impl's distribution for float64 args, given as float32 logits (on device, laid out as layout)."""
    return impl.run_next_token_distribution(**on(args, device=device, layout=layout))


@given(case=distribution_cases(), layout=layouts)
def test_distribution_keeps_shape_and_float32_is_nonnegative_and_rows_sum_to_one(impl, device, case, layout):
    probs = distribution(impl, case, device, layout)
    assert probs.shape == case["logits"].shape and probs.dtype == F32 and probs.device.type == device.type, (
        f"float32 logits {tuple(case['logits'].shape)} on {device.type} must give float32 probabilities of that shape "
        f"there; got {tuple(probs.shape)}, {probs.dtype}, {probs.device.type}")
    assert bool((probs >= 0).all()) and bool(probs.isfinite().all()), f"probabilities must be finite and ≥ 0 ({describe(case)})"
    total = probs.double().sum(-1).cpu()
    assert_unchanged(total, torch.ones_like(total), f"row sums of the distribution ({describe(case)})", component=COMPONENT)


@given(case=distribution_cases(top_ps=st.sampled_from([None, *TOP_PS_BELOW_ONE])))
def test_top_k_then_top_p_keep_exactly_the_expected_tokens_with_renormalised_probabilities(impl, case):
    """Support and values equal an independent model: stable ranking, top-k on the ranking, top-p on what top-k kept."""
    assume(decision_margin(**case) > FLOAT32_MARGIN)
    assert_kept(distribution(impl, case), expected_distribution(**case), case)


def assert_kept_explained(impl, oracle, case: dict, expected: torch.Tensor) -> None:
    """assert_kept on impl's distribution; a failure names the catalogued bug that gives the same distribution."""
    got = distribution(impl, case)
    try:
        assert_kept(got, expected, case)
    except Mismatch as error:
        tol = property_tolerance(COMPONENT)
        raise explained(error, lambda: diagnose_measurement(
            oracle, "run_next_token_distribution", lambda bound: distribution(bound, case), got,
            lambda a, b: describe_difference(b.to(a.dtype), a, tol) is None))


def assert_kept(probs: torch.Tensor, expected: torch.Tensor, case: dict) -> None:
    got_support, expected_support = probs > 0, expected > 0
    if not torch.equal(got_support, expected_support):
        row = int((got_support != expected_support).reshape(-1, probs.shape[-1]).any(-1).nonzero()[0])
        flat_got = got_support.reshape(-1, probs.shape[-1])[row].nonzero().flatten().tolist()
        flat_exp = expected_support.reshape(-1, probs.shape[-1])[row].nonzero().flatten().tolist()
        raise Mismatch(
            f"row {row} ({describe(case)}) keeps tokens {flat_got}, expected {flat_exp}: temperature, then the top_k most "
            "probable (ties to the lower id), then the smallest most-probable set of what top-k kept whose mass reaches "
            "top_p (a mass that reaches p exactly stops there; the top token always stays)"
        )
    assert_unchanged(probs, expected, f"probabilities of the kept tokens, renormalised ({describe(case)})", component=COMPONENT)


@given(kind=KINDS, lead=LEADS, vocab=VOCABS, seed=seeds, top_k=st.sampled_from([None, 3]),
       temperature=st.sampled_from([0.5, 1.0, 2.5]), top_p=st.sampled_from([1e-3, 0.0]))
def test_top_token_always_survives_a_top_p_smaller_than_its_probability(impl, kind, lead, vocab, seed, top_k, temperature, top_p):
    """With p below the top token's probability only that token stays: one-hot on it (the lowest id among ties).

    top_p = 0.0 is a value, not "off": the smallest set whose mass reaches 0 is the top token alone.
    """
    logits = dist_logits(kind, lead, vocab, seed)
    assume(decision_margin(logits, 0.0, None, None) > FLOAT32_MARGIN)  # the argmax is not a float32 near-tie
    probs = distribution(impl, dict(logits=logits, temperature=temperature, top_k=top_k, top_p=top_p))
    one_hot = torch.nn.functional.one_hot(logits.argmax(-1), vocab).to(F32)
    assert_unchanged(probs, one_hot, f"top_p={top_p} (below the top probability), top_k={top_k}, temperature={temperature}: "
                     "the top token must survive alone", component=COMPONENT)


# (vocab, top_k, k): uniform logits make every probability exactly 1/V' (V' = min(top_k, V)) in
# float32 and float64, so the cumulative mass of the first k tokens is exactly k/V' = p.
EXACT_BOUNDARIES = [(4, None, 1), (4, None, 2), (4, None, 3), (8, None, 2), (8, None, 4), (8, None, 6), (16, None, 4),
                    (16, None, 12), (16, 8, 2), (8, 4, 3), (16, 4, 1)]


@pytest.mark.parametrize("vocab, top_k, k", EXACT_BOUNDARIES)
def test_top_p_stops_where_the_mass_reaches_p_exactly(impl, oracle, vocab, top_k, k):
    """p = k/V' on uniform rows keeps exactly the k lowest ids: their mass reaches p, so the next token is not needed.

    Every value here is exact in float32 (1/V', k/V' for V' a power of two), so there is no rounding to
    excuse keeping k + 1 ("mass ≤ p" instead of "mass < p") or k − 1.
    """
    kept_count = min(top_k or vocab, vocab)
    top_p = k / kept_count
    case = dict(logits=torch.full((2, 3, vocab), 0.75, dtype=torch.float64), temperature=1.0, top_k=top_k, top_p=top_p)
    expected = torch.zeros(2, 3, vocab, dtype=torch.float64)
    expected[..., :k] = 1.0 / k
    assert_kept_explained(impl, oracle, case, expected)


@given(case=distribution_cases(), shift=st.sampled_from([-7.5, 1024.0]))
def test_adding_a_constant_to_every_logit_changes_nothing(impl, case, shift):
    """Logits are rounded to multiples of 2⁻¹⁰ (|z| < 64), so z + 1024 and z − 7.5 are exact in float32."""
    case = dict(case, logits=(case["logits"] * 1024).round() / 1024)
    assume(decision_margin(**case) > 1e-4)
    shifted = dict(case, logits=case["logits"] + shift)
    assert_unchanged(distribution(impl, shifted), distribution(impl, case),
                     f"distribution of logits + {shift} vs of the logits ({describe(case)})", SHIFTED)


@given(kind=st.sampled_from(["normal", "ties"]), lead=LEADS, vocab=VOCABS, seed=seeds,
       temperature=st.sampled_from([0.5, 2.5]), top_k=st.sampled_from([None, 3]), top_p=st.sampled_from([None, 0.6180339]))
def test_temperature_divides_the_logits(impl, kind, lead, vocab, seed, temperature, top_k, top_p):
    """distribution(z, T) == distribution(z / T, 1): temperature acts before the softmax (dividing probabilities does nothing)."""
    logits = dist_logits(kind, lead, vocab, seed)
    assume(decision_margin(logits, temperature, top_k, top_p) > FLOAT32_MARGIN)
    got = distribution(impl, dict(logits=logits, temperature=temperature, top_k=top_k, top_p=top_p))
    expected = distribution(impl, dict(logits=logits / temperature, temperature=1.0, top_k=top_k, top_p=top_p))
    assert_unchanged(got, expected, f"distribution(z, T={temperature}) vs distribution(z / {temperature}, T=1)", component=COMPONENT)


@given(kind=KINDS, lead=LEADS, vocab=VOCABS, seed=seeds, top_k=TOP_KS, top_p=st.sampled_from([None, 0.0, *TOP_PS_BELOW_ONE, 1.0]),
       layout=layouts)
def test_temperature_zero_is_one_hot_on_the_first_argmax(impl, device, kind, lead, vocab, seed, top_k, top_p, layout):
    """temperature=0.0 is greedy decoding, never "not given" (`temperature or 1.0` samples at T = 1)."""
    logits = dist_logits(kind, lead, vocab, seed)
    args = dict(logits=logits, temperature=0.0, top_k=resolve_top_k(top_k, vocab), top_p=top_p)
    probs = distribution(impl, args, device, layout)
    shown = broadcast_values(logits) if layout == "expanded" else logits  # an expanded layout repeats the first row
    one_hot = torch.nn.functional.one_hot(shown.argmax(-1), vocab).to(F32)  # the logits are float32 values
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
    ([0.2, 0.7, 0.1], None, 0.0, [1]),  # p = 0 (a value, not "off"): the top token alone
    ([0.05, 0.45, 0.1, 0.4], 2, 0.6, [1, 3]),  # top-k keeps {1, 3}; renormalised .53 < .6, so 3 stays too
    ([0.5, 0.3, 0.2], 2, 0.62, [0]),  # top-k leaves (.625, .375): .625 ≥ .62, only token 0 (on the full distribution, .5 < .62 would keep 1)
    ([0.5, 0.3, 0.2], None, 0.62, [0, 1]),
    ([0.25, 0.25, 0.25, 0.25], None, 0.5, [0, 1]),  # .25 + .25 reaches .5 exactly: stop there
]


@pytest.mark.parametrize("probs, top_k, top_p, kept", HAND_CASES)
def test_hand_checked_cases_keep_the_documented_tokens(impl, oracle, probs, top_k, top_p, kept):
    logits = torch.tensor(probs, dtype=torch.float64).log().to(F32).double()
    case = dict(logits=logits, temperature=1.0, top_k=top_k, top_p=top_p)
    exact = torch.softmax(logits, -1)  # the float32 logits' own probabilities, in float64
    expected = torch.zeros(len(probs), dtype=torch.float64)
    expected[kept] = exact[kept] / exact[kept].sum()
    assert_kept_explained(impl, oracle, case, expected)


FIXED = [
    ("normal", (3,), 37, 0, 1.0, None, None),
    ("normal", (2, 3), 37, 1, 0.5, 5, 0.9271828),
    ("ties", (3,), 5, 2, 1.0, 3, 0.6180339),
    ("peaked", (), 37, 3, 2.5, None, 0.3141592),
    ("flat", (3,), 5, 4, 1.0, 2, 1.0),
    ("ties", (2, 3), 37, 5, 0.0, None, None),
    ("normal", (2, 3), 37, 6, 1.0, None, 0.0),  # top_p = 0: the top token alone
]


@pytest.mark.parametrize("kind, lead, vocab, seed, temperature, top_k, top_p", FIXED)
def test_distribution_matches_reference_on_fixed_cases(impl, oracle, device, kind, lead, vocab, seed, temperature, top_k, top_p):
    args = dict(logits=dist_logits(kind, lead, vocab, seed), temperature=temperature, top_k=top_k, top_p=top_p)
    check_against_reference(impl, oracle, "run_next_token_distribution", args, component=COMPONENT, device=device)


@pytest.mark.parametrize("layout", ["permuted", "transposed", "sliced", "expanded"])
def test_distribution_matches_reference_on_non_contiguous_logits(impl, oracle, device, layout):
    args = dict(logits=dist_logits("normal", (2, 3), 37, 7), temperature=0.7, top_k=9, top_p=0.9271828)
    check_against_reference(impl, oracle, "run_next_token_distribution", args, component=COMPONENT, device=device, layout=layout)
