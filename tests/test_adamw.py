"""AdamW against torch.optim.AdamW run in float64 on the same float32 starting values and gradients.

The submission's class and torch's are driven identically (adapters.drivers.step_optimizer):
built from the same parameters or groups, stepped with the same gradients (None: no gradient
that step), the same per-step learning rates, optionally through a state_dict round trip.
Bounds that the "adamw" row assumes: lr ≤ 3e-3, weight_decay ≤ 0.1, ≤ 10 steps, eps 1e-8,
gradients ≥ 1e-3 in magnitude (so CS336's form of the update passes as well as torch's).
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from adapters.drivers import step_optimizer
from lmgrade.core.compare import Tolerance, assert_close

from .checks import diagnosed
from .strategies import randn, seeds
from .tolerances import tolerance

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "An AdamW failure is usually the bias correction missing (the first step moves by ~3·lr instead of "
    "lr), weight decay added to the gradient (Adam with L2) instead of decoupled θ ← θ − lr·λ·θ, one step "
    "counter shared by all parameters, a group's own lr/betas/weight_decay ignored, or lr read once in "
    "__init__ instead of from the group at every step (a schedule sets group['lr'] between steps)."
    "\n"
    "Ask yourself: does each parameter keep its own m, v and step t in self.state[p], and do you read "
    "lr, betas, eps and weight_decay from ITS group inside step()?"
)

COMPONENT = "adamw"
TOL = tolerance(COMPONENT, torch.float32)


def gradient(shape, seed: int) -> torch.Tensor:
    """A float32 gradient with every element at least 1e-3 in magnitude (the row's bound)."""
    g = randn(shape, seed)
    return torch.where(g.abs() < 1e-3, torch.copysign(torch.full_like(g, 1e-3), g), g).float()


def adamw_case(shapes, steps: int, seed: int, missing=()) -> tuple[list, list]:
    """Float32 starting values and per-step gradients; `missing`: (step, index) pairs with no gradient."""
    parameters = [randn(shape, seed + i).float() for i, shape in enumerate(shapes)]
    grads = [[None if (s, i) in missing else gradient(shape, seed + 1000 * (s + 1) + i) for i, shape in enumerate(shapes)]
             for s in range(steps)]
    return parameters, grads


def run_both(impl, parameters, grads, defaults, groups=None, lrs=None, reload_after=None):
    """(the implementation's history, torch's float64 history) for the same case."""
    got = impl.run_adamw(**adamw_call(parameters, grads, defaults, groups, lrs, reload_after))
    expected = step_optimizer(torch.optim.AdamW, [p.double() for p in parameters], groups, defaults,
                              [[None if g is None else g.double() for g in step] for step in grads], lrs, reload_after)
    return got, expected


def adamw_call(parameters, grads, defaults, groups=None, lrs=None, reload_after=None) -> dict:
    return dict(parameters=parameters, groups=groups, defaults=defaults, grads=grads, lrs=lrs, reload_after=reload_after)


def assert_histories_close(got, expected, what: str) -> None:
    assert len(got) == len(expected), f"{what}: {len(got)} steps recorded, expected {len(expected)}"
    for s, (got_step, expected_step) in enumerate(zip(got, expected)):
        for i, (g, e) in enumerate(zip(got_step, expected_step, strict=True)):
            assert_close(g.double(), e, TOL, f"{what}: parameter {i} after step {s + 1} vs torch.optim.AdamW")


def check(impl, oracle, parameters, grads, defaults, what: str, **kwargs) -> None:
    got, expected = run_both(impl, parameters, grads, defaults, **kwargs)
    with diagnosed(oracle, "run_adamw", adamw_call(parameters, grads, defaults, **kwargs), got, TOL):
        assert_histories_close(got, expected, what)


SHAPES = [(4, 3), (5,), (2, 2, 2)]

# (lr, betas, weight_decay, steps, seed)
FIXED = [
    (1e-3, (0.9, 0.999), 0.0, 5, 0),
    (1e-3, (0.9, 0.999), 0.01, 10, 1),
    (3e-3, (0.9, 0.95), 0.1, 10, 2),
    (3e-3, (0.8, 0.99), 0.01, 3, 3),
]


@pytest.mark.parametrize("lr, betas, weight_decay, steps, seed", FIXED)
def test_adamw_matches_torch_on_fixed_cases(impl, oracle, lr, betas, weight_decay, steps, seed):
    parameters, grads = adamw_case(SHAPES, steps, seed)
    defaults = dict(lr=lr, betas=betas, eps=1e-8, weight_decay=weight_decay)
    check(impl, oracle, parameters, grads, defaults, f"lr {lr}, betas {betas}, weight_decay {weight_decay}")


@given(seed=seeds, lr=st.sampled_from([1e-3, 3e-3]))
def test_adamw_first_step_moves_every_element_by_lr(impl, oracle, seed, lr):
    """Reference-free (bias correction): at step 1, m̂ = g and v̂ = g², so with no weight decay each
    element moves by lr·g/(|g| + ε), i.e. by lr against the sign of g (here |g| ≥ 0.1, so ε/|g| ≤ 1e-7).
    Without the bias correction it moves by lr·(1 − β₁)/√(1 − β₂) ≈ 3.2·lr."""
    shapes = [(6,), (3, 4)]
    parameters = [randn(shape, seed + i).float() for i, shape in enumerate(shapes)]
    grads = [g.sign() * (0.1 + g.abs()) for g in (randn(shape, seed + 50 + i).float() for i, shape in enumerate(shapes))]
    call = adamw_call(parameters, [grads], dict(lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0))
    history = impl.run_adamw(**call)
    (after,) = history
    # θ ≈ 1 in float32 is rounded to ~6e-8, i.e. 6e-5 of the step lr = 1e-3: 1e-3 relative is ample.
    tol = Tolerance(rtol=1e-3, atol=1e-3, row="adamw first step (property)",
                    reason="θ − lr·sign(g) rounded to float32 (≤ 1.2e-7 for |θ| ≤ 2) is ≤ 1.2e-4 of lr = 1e-3")
    with diagnosed(oracle, "run_adamw", call, history, TOL):
        for i, (before, moved, g) in enumerate(zip(parameters, after, grads)):
            assert_close((moved.double() - before.double()), -lr * g.double().sign(), tol,
                         f"first-step change of parameter {i} (must be −lr·sign(g): bias-corrected m̂/√v̂ = ±1)")


@given(seed=seeds, weight_decay=st.sampled_from([0.01, 0.1]), lr=st.sampled_from([1e-3, 3e-3]))
def test_adamw_decays_weights_apart_from_the_gradient(impl, oracle, seed, weight_decay, lr):
    """Reference-free (decoupled decay): with zero gradients m = v = 0, so the Adam update is 0 and
    each step only decays, θ ← (1 − lr·λ)·θ. Weight decay added to the gradient instead (Adam with
    L2) moves every element by ~lr regardless of its size."""
    shapes = [(5,), (2, 3)]
    parameters = [randn(shape, seed + i).float() for i, shape in enumerate(shapes)]
    steps = 3
    grads = [[torch.zeros(shape) for shape in shapes] for _ in range(steps)]
    call = adamw_call(parameters, grads, dict(lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay))
    history = impl.run_adamw(**call)
    with diagnosed(oracle, "run_adamw", call, history, TOL):
        for s, step in enumerate(history):
            for i, (before, after) in enumerate(zip(parameters, step)):
                expected = before.double() * (1 - lr * weight_decay) ** (s + 1)
                assert_close(after.double(), expected, TOL, f"parameter {i} after {s + 1} steps with zero gradients "
                                                            f"(must be (1 − lr·λ)^{s + 1}·θ)")


def test_adamw_uses_each_groups_own_hyperparameters(impl, oracle):
    """Three groups: the defaults, their own lr and weight_decay, and their own betas."""
    parameters, grads = adamw_case(SHAPES, 6, 21)
    groups = [{"params": [0]}, {"params": [1], "lr": 3e-3, "weight_decay": 0.0},
              {"params": [2], "betas": (0.8, 0.95), "weight_decay": 0.1}]
    defaults = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    check(impl, oracle, parameters, grads, defaults, "parameter groups with their own lr, weight_decay, betas", groups=groups)


def test_adamw_leaves_parameters_without_gradient_unchanged(impl, oracle):
    """Parameter 1 has no gradient at steps 1, 2 and 4: its value stays exactly as it was those steps."""
    missing = {(0, 1), (1, 1), (3, 1)}
    parameters, grads = adamw_case(SHAPES, 5, 23, missing=missing)
    call = adamw_call(parameters, grads, dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1))
    history = impl.run_adamw(**call)
    previous = parameters
    with diagnosed(oracle, "run_adamw", call, history, TOL):
        for s, step in enumerate(history):
            if (s, 1) in missing:
                assert torch.equal(step[1], previous[1]), (
                    f"parameter 1 had no gradient at step {s + 1} but changed: skip parameters whose .grad is None "
                    "(no decay, no update)"
                )
            previous = step


def test_adamw_keeps_a_step_count_per_parameter(impl, oracle):
    """Parameter 1 first gets a gradient at step 3, parameter 2 at step 5: their bias corrections
    count their own steps (1, 2, …), not the optimiser's, as torch's do."""
    missing = {(0, 1), (1, 1), (0, 2), (1, 2), (2, 2), (3, 2), (6, 0)}
    parameters, grads = adamw_case(SHAPES, 8, 25, missing=missing)
    check(impl, oracle, parameters, grads, dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01),
          "parameters that start getting gradients at different steps")


def test_adamw_reads_the_learning_rate_from_the_group_at_every_step(impl, oracle):
    """group['lr'] is set before every step (as a schedule does), including to 0."""
    parameters, grads = adamw_case(SHAPES, 6, 27)
    lrs = [1e-3, 3e-3, 0.0, 2e-3, 5e-4, 3e-3]
    check(impl, oracle, parameters, grads, dict(lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1),
          f"learning rates {lrs} set in the groups before each step", lrs=lrs)


@pytest.mark.parametrize("reload_after", [1, 4])
def test_adamw_state_dict_round_trip_changes_nothing(impl, oracle, reload_after):
    """After step k the state_dict goes through torch.save/torch.load(weights_only=True) into a new
    optimiser: every later step equals that of the run without the reload (m, v and each step
    count must live in self.state)."""
    parameters, grads = adamw_case(SHAPES, 6, 29)
    defaults = dict(lr=3e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    straight = impl.run_adamw(**adamw_call(parameters, grads, defaults))
    call = adamw_call(parameters, grads, defaults, reload_after=reload_after)
    reloaded = impl.run_adamw(**call)
    with diagnosed(oracle, "run_adamw", call, reloaded, TOL):
        for s, (a, b) in enumerate(zip(straight, reloaded, strict=True)):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                assert_close(y.double(), x.double(), TOL, f"parameter {i} after step {s + 1}, reloaded after step "
                                                          f"{reload_after} vs never reloaded")


def test_adamw_matches_torch_through_a_state_dict_reload(impl, oracle):
    parameters, grads = adamw_case(SHAPES, 6, 31, missing={(0, 2)})
    groups = [{"params": [0, 2]}, {"params": [1], "lr": 3e-3}]
    check(impl, oracle, parameters, grads, dict(lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1),
          "groups and a reload after step 3", groups=groups, reload_after=3)


def test_adamw_adds_eps_to_the_square_root_not_inside_it(impl, oracle):
    """Gradients of ~1e-6, where √v̂ ≈ 1e-6 ≫ ε = 1e-8 but √(v̂ + ε) ≈ 1e-4: ε inside the root shrinks
    the update ~100×. β₂ = 0.5 keeps CS336's form (ε not rescaled by √(1 − β₂ᵗ)) within the row."""
    parameters, grads = adamw_case(SHAPES, 3, 33)
    grads = [[g.sign() * (1 + g.abs()) * 1e-6 for g in step] for step in grads]  # |g| in [1e-6, ~4e-6]
    check(impl, oracle, parameters, grads, dict(lr=1e-3, betas=(0.9, 0.5), eps=1e-8, weight_decay=0.0),
          "gradients of about 1e-6")
