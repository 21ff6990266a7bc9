"""Softmax over any dim, numerically stable."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from .checks import assert_unchanged, check_against_reference, on
from .strategies import layouts, randn, seeds

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "A softmax failure is usually overflow (exp of large inputs without subtracting the max) or the wrong"
    " dimension."
    "\n"
    "Ask yourself: do you subtract the max along `dim` before exp, and normalise along that same `dim`?"
)

SHAPES = [(7,), (3, 5), (2, 3, 4)]
shapes_and_dims = st.sampled_from(SHAPES).flatmap(
    lambda shape: st.tuples(st.just(shape), st.sampled_from(range(-len(shape), len(shape))))
)


def softmax_args(shape, dim, seed, scale=3.0):
    return dict(in_features=randn(shape, seed, scale), dim=dim)


FIXED = [((3, 5), -1, 0), ((3, 5), 0, 1), ((2, 3, 4), 1, 2)]


@given(shape_dim=shapes_and_dims, layout=layouts, seed=seeds)
def test_softmax_sums_to_one_along_dim_and_keeps_shape(impl, device, shape_dim, layout, seed):
    shape, dim = shape_dim
    out = impl.run_softmax(**on(softmax_args(shape, dim, seed), device=device, layout=layout))
    assert out.shape == shape and out.dtype == torch.float32
    total = out.double().sum(dim).cpu()
    assert_unchanged(total, torch.ones_like(total), f"softmax(x, dim={dim}).sum({dim})", component="softmax")


@given(shape_dim=shapes_and_dims, seed=seeds)
def test_softmax_is_unchanged_by_adding_1000(impl, shape_dim, seed):
    """Shift invariance; exp(1000) overflows, so an implementation without the max-shift gives NaN.

    The inputs are multiples of 1/8, so x + 1000 is exact in float32 (24-bit mantissa) and both
    calls see exactly the same differences."""
    shape, dim = shape_dim
    x = (randn(shape, seed, 3.0) * 8).round() / 8
    args = on(dict(in_features=x, dim=dim))
    shifted = dict(args, in_features=args["in_features"] + 1000.0)
    assert_unchanged(impl.run_softmax(**shifted), impl.run_softmax(**args), f"softmax(x + 1000, dim={dim}) vs softmax(x, dim={dim})",
                     component="softmax_near_1000")


@pytest.mark.parametrize("shape, dim, seed", FIXED)
def test_softmax_matches_reference_on_fixed_cases(impl, oracle, device, shape, dim, seed):
    args = softmax_args(shape, dim, seed)
    check_against_reference(impl, oracle, "run_softmax", args, wrt=["in_features"], component="softmax", device=device)


@pytest.mark.parametrize("shape, dim, seed", FIXED)
def test_softmax_of_inputs_near_1000_matches_reference(impl, oracle, device, shape, dim, seed):
    """exp(1000) overflows: only a max-shifted softmax gets these right (inputs in steps of 1/8, exact near 1000 in float32)."""
    x = (randn(shape, seed, 3.0) * 8).round() / 8 + 1000.0
    check_against_reference(impl, oracle, "run_softmax", dict(in_features=x, dim=dim), wrt=["in_features"],
                            component="softmax_near_1000", device=device)
