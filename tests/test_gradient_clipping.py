"""Gradient clipping: one global L2 norm over all gradients; scale by max/(norm + 1e-6) above it.

Expected values are computed here in float64 on the very float32 gradients the implementation
gets (row "gradient_clipping").
"""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lmgrade.core.compare import assert_close

from .checks import assert_unchanged, diagnosed
from .strategies import randn, seeds
from .tolerances import tolerance

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "A gradient-clipping failure is usually clipping each parameter separately (one norm per tensor "
    "instead of one over all gradients together), scaling when the norm is under the limit, the 1e-6 "
    "left out of max/(norm + 1e-6), iterating `parameters` twice (it may be a generator: the second "
    "pass sees nothing), or assigning a new .grad instead of scaling it in place."
    "\n"
    "Ask yourself: is there exactly one norm, over every gradient at once, and does every gradient get "
    "the same factor?"
)

COMPONENT = "gradient_clipping"
TOL = tolerance(COMPONENT, torch.float32)

SHAPES = [(3,), (4, 5), (2, 3, 2), (7,)]  # 3 + 20 + 12 + 7 = 42 elements


def grads_of(shapes, seed: int, scale: float = 1.0, missing=()) -> list:
    """Float32 gradients (None at the indices in `missing`)."""
    return [None if i in missing else randn(shape, seed + i, scale).float() for i, shape in enumerate(shapes)]


def params_of(shapes, seed: int) -> list:
    return [randn(shape, seed + 100 + i).float() for i, shape in enumerate(shapes)]


def global_norm(grads) -> float:
    """The L2 norm of all present gradients together, in float64."""
    return math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads if g is not None))


def expected_clip(grads, max_l2_norm: float) -> list:
    """The clipped gradients in float64 (None stays None)."""
    norm = global_norm(grads)
    factor = max_l2_norm / (norm + 1e-6) if norm > max_l2_norm else 1.0
    return [None if g is None else g.double() * factor for g in grads]


def clip(impl, params, grads, max_l2_norm: float) -> dict:
    return impl.run_gradient_clipping(parameters=params, grads=grads, max_l2_norm=max_l2_norm)


def diagnosed_clip(oracle, result: dict, params, grads, max_l2_norm: float):
    """A failure about `result` names the catalogued clipping bug that clips the same way."""
    return diagnosed(oracle, "run_gradient_clipping", dict(parameters=params, grads=grads, max_l2_norm=max_l2_norm),
                     result, TOL)


def check_clip(impl, oracle, params, grads, max_l2_norm: float, what: str) -> dict:
    result = clip(impl, params, grads, max_l2_norm)
    with diagnosed_clip(oracle, result, params, grads, max_l2_norm):
        assert_clipped_as_expected(result, grads, max_l2_norm, what)
    return result


def flat(grads) -> torch.Tensor:
    return torch.cat([g.double().reshape(-1) for g in grads if g is not None])


def assert_clipped_as_expected(result: dict, grads, max_l2_norm: float, what: str) -> None:
    expected = expected_clip(grads, max_l2_norm)
    for i, (got, want) in enumerate(zip(result["grads"], expected, strict=True)):
        if want is None:
            assert got is None, f"{what}: parameter {i} had no gradient; after clipping it has one"
            continue
        assert got is not None, f"{what}: parameter {i}'s gradient is gone after clipping"
        assert_close(got.double(), want, TOL, f"{what}: gradient {i} vs max/(‖g‖ + 1e-6) · g, ‖g‖ over all gradients")


# (seed, scale of the gradients, max_l2_norm as a fraction of the global norm)
FIXED = [(0, 1.0, 0.5), (1, 10.0, 0.1), (2, 0.01, 0.25), (3, 1.0, 0.9)]


@given(seed=seeds, scale=st.sampled_from([0.01, 1.0, 10.0]), ratio=st.sampled_from([1.5, 2.0, 10.0]))
def test_gradient_clipping_leaves_gradients_under_the_limit_unchanged(impl, oracle, seed, scale, ratio):
    grads = grads_of(SHAPES, seed, scale)
    params, max_l2_norm = params_of(SHAPES, seed), ratio * global_norm(grads)
    result = clip(impl, params, grads, max_l2_norm)
    with diagnosed_clip(oracle, result, params, grads, max_l2_norm):
        for i, (got, before) in enumerate(zip(result["grads"], grads, strict=True)):
            assert torch.equal(got, before), f"gradient {i} changed although the global norm is under the limit"


@pytest.mark.parametrize("seed, scale, fraction", FIXED)
def test_gradient_clipping_scales_gradients_over_the_limit(impl, oracle, seed, scale, fraction):
    grads = grads_of(SHAPES, seed, scale)
    max_l2_norm = fraction * global_norm(grads)
    check_clip(impl, oracle, params_of(SHAPES, seed), grads, max_l2_norm, "clipped")


def test_gradient_clipping_uses_one_norm_over_all_gradients(impl, oracle):
    """Three gradients of norms 0.9, 0.1 and 0.9 with max 1: each is under the limit alone, the
    global norm 1.28 is not, so every one is scaled by 1/1.28 (clipping each separately changes
    nothing here)."""
    shapes = [(4, 3), (5,), (2, 6)]
    grads = [g / g.norm() * target for g, target in zip(grads_of(shapes, 7), (0.9, 0.1, 0.9))]
    grads = [g.float() for g in grads]
    check_clip(impl, oracle, params_of(shapes, 7), grads, 1.0, "gradients each under the limit, together over it")


def test_gradient_clipping_scales_every_gradient_by_the_same_factor(impl, oracle):
    """One large gradient and two small ones, together over the limit: all three shrink by the
    same factor (clipping only the large one, or each to the limit, does not)."""
    shapes = [(6, 4), (3,), (5,)]
    grads = [(g / g.norm() * target).float() for g, target in zip(grads_of(shapes, 11), (5.0, 0.2, 0.3))]
    check_clip(impl, oracle, params_of(shapes, 11), grads, 1.0, "one large and two small gradients")


@given(seed=seeds, scale=st.sampled_from([1.0, 10.0]))
def test_gradient_clipping_keeps_the_direction(impl, oracle, seed, scale):
    """Reference-free: the clipped gradients, as one vector, are a positive multiple of the originals."""
    grads = grads_of(SHAPES, seed, scale)
    params, max_l2_norm = params_of(SHAPES, seed), 0.3 * global_norm(grads)
    result = clip(impl, params, grads, max_l2_norm)
    with diagnosed_clip(oracle, result, params, grads, max_l2_norm):
        before, after = flat(grads), flat(result["grads"])
        factor = float(after @ before / (before @ before))
        assert 0 < factor < 1, f"the gradients were multiplied by {factor:.4g}; clipping scales them by a factor in (0, 1)"
        assert_unchanged(after, factor * before, "clipped gradients vs a multiple of the originals", component=COMPONENT)


def test_gradient_clipping_puts_1e_6_in_the_denominator(impl, oracle):
    """max 1e-3 and a global norm of 2e-3: max/(norm + 1e-6) leaves the clipped norm at
    1e-3 · 2e-3/(2e-3 + 1e-6), 5e-4 relative below max (max/norm alone gives exactly max; the
    row allows 1e-5 relative)."""
    grads = [(g / flat(grads_of(SHAPES, 5)).norm() * 2e-3).float() for g in grads_of(SHAPES, 5)]
    params = params_of(SHAPES, 5)
    result = clip(impl, params, grads, 1e-3)
    norm = global_norm(grads)
    with diagnosed_clip(oracle, result, params, grads, 1e-3):
        got = torch.tensor(global_norm(result["grads"]), dtype=torch.float64)
        want = torch.tensor(1e-3 * norm / (norm + 1e-6), dtype=torch.float64)
        assert_close(got, want, TOL, "norm after clipping to 1e-3 (scale = max/(‖g‖ + 1e-6))")
        assert_clipped_as_expected(result, grads, 1e-3, "tiny gradients over a tiny limit")


def test_gradient_clipping_skips_parameters_without_gradients(impl, oracle):
    """Parameters 1 and 3 have no gradient: they keep none, and the norm is over the others only."""
    grads = grads_of(SHAPES, 13, missing=(1, 3))
    max_l2_norm = 0.5 * global_norm(grads)
    check_clip(impl, oracle, params_of(SHAPES, 13), grads, max_l2_norm, "parameters 1 and 3 without gradients")


def test_gradient_clipping_leaves_parameter_values_unchanged(impl, oracle):
    params, grads = params_of(SHAPES, 17), grads_of(SHAPES, 17)
    result = clip(impl, params, grads, 0.2 * global_norm(grads))
    with diagnosed_clip(oracle, result, params, grads, 0.2 * global_norm(grads)):
        for i, (got, before) in enumerate(zip(result["parameters"], params, strict=True)):
            assert torch.equal(got, before), f"parameter {i}'s value changed: clipping touches only the gradients"
