"""The training loop against the reference on drawn weights, batches and hyperparameters."""

from hypothesis import given
from hypothesis import strategies as st

from ..checks import check_against_reference
from ..strategies import LM_CONFIGS, seeds
from ..test_training import COMPONENT, training_args, own_loop


@st.composite
def training_cases(draw):
    """Bounds that keep CS336's form of AdamW inside the row: limits ≥ 0.5 (tighter clipping pushes
    gradient elements towards ε, which CS336's form does not rescale), and weight decay ≤ 0.01 (its
    decay after the step differs by lr²·λ per element and step, which the loss sums over every
    parameter, ~‖g‖₁·lr²·λ: ~1e-4 at λ = 0.1, 10× less at 0.01)."""
    config = draw(st.sampled_from(LM_CONFIGS[:2]))
    return config, dict(batch=draw(st.sampled_from([1, 2])), seq=draw(st.sampled_from([5, config.context_length])),
                        max_learning_rate=draw(st.sampled_from([1e-3, 3e-3])),
                        warmup_iters=draw(st.sampled_from([0, 1, 3])), cosine_cycle_iters=draw(st.sampled_from([4, 8])),
                        max_l2_norm=draw(st.sampled_from([0.5, 1.0, 100.0])),
                        weight_decay=draw(st.sampled_from([0.0, 0.01])))


@given(case=training_cases(), seed=seeds)
def test_training_losses_match_the_reference_on_drawn_cases(impl, oracle, case, seed):
    config, kwargs = case
    args = training_args(config, seed, 6, min_learning_rate=kwargs["max_learning_rate"] / 10, **kwargs)
    check_against_reference(impl, oracle, "run_train_steps", args, component=COMPONENT, composition=own_loop)
