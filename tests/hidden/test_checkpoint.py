"""Checkpoint resume on drawn weights, lengths, resume points, hyperparameters and targets (path or buffer)."""

from hypothesis import given
from hypothesis import strategies as st

from ..strategies import seeds
from ..test_checkpoint import assert_resumed_equals_straight, checkpoint_args, resume


@st.composite
def resume_cases(draw):
    total_steps = draw(st.integers(min_value=2, max_value=8))
    return dict(total_steps=total_steps, resume_at=draw(st.integers(min_value=1, max_value=total_steps - 1)),
                learning_rate=draw(st.sampled_from([1e-3, 1e-2])), weight_decay=draw(st.sampled_from([0.0, 0.1])),
                to_file=draw(st.booleans()))


@given(case=resume_cases(), seed=seeds)
def test_checkpoint_resume_is_exact_on_drawn_cases(impl, oracle, case, seed):
    result, diagnosis = resume(impl, oracle, **checkpoint_args(seed, **case))
    with diagnosis:
        assert result["iteration"] == case["resume_at"], (
            f"load_checkpoint returned {result['iteration']}, saved at {case['resume_at']}")
        assert_resumed_equals_straight(result, f"case {case}")
