"""The training loop: the submission's own LM, AdamW, schedule, clipping and train_step, on one batch.

run_train_steps builds the submission's TransformerLM with the given weights and its AdamW
(betas (0.9, 0.95), eps 1e-8), and calls its train_step at iterations 0 … num_steps − 1 on one
fixed batch; it returns the loss of every step (each computed before that step's update).

Each mistake is charged once (SPEC §4.6): a loop that equals the grader's loop over the
submission's own parts (its LM, cross_entropy, AdamW, schedule and clipping: loop="grader")
is right, whatever those parts get wrong; they pay in their own items.
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from .checks import check_against_reference, on, property_or_own_parts
from .strategies import LM_CONFIGS, lm_weights, randint, seeds

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "A training failure is usually zero_grad misplaced (after backward: no update; never: gradients pile "
    "up), clipping after the step instead of before it, the learning rate of step it + 1 (or none set in "
    "the groups), targets shifted a second time, or the loss returned after the step instead of before."
    "\n"
    "Ask yourself: in train_step, is the order set lr → forward → loss → zero_grad → backward → clip → "
    "step, and is the returned loss the one computed before the step?"
)

COMPONENT = "training"
TINY = LM_CONFIGS[0]  # vocab 37, d_model 16, 1 layer: fast enough for 40 steps
DEEP = LM_CONFIGS[1]  # vocab 64, d_model 24, 2 layers: the row's case


def training_args(config, seed: int, num_steps: int, batch: int = 2, seq: int = 12, max_learning_rate: float = 1e-2,
                  min_learning_rate: float = 1e-3, warmup_iters: int = 2, cosine_cycle_iters: int = 10,
                  max_l2_norm: float = 1.0, weight_decay: float = 0.01) -> dict:
    """Keyword arguments of run_train_steps (float64 weights: the description of the case)."""
    tokens = randint(config.vocab_size, (batch, seq + 1), seed + 7)
    return dict(**config.args(), weights=lm_weights(config, seed), inputs=tokens[:, :-1], targets=tokens[:, 1:],
                num_steps=num_steps, max_learning_rate=max_learning_rate, min_learning_rate=min_learning_rate,
                warmup_iters=warmup_iters, cosine_cycle_iters=cosine_cycle_iters, max_l2_norm=max_l2_norm,
                weight_decay=weight_decay)


def own_loop(impl, **args) -> torch.Tensor:
    """The grader's training loop over the submission's own parts (the composition of SPEC §4.6)."""
    return impl.run_train_steps(**args, loop="grader")


def train(impl, args: dict) -> torch.Tensor:
    losses = impl.run_train_steps(**on(args))
    assert losses.shape == (args["num_steps"],), f"{args['num_steps']} steps gave losses of shape {tuple(losses.shape)}"
    assert bool(torch.isfinite(losses).all()), f"non-finite losses: {losses.tolist()}"
    return losses


# Overfitting one batch of 2 × 12 tokens of the 1-layer LM at a flat lr 2e-2 (3 warmup steps, then
# min = max): the reference goes from ~4 (ln 37 = 3.6) to 0.02-0.09 after 25 steps (seeds 0-5).
OVERFIT_STEPS, OVERFIT_BELOW, OVERFIT_LR = 25, 0.5, 2e-2


def overfit_args(seed: int) -> dict:
    return training_args(TINY, seed, OVERFIT_STEPS, max_learning_rate=OVERFIT_LR, min_learning_rate=OVERFIT_LR,
                         warmup_iters=3, cosine_cycle_iters=OVERFIT_STEPS)


def assert_overfits(impl, seed: int) -> None:
    losses = train(impl, overfit_args(seed))
    assert float(losses[-1]) < OVERFIT_BELOW, (
        f"after {OVERFIT_STEPS} steps on one fixed batch the loss is {float(losses[-1]):.3f} (from {float(losses[0]):.3f}); "
        f"a working loop gets it below {OVERFIT_BELOW} (the reference reaches 0.02-0.09)"
    )


def test_training_overfits_a_fixed_batch(impl):
    """The loss of the 1-layer LM on one batch of 2 × 12 tokens falls below 0.5 within 25 steps at
    lr 2e-2 (the reference, seed 0: from 4.12 to 0.023)."""
    property_or_own_parts(lambda: assert_overfits(impl, 0), impl, "run_train_steps", own_loop, [on(overfit_args(0))],
                          COMPONENT)


@pytest.mark.parametrize("seed", [0, 1])
def test_training_first_ten_losses_match_the_reference(impl, oracle, seed):
    """Ten steps of the 2-layer LM (warmup 2, cosine to step 10, lr 3e-3, clipping at 1.0) from the
    same weights: every loss equals the reference loop's."""
    args = training_args(DEEP, seed, 10, max_learning_rate=3e-3, min_learning_rate=3e-4, warmup_iters=2,
                         cosine_cycle_iters=10, max_l2_norm=1.0, weight_decay=0.01)
    check_against_reference(impl, oracle, "run_train_steps", args, component=COMPONENT, composition=own_loop)


def test_training_first_loss_is_that_of_the_initial_model(impl, oracle):
    """One step with no warmup (lr = max at step 0): the loss returned is the cross-entropy of the
    initial weights, computed before the update (a loss after the step differs here)."""
    args = training_args(DEEP, 3, 1, max_learning_rate=3e-3, min_learning_rate=3e-3, warmup_iters=0,
                         cosine_cycle_iters=10)
    check_against_reference(impl, oracle, "run_train_steps", args, component=COMPONENT, composition=own_loop)


def test_training_clips_gradients_before_the_step(impl, oracle):
    """A clipping limit of 0.5 (the gradient norm here is several times that) and no warmup: the
    losses depend on clipping in every step, before the update. Not much tighter: a limit of 0.01
    shrinks gradient elements towards ε = 1e-8, where CS336's form of AdamW (ε not rescaled) and
    torch's differ by more than the row allows."""
    args = training_args(TINY, 5, 5, max_learning_rate=3e-3, min_learning_rate=3e-3, warmup_iters=0,
                         cosine_cycle_iters=5, max_l2_norm=0.5, weight_decay=0.0)
    check_against_reference(impl, oracle, "run_train_steps", args, component=COMPONENT, composition=own_loop)


@given(seed=st.sampled_from([1, 2]))
def test_training_loss_decreases(impl, seed):
    """Reference-free: 10 steps at lr 1e-2 end with a lower loss than they start with (the reference:
    ~4 down to ~2)."""
    args = training_args(TINY, seed, 10, max_learning_rate=1e-2, min_learning_rate=1e-3, warmup_iters=2,
                         cosine_cycle_iters=10)

    def check():
        losses = train(impl, args)
        assert float(losses[-1]) < float(losses[0]), (
            f"the loss went from {float(losses[0]):.4f} to {float(losses[-1]):.4f} in 10 steps")

    property_or_own_parts(check, impl, "run_train_steps", own_loop, [on(args)], COMPONENT)
