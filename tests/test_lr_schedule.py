"""The cosine learning-rate schedule with linear warmup, at every boundary, against its closed form.

The adapter returns a Python float, which check_against_reference does not take; the expected
values are the closed form of SPEC §6 / the student docstring, computed here in float64:

    it < warmup_iters:                       it / warmup_iters · max
    warmup_iters ≤ it ≤ cosine_cycle_iters:  min + ½(1 + cos(π (it − warmup_iters)/(cosine_cycle_iters − warmup_iters)))(max − min)
    it > cosine_cycle_iters:                 min
"""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lmgrade.core.compare import assert_close

from .checks import diagnosed
from .tolerances import tolerance

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "A schedule failure is usually warmup off by one ((it + 1)/warmup_iters, so step 0 is not 0 and step "
    "warmup_iters − 1 already reaches max), the cosine counted from 0 instead of from the end of warmup, "
    "decaying to 0 instead of to min, or < where ≤ belongs at cosine_cycle_iters."
    "\n"
    "Ask yourself: what are the learning rates at it = 0, warmup_iters − 1, warmup_iters and "
    "cosine_cycle_iters, and does your code give exactly those?"
)

COMPONENT = "lr_schedule"
TOL = tolerance(COMPONENT, torch.float32)

# (max_learning_rate, min_learning_rate, warmup_iters, cosine_cycle_iters); cosine − warmup is even.
CONFIGS = [(1.0, 0.1, 7, 21), (1e-3, 1e-4, 10, 100), (3e-4, 0.0, 1, 11), (0.5, 0.05, 4, 8)]


def closed_form(it, lr_max, lr_min, warmup, cycle) -> float:
    if it < warmup:
        return lr_max * it / warmup
    if it > cycle:
        return lr_min
    angle = math.pi * (it - warmup) / (cycle - warmup)
    return lr_min + (lr_max - lr_min) * (1 + math.cos(angle)) / 2


def lr(impl, it, config) -> float:
    max_lr, min_lr, warmup, cycle = config
    return impl.run_get_lr_cosine_schedule(it=it, max_learning_rate=max_lr, min_learning_rate=min_lr,
                                           warmup_iters=warmup, cosine_cycle_iters=cycle)


def assert_lr(got: float, expected: float, what: str) -> None:
    assert isinstance(got, float), f"{what}: the schedule must return a Python float, got {type(got).__name__}"
    assert_close(torch.tensor(got, dtype=torch.float64), torch.tensor(expected, dtype=torch.float64), TOL, what)


def check_at(impl, oracle, it, config, what: str, expected: float | None = None) -> None:
    expected = closed_form(it, *config) if expected is None else expected
    got = lr(impl, it, config)
    with diagnosed(oracle, "run_get_lr_cosine_schedule", {}, got, TOL, measure=lambda bound: lr(bound, it, config)):
        assert_lr(got, expected, f"lr at it = {it} ({what}), config (max, min, warmup, cycle) = {config}")


configs = pytest.mark.parametrize("config", CONFIGS)


@configs
def test_lr_schedule_starts_at_zero(impl, oracle, config):
    check_at(impl, oracle, 0, config, "the first step of warmup", expected=0.0)


@configs
def test_lr_schedule_last_warmup_step_is_just_under_max(impl, oracle, config):
    """it = warmup − 1 gives (warmup − 1)/warmup · max (an off-by-one warmup reaches max here)."""
    max_lr, _, warmup, _ = config
    check_at(impl, oracle, warmup - 1, config, "the last warmup step", expected=(warmup - 1) / warmup * max_lr)


@configs
def test_lr_schedule_reaches_max_at_the_end_of_warmup(impl, oracle, config):
    check_at(impl, oracle, config[2], config, "the end of warmup", expected=config[0])


@configs
def test_lr_schedule_first_cosine_step(impl, oracle, config):
    """it = warmup + 1: the cosine counts from the end of warmup."""
    check_at(impl, oracle, config[2] + 1, config, "the first step after warmup")


@configs
def test_lr_schedule_midpoint_of_the_cosine_is_the_mean(impl, oracle, config):
    """Half-way through the cosine the lr is (max + min)/2."""
    max_lr, min_lr, warmup, cycle = config
    check_at(impl, oracle, (warmup + cycle) // 2, config, "half-way through the cosine", expected=(max_lr + min_lr) / 2)


@configs
def test_lr_schedule_ends_at_min(impl, oracle, config):
    check_at(impl, oracle, config[3], config, "the end of the cosine", expected=config[1])


@configs
def test_lr_schedule_stays_at_min_after_the_cycle(impl, oracle, config):
    for it in (config[3] + 1, 2 * config[3], 10 * config[3] + 3):
        check_at(impl, oracle, it, config, "after the cycle", expected=config[1])


@configs
def test_lr_schedule_matches_the_closed_form_at_every_step(impl, oracle, config):
    for it in range(config[3] + 3):
        check_at(impl, oracle, it, config, "closed form")


@given(config=st.sampled_from(CONFIGS))
def test_lr_schedule_rises_during_warmup(impl, oracle, config):
    warmup = config[2]
    values = [lr(impl, it, config) for it in range(warmup + 1)]
    with diagnosed(oracle, "run_get_lr_cosine_schedule", {}, values, TOL,
                   measure=lambda bound: [lr(bound, it, config) for it in range(warmup + 1)]):
        assert all(a < b for a, b in zip(values, values[1:])), f"lr over it = 0 … {warmup} is not increasing: {values}"


@given(config=st.sampled_from(CONFIGS))
def test_lr_schedule_falls_during_the_cosine(impl, oracle, config):
    _, _, warmup, cycle = config
    values = [lr(impl, it, config) for it in range(warmup, cycle + 2)]
    # 1e-12 of max: a correct cosine written another way may end a float64 rounding below min.
    slack = 1e-12 * config[0]
    with diagnosed(oracle, "run_get_lr_cosine_schedule", {}, values, TOL,
                   measure=lambda bound: [lr(bound, it, config) for it in range(warmup, cycle + 2)]):
        assert all(a >= b - slack for a, b in zip(values, values[1:])), (
            f"lr over it = {warmup} … {cycle + 1} rises somewhere: {values}")
