"""Cross-entropy: mean over the targets that are not ignore_index; stable for huge logits.

float32 logits throughout (SPEC §4.1); float64 support is the `dtype` item's business.
"""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lmgrade.core.compare import Mismatch
from lmgrade.catalogue.diagnosis import diagnose_measurement, explained
from lmgrade.core.layouts import LAYOUTS

from .checks import assert_unchanged, check_against_reference, on
from .strategies import layouts, randint, randn, seeds

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "A cross-entropy failure is usually overflow (log of a softmax instead of a log-sum-exp), the "
    "target's logit read at the wrong position, or ignored targets (e.g. −100) still counted."
    "\n"
    "Ask yourself: do ignored targets leave both the sum and the count of the mean, and are they never "
    "used as indices?"
)

COMPONENT = "cross_entropy"


def component_for(scale: float) -> str:
    """The tolerance row: logits ×1000 have a float32 spacing of 6e-5 (see tests/tolerances.py)."""
    return "cross_entropy_large_logits" if scale >= 1000 else COMPONENT
LEADS = st.sampled_from([(6,), (2, 5), (2, 3, 4)])
VOCABS = st.sampled_from([5, 17])
# 2 is a valid class id, and so is 0 (falsy: `if ignore_index:` reads it as "no ignore_index"):
# both must be ignored all the same.
IGNORE_VALUES = st.sampled_from([-100, -1, 0, 2])


def ce_args(lead, vocab, seed, scale=2.0, ignore_index=None, ignored_fraction=0.0):
    """Keyword arguments of run_cross_entropy, as float64 CPU tensors (a description of the case)."""
    targets = randint(vocab, lead, seed + 1)
    if ignore_index is not None:
        hide = torch.rand(lead, generator=torch.Generator().manual_seed(seed + 2)) < ignored_fraction
        hide.view(-1)[0] = True  # at least one ignored…
        hide.view(-1)[-1] = False  # …and at least one scored
        targets = torch.where(hide, ignore_index, targets)
        targets = torch.where(~hide & (targets == ignore_index), (ignore_index + 1) % vocab, targets)
    return dict(inputs=randn((*lead, vocab), seed, scale), targets=targets, ignore_index=ignore_index)


def loss(impl, args: dict, layout: str = "contiguous") -> torch.Tensor:
    """impl's loss for float64 args, given float32 logits laid out as `layout`."""
    return impl.run_cross_entropy(**on(args, layout=layout))


FIXED = [
    ((2, 5), 17, 0, 2.0, None),
    ((2, 5), 17, 1, 2.0, -100),
    ((6,), 5, 2, 1000.0, None),
    ((2, 3, 4), 5, 3, 5.0, 2),
    ((2, 3, 4), 5, 4, 2.0, 0),  # ignore_index=0: a falsy value that is a real class id
]


@given(lead=LEADS, vocab=VOCABS, layout=layouts, seed=seeds)
def test_cross_entropy_is_a_float32_scalar_for_float32_logits(impl, device, lead, vocab, layout, seed):
    out = impl.run_cross_entropy(**on(ce_args(lead, vocab, seed), device=device, layout=layout))
    assert out.shape == () and out.dtype == torch.float32 and out.device.type == device.type, (
        f"cross-entropy of float32 logits {lead + (vocab,)} on {device.type} must be a 0-dim float32 tensor there, "
        f"got shape {tuple(out.shape)}, {out.dtype}, {out.device.type}")


@given(lead=LEADS, vocab=VOCABS, ignore=IGNORE_VALUES, seed=seeds)
def test_cross_entropy_logits_at_ignored_positions_do_not_matter(impl, lead, vocab, ignore, seed):
    args = ce_args(lead, vocab, seed, ignore_index=ignore, ignored_fraction=0.4)
    ignored = args["targets"] == ignore
    changed = args["inputs"].clone()
    changed[ignored] = randn(changed[ignored].shape, seed + 5, 30.0)
    assert_unchanged(loss(impl, dict(args, inputs=changed)), loss(impl, args),
                     f"loss after changing the logits where the target is ignore_index={ignore}", component=COMPONENT)


@given(lead=LEADS, vocab=VOCABS, ignore=IGNORE_VALUES, seed=seeds)
def test_cross_entropy_gradient_at_ignored_positions_is_exactly_zero(impl, lead, vocab, ignore, seed):
    args = on(ce_args(lead, vocab, seed, ignore_index=ignore, ignored_fraction=0.4))
    inputs = args["inputs"].requires_grad_(True)
    (grad,) = torch.autograd.grad(impl.run_cross_entropy(**args), inputs)
    at_ignored = grad[args["targets"] == ignore]
    assert bool((at_ignored == 0).all()), (
        f"gradient at positions whose target is ignore_index={ignore} must be exactly 0; "
        f"largest |value| is {at_ignored.abs().max():.3g}")


@given(lead=LEADS, vocab=VOCABS, ignore=IGNORE_VALUES, seed=seeds)
def test_cross_entropy_with_ignore_is_the_mean_over_scored_targets_only(impl, lead, vocab, ignore, seed):
    """loss(all, ignore_index) == loss(only the scored rows, no ignore_index): a mean over N_scored, not N_all."""
    args = ce_args(lead, vocab, seed, ignore_index=ignore, ignored_fraction=0.4)
    scored = args["targets"] != ignore
    kept = loss(impl, dict(inputs=args["inputs"][scored], targets=args["targets"][scored]))
    assert_unchanged(loss(impl, args), kept,
                     f"loss with ignore_index={ignore} vs the loss over the non-ignored targets alone", component=COMPONENT)


@given(vocab=VOCABS, ignore=IGNORE_VALUES, seed=seeds)
def test_cross_entropy_with_every_target_ignored_is_nan(impl, vocab, ignore, seed):
    args = ce_args((2, 3), vocab, seed)
    args.update(targets=torch.full((2, 3), ignore), ignore_index=ignore)
    out = loss(impl, args)
    assert math.isnan(out.item()), (
        f"with every target ignored (ignore_index={ignore}) the mean is 0/0 = NaN (as in torch); got {out.item()}")


@given(lead=LEADS, vocab=VOCABS, seed=seeds)
def test_cross_entropy_is_finite_and_shift_invariant_for_huge_logits(impl, lead, vocab, seed):
    """Adding 1024 to every logit changes nothing; exp(1000) overflows without the log-sum-exp shift.

    Logits are multiples of 2⁻⁸ below 1024 in magnitude, so logits + 1024 are exact in float32:
    the two calls see the same differences between logits, and only summation order may differ.
    """
    args = ce_args(lead, vocab, seed, scale=1000.0)
    args["inputs"] = (args["inputs"].clamp(-1000, 1000) * 256).round() / 256
    shifted = loss(impl, dict(args, inputs=args["inputs"] + 1024.0))
    assert math.isfinite(shifted.item()), f"loss for logits around ±1000 must be finite, got {shifted.item()}"
    assert_unchanged(shifted, loss(impl, args), "loss of logits + 1024 vs loss of logits", component=COMPONENT)


@pytest.mark.parametrize("layout", [layout for layout in LAYOUTS if layout != "contiguous"])
def test_cross_entropy_accepts_inputs_in_every_memory_layout(impl, oracle, layout):
    """Sliced, transposed, permuted-leading-dims and expanded logits and targets give the contiguous loss.

    `.view(-1, vocab)` fails on permuted or transposed leading dims: flatten with `.reshape`.
    """
    args = ce_args((2, 3, 4), 5, seed=11)
    if layout == "expanded":  # every row of the first dim holds the same values
        args = {k: v[:1].expand_as(v).contiguous() if isinstance(v, torch.Tensor) else v for k, v in args.items()}
    expected = loss(impl, args)

    def reaction(bound) -> str:
        try:
            bound.run_cross_entropy(**on(args, layout=layout))
        except NotImplementedError:
            raise
        except Exception as error:  # noqa: BLE001 - a crash on a layout is the failure this test reports
            return f"raised {type(error).__name__}"
        return "returned a loss"

    try:
        got = loss(impl, args, layout)
    except NotImplementedError:
        raise
    except Exception as error:  # noqa: BLE001
        raised = f"raised {type(error).__name__}"  # `error` is unbound once the except block ends
        raise explained(Mismatch(
            f"run_cross_entropy {raised}: {error}\nfor {layout} inputs (shape (2, 3, 4, 5)), where "
            "contiguous ones work: `.view` needs compatible strides; use `.reshape`, or work over `...`"),
            lambda: diagnose_measurement(oracle, "run_cross_entropy", reaction, raised, str.__eq__)
        ) from None
    assert_unchanged(got, expected, f"loss of {layout} inputs vs of the same values contiguous", component=COMPONENT)


@pytest.mark.parametrize("lead, vocab, seed, scale, ignore", FIXED)
def test_cross_entropy_matches_reference_on_fixed_cases(impl, oracle, device, lead, vocab, seed, scale, ignore):
    args = ce_args(lead, vocab, seed, scale, ignore, ignored_fraction=0.3)
    check_against_reference(impl, oracle, "run_cross_entropy", args, wrt=["inputs"], component=component_for(scale), device=device)


@pytest.mark.parametrize("layout", ["permuted", "transposed"])
def test_cross_entropy_matches_reference_on_permuted_and_transposed_inputs(impl, oracle, device, layout):
    args = ce_args((2, 3, 4), 17, 6, 2.0, 0, ignored_fraction=0.3)
    check_against_reference(impl, oracle, "run_cross_entropy", args, wrt=["inputs"], component=COMPONENT, device=device,
                            layout=layout)
