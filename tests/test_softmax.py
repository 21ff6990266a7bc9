"""Softmax over any dim, numerically stable."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from .checks import assert_unchanged, check_against_reference, on
from .strategies import float_dtypes, randn, seeds
from .tolerances import Tolerance

# x + 1000 in float64 rounds x to ~1e-13 absolute, which moves softmax by about as much.
SHIFTED = Tolerance(rtol=1e-10, atol=1e-12)
SUMS32 = Tolerance(rtol=1e-5, atol=1e-5)

SHAPES = [(7,), (3, 5), (2, 3, 4)]
shapes_and_dims = st.sampled_from(SHAPES).flatmap(
    lambda shape: st.tuples(st.just(shape), st.sampled_from(range(-len(shape), len(shape))))
)


def softmax_args(shape, dim, seed, scale=3.0):
    return dict(in_features=randn(shape, seed, scale), dim=dim)


FIXED = [((3, 5), -1, 0), ((3, 5), 0, 1), ((2, 3, 4), 1, 2)]


@given(shape_dim=shapes_and_dims, dtype=float_dtypes, seed=seeds)
def test_softmax_sums_to_one_along_dim_and_keeps_shape(impl, device, shape_dim, dtype, seed):
    shape, dim = shape_dim
    out = impl.run_softmax(**on(softmax_args(shape, dim, seed), dtype, device))
    assert out.shape == shape and out.dtype == dtype
    total = out.double().sum(dim)
    assert_unchanged(total.cpu(), torch.ones_like(total.cpu()), f"softmax(x, dim={dim}).sum({dim})", tol=None if dtype == torch.float64 else SUMS32)


@given(shape_dim=shapes_and_dims, seed=seeds)
def test_softmax_is_unchanged_by_adding_1000(impl, shape_dim, seed):
    """Shift invariance; exp(1000) overflows, so an implementation without the max-shift gives NaN."""
    shape, dim = shape_dim
    args = softmax_args(shape, dim, seed)
    shifted = dict(args, in_features=args["in_features"] + 1000.0)
    assert_unchanged(impl.run_softmax(**shifted), impl.run_softmax(**args), f"softmax(x + 1000, dim={dim}) vs softmax(x, dim={dim})", SHIFTED)


@pytest.mark.parametrize("shape, dim, seed", FIXED)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_softmax_matches_reference_on_fixed_cases(impl, oracle, device, shape, dim, seed, dtype):
    args = softmax_args(shape, dim, seed)
    check_against_reference(impl, oracle, "run_softmax", args, wrt=["in_features"], component="softmax", dtype=dtype, device=device)


@pytest.mark.parametrize("shape, dim, seed", FIXED)
def test_softmax_of_inputs_near_1000_matches_reference(impl, oracle, device, shape, dim, seed):
    """exp(1000) overflows even in float64: only a max-shifted softmax gets these right (float64 only:
    float32 cannot even hold x + 1000 to the precision softmax needs)."""
    args = softmax_args(shape, dim, seed)
    args["in_features"] = args["in_features"] + 1000.0
    check_against_reference(impl, oracle, "run_softmax", args, wrt=["in_features"], component="softmax",
                            dtype=torch.float64, device=device)
