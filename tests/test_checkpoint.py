"""Checkpoints: save after k steps, load into fresh objects, train on: bit for bit the uninterrupted run.

The driver trains a small two-layer net with the submission's AdamW, once straight through and
once with the submission's save_checkpoint / load_checkpoint in the middle (to a path, or to a
binary buffer), and returns both end states and the checkpoint's bytes.
"""

import contextlib
import io

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from .checks import diagnosed
from .strategies import randn, seeds

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "A checkpoint failure is usually the optimizer's state left out (only the model saved, so m, v and the "
    "step counts restart from zero), the iteration not returned by load_checkpoint, the model or optimizer "
    "object pickled instead of their state_dict() (torch.load(weights_only=True) refuses it), or a path "
    "handled but not a file object (or the reverse)."
    "\n"
    "Ask yourself: does the checkpoint hold model.state_dict(), optimizer.state_dict() and the iteration "
    "as plain tensors and numbers, and does your AdamW keep everything it needs in self.state?"
)

D_IN, HIDDEN, D_OUT, BATCH = 4, 8, 3, 6


def checkpoint_args(seed: int, total_steps: int = 6, resume_at: int = 3, learning_rate: float = 1e-2,
                    weight_decay: float = 0.01, to_file: bool = True) -> dict:
    weights = {"hidden": randn((HIDDEN, D_IN), seed, D_IN**-0.5).float(), "out": randn((D_OUT, HIDDEN), seed + 1, HIDDEN**-0.5).float(),
               "bias": randn((D_OUT,), seed + 2, 0.1).float()}
    return dict(weights=weights, inputs=randn((BATCH, D_IN), seed + 3).float(), targets=randn((BATCH, D_OUT), seed + 4).float(),
                total_steps=total_steps, resume_at=resume_at, learning_rate=learning_rate, weight_decay=weight_decay,
                to_file=to_file)


def without_bytes(result: dict) -> dict:
    return {key: value for key, value in result.items() if key != "checkpoint"}


def loads_weights_only(result: dict) -> bool:
    try:
        torch.load(io.BytesIO(bytes(result["checkpoint"].numpy())), weights_only=True)
    except Exception:  # noqa: BLE001 - any refusal counts
        return False
    return True


def resume(impl, oracle, **kwargs) -> tuple[dict, contextlib.AbstractContextManager]:
    """impl's result, and a context in which a failure names the catalogued bug that resumes the same way."""
    result = impl.run_checkpoint_resume(**kwargs)
    return result, diagnosed(oracle, "run_checkpoint_resume", kwargs, without_bytes(result),
                             measure=lambda bound: without_bytes(bound.run_checkpoint_resume(**kwargs)))


def assert_resumed_equals_straight(result: dict, what: str) -> None:
    straight, resumed = result["straight"], result["resumed"]
    assert set(resumed["weights"]) == set(straight["weights"]), f"{what}: the resumed net has other weights"
    for name, value in straight["weights"].items():
        assert torch.equal(resumed["weights"][name], value), (
            f"{what}: weight {name!r} after resuming differs from the uninterrupted run "
            f"(max |Δ| = {float((resumed['weights'][name] - value).abs().max()):.3g}); it must be bit for bit the same"
        )
    assert set(resumed["optimizer"]) == set(straight["optimizer"]), (
        f"{what}: optimizer state keys after resuming {sorted(resumed['optimizer'])} differ from the uninterrupted "
        f"run's {sorted(straight['optimizer'])}"
    )
    for key, value in straight["optimizer"].items():
        assert torch.equal(resumed["optimizer"][key], value), (
            f"{what}: optimizer state {key!r} (parameter index/state key) after resuming differs from the uninterrupted run"
        )


both_ways = pytest.mark.parametrize("to_file", [True, False], ids=["path", "buffer"])


@both_ways
def test_checkpoint_resumed_weights_equal_the_straight_run(impl, oracle, to_file):
    result, diagnosis = resume(impl, oracle, **checkpoint_args(0, to_file=to_file))
    straight, resumed = result["straight"]["weights"], result["resumed"]["weights"]
    with diagnosis:
        for name, value in straight.items():
            assert name in resumed and torch.equal(resumed[name], value), (
                f"weight {name!r} after save at step 3, load and 3 more steps differs from 6 uninterrupted steps"
            )


@both_ways
def test_checkpoint_resumed_optimizer_state_equals_the_straight_run(impl, oracle, to_file):
    """m, v and the step counts come back too: every optimizer-state tensor equals the straight run's."""
    result, diagnosis = resume(impl, oracle, **checkpoint_args(1, to_file=to_file))
    with diagnosis:
        assert_resumed_equals_straight(result, f"saved to a {'path' if to_file else 'buffer'}")


@pytest.mark.parametrize("resume_at", [1, 4])
def test_checkpoint_load_returns_the_saved_iteration(impl, oracle, resume_at):
    result, diagnosis = resume(impl, oracle, **checkpoint_args(2, total_steps=5, resume_at=resume_at))
    with diagnosis:
        assert result["iteration"] == resume_at, f"load_checkpoint returned {result['iteration']}; it was saved at {resume_at}"


@both_ways
def test_checkpoint_loads_with_weights_only(impl, oracle, to_file):
    """torch.load(…, weights_only=True) reads the checkpoint: only tensors, numbers, strings and
    containers of them (pickled objects or code are refused)."""
    args = checkpoint_args(3, to_file=to_file)
    result = impl.run_checkpoint_resume(**args)
    blob = bytes(result["checkpoint"].numpy())
    assert blob, "the checkpoint is empty: save_checkpoint wrote nothing"
    with diagnosed(oracle, "run_checkpoint_resume", args, False,
                   measure=lambda bound: loads_weights_only(bound.run_checkpoint_resume(**args))):
        try:
            torch.load(io.BytesIO(blob), weights_only=True)
        except Exception as error:  # noqa: BLE001 - any refusal means the checkpoint holds more than state
            raise AssertionError(
                f"torch.load(weights_only=True) refused the checkpoint ({type(error).__name__}: {str(error)[:300]}); "
                "save state_dict()s, numbers and strings, not the model or optimizer objects"
            ) from None


def test_checkpoint_straight_run_trains(impl, oracle):
    """Six AdamW steps at lr 1e-2 move every weight (else the comparisons above prove nothing)."""
    args = checkpoint_args(4)
    result = impl.run_checkpoint_resume(**args)
    for name, initial in args["weights"].items():
        assert not torch.equal(result["straight"]["weights"][name], initial), f"weight {name!r} did not change in 6 steps"


@given(seed=seeds, to_file=st.booleans())
def test_checkpoint_resume_is_exact_for_drawn_weights(impl, oracle, seed, to_file):
    result, diagnosis = resume(impl, oracle, **checkpoint_args(seed, to_file=to_file))
    with diagnosis:
        assert_resumed_equals_straight(result, "drawn weights")
