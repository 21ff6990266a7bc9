"""Cross-entropy: mean over the targets that are not ignore_index; stable for huge logits."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from .checks import assert_unchanged, check_against_reference, on
from .strategies import float_dtypes, randint, randn, seeds
from .tolerances import Tolerance

# Logits near ±2000 carry ~1e-13 absolute rounding in float64.
SHIFTED = Tolerance(rtol=1e-10, atol=1e-10)

LEADS = st.sampled_from([(6,), (2, 5), (2, 3, 4)])
VOCABS = st.sampled_from([5, 17])
IGNORE_VALUES = st.sampled_from([-100, -1, 2])  # 2 is a valid class id: it must be ignored all the same


def ce_args(lead, vocab, seed, scale=2.0, ignore_index=None, ignored_fraction=0.0):
    targets = randint(vocab, lead, seed + 1)
    if ignore_index is not None:
        hide = torch.rand(lead, generator=torch.Generator().manual_seed(seed + 2)) < ignored_fraction
        hide.view(-1)[0] = True  # at least one ignored…
        hide.view(-1)[-1] = False  # …and at least one scored
        targets = torch.where(hide, ignore_index, targets)
        targets = torch.where(~hide & (targets == ignore_index), (ignore_index + 1) % vocab, targets)
    return dict(inputs=randn((*lead, vocab), seed, scale), targets=targets, ignore_index=ignore_index)


FIXED = [((2, 5), 17, 0, 2.0, None), ((2, 5), 17, 1, 2.0, -100), ((6,), 5, 2, 1000.0, None), ((2, 3, 4), 5, 3, 5.0, 2)]


@given(lead=LEADS, vocab=VOCABS, dtype=float_dtypes, seed=seeds)
def test_cross_entropy_is_a_scalar_in_input_dtype(impl, device, lead, vocab, dtype, seed):
    loss = impl.run_cross_entropy(**on(ce_args(lead, vocab, seed), dtype, device))
    assert loss.shape == () and loss.dtype == dtype and loss.device.type == device.type


@given(lead=LEADS, vocab=VOCABS, ignore=IGNORE_VALUES, seed=seeds)
def test_cross_entropy_logits_at_ignored_positions_do_not_matter(impl, lead, vocab, ignore, seed):
    args = ce_args(lead, vocab, seed, ignore_index=ignore, ignored_fraction=0.4)
    ignored = args["targets"] == ignore
    changed = args["inputs"].clone()
    changed[ignored] = randn(changed[ignored].shape, seed + 5, 30.0)
    assert_unchanged(impl.run_cross_entropy(**dict(args, inputs=changed)), impl.run_cross_entropy(**args),
                     f"loss after changing the logits where the target is ignore_index={ignore}")


@given(lead=LEADS, vocab=VOCABS, ignore=IGNORE_VALUES, seed=seeds)
def test_cross_entropy_gradient_at_ignored_positions_is_exactly_zero(impl, lead, vocab, ignore, seed):
    args = ce_args(lead, vocab, seed, ignore_index=ignore, ignored_fraction=0.4)
    inputs = args["inputs"].requires_grad_(True)
    (grad,) = torch.autograd.grad(impl.run_cross_entropy(**args), inputs)
    at_ignored = grad[args["targets"] == ignore]
    assert bool((at_ignored == 0).all()), f"gradient at ignored positions must be exactly 0; largest |value| is {at_ignored.abs().max():.3g}"


@given(lead=LEADS, vocab=VOCABS, ignore=IGNORE_VALUES, seed=seeds)
def test_cross_entropy_with_ignore_is_the_mean_over_scored_targets_only(impl, lead, vocab, ignore, seed):
    """loss(all, ignore_index) == loss(only the scored rows, no ignore_index): a mean over N_scored, not N_all."""
    args = ce_args(lead, vocab, seed, ignore_index=ignore, ignored_fraction=0.4)
    scored = args["targets"] != ignore
    kept = impl.run_cross_entropy(inputs=args["inputs"][scored], targets=args["targets"][scored])
    assert_unchanged(impl.run_cross_entropy(**args), kept, f"loss with ignore_index={ignore} vs the loss over the non-ignored targets alone")


@given(vocab=VOCABS, ignore=IGNORE_VALUES, seed=seeds)
def test_cross_entropy_with_every_target_ignored_is_nan(impl, vocab, ignore, seed):
    args = ce_args((2, 3), vocab, seed)
    args.update(targets=torch.full((2, 3), ignore), ignore_index=ignore)
    loss = impl.run_cross_entropy(**args)
    assert math.isnan(loss.item()), f"with every target ignored the mean is 0/0 = NaN (as in torch); got {loss.item()}"


@given(lead=LEADS, vocab=VOCABS, seed=seeds)
def test_cross_entropy_is_finite_and_shift_invariant_for_huge_logits(impl, lead, vocab, seed):
    """Adding 1000 to every logit changes nothing; exp(1000) overflows without the log-sum-exp shift."""
    args = ce_args(lead, vocab, seed, scale=1000.0)
    shifted = impl.run_cross_entropy(**dict(args, inputs=args["inputs"] + 1000.0))
    assert math.isfinite(shifted.item()), f"loss for logits around ±1000 must be finite, got {shifted.item()}"
    assert_unchanged(shifted, impl.run_cross_entropy(**args), "loss of logits + 1000 vs loss of logits", SHIFTED)


@pytest.mark.parametrize("lead, vocab, seed, scale, ignore", FIXED)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cross_entropy_matches_reference_on_fixed_cases(impl, oracle, device, lead, vocab, seed, scale, ignore, dtype):
    args = ce_args(lead, vocab, seed, scale, ignore, ignored_fraction=0.3)
    check_against_reference(impl, oracle, "run_cross_entropy", args, wrt=["inputs"], component="cross_entropy", dtype=dtype, device=device)
