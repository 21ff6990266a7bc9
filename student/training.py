"""Training: batches, AdamW, the learning-rate schedule, gradient clipping, checkpoints, the loop."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy.typing as npt
import torch
from jaxtyping import Int
from torch import Tensor, nn


def get_batch(
    dataset: npt.NDArray, batch_size: int, context_length: int, device: str
) -> tuple[Int[Tensor, "batch_size context_length"], Int[Tensor, "batch_size context_length"]]:
    """Sample a training batch from a 1-D array of token ids.

    Returns (inputs, targets), both int64 tensors of shape (batch_size, context_length) on
    `device`. Row b is the window dataset[s_b : s_b + context_length] and its targets are the
    same window shifted by one token, dataset[s_b + 1 : s_b + context_length + 1]: position i
    predicts the token after it.

    The starts s_b are independent and uniform over 0 … len(dataset) − context_length − 1,
    both ends included (the last start still has a target for its last position). Use torch's
    random number generator (torch.randint), so that torch.manual_seed makes a run repeatable.

    `dataset` may be a np.memmap of a file larger than memory (np.uint16 token ids): read only
    the windows you sample, e.g. by indexing with an array of positions, never
    torch.tensor(dataset) or np.array(dataset) on the whole of it.

    The traps: targets not shifted (inputs == targets: the model learns to copy), the last
    start unreachable (randint's upper bound is exclusive), uint16 ids left as uint16.
    """
    raise NotImplementedError("get_batch")


def gradient_clipping(parameters: Iterable[nn.Parameter], max_l2_norm: float) -> None:
    """Clip the gradients of `parameters` in place to a global L2 norm of at most max_l2_norm.

    The norm is taken over ALL gradients together, as if concatenated into one vector:
    ‖g‖ = √(Σ_p Σ_i g_{p,i}²). If ‖g‖ > max_l2_norm, multiply every gradient by
    max_l2_norm / (‖g‖ + 1e-6) (the 1e-6 keeps it finite; the result is just under the limit);
    otherwise leave them untouched. Parameters whose .grad is None are skipped. `parameters`
    may be a generator: read it once.

    Not allowed: torch.nn.utils.clip_grad_norm_ (and its helpers).
    The traps: clipping each parameter to the limit separately; scaling when the norm is below
    the limit; replacing .grad by a new tensor that the optimiser does not see.
    """
    raise NotImplementedError("gradient_clipping")


class AdamW(torch.optim.Optimizer):
    """AdamW: Adam with decoupled weight decay, as torch.optim.AdamW computes it.

    AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01); `params` is an
    iterable of parameters or of parameter groups (dicts with "params" and, optionally, their
    own lr, betas, eps, weight_decay). Call super().__init__(params, defaults) so that groups,
    state_dict() and load_state_dict() work as for any torch optimizer.

    step(): for every parameter θ with a gradient g (skip those whose .grad is None), with the
    hyperparameters of ITS group, read at this step (a schedule changes group["lr"] between
    steps), and its own step count t = 1, 2, … kept in self.state[θ]:
        θ ← θ − lr · λ · θ                                (decoupled weight decay)
        m ← β₁ m + (1 − β₁) g          v ← β₂ v + (1 − β₂) g²
        θ ← θ − lr · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)
    Equivalently (CS336's form) α_t = lr · √(1 − β₂ᵗ) / (1 − β₁ᵗ), θ ← θ − α_t m / (√v + ε), then
    the decay; both are accepted. Update in place under torch.no_grad(); keep m, v and t in
    self.state[θ] so that state_dict() saves them.

    Not allowed: torch.optim.Adam / AdamW or torch's functional adam(w) behind your class.
    The traps: no bias correction, weight decay added to the gradient (that is Adam with L2,
    not AdamW), one step counter for all parameters, group hyperparameters ignored.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01):
        raise NotImplementedError("AdamW.__init__")

    def step(self, closure: Callable[[], float] | None = None):
        raise NotImplementedError("AdamW.step")


def get_lr_cosine_schedule(
    it: int, max_learning_rate: float, min_learning_rate: float, warmup_iters: int, cosine_cycle_iters: int
) -> float:
    """The learning rate at iteration `it` (0-based), with linear warmup then cosine decay:

        it < warmup_iters:                       it / warmup_iters · max_learning_rate
        warmup_iters ≤ it ≤ cosine_cycle_iters:  min + ½(1 + cos(π (it − warmup_iters) /
                                                 (cosine_cycle_iters − warmup_iters))) (max − min)
        it > cosine_cycle_iters:                 min_learning_rate

    So step 0 has lr 0, step warmup_iters has exactly max, step cosine_cycle_iters exactly min.
    The traps: warmup off by one ((it + 1) / warmup_iters), the cosine counted from 0 instead of
    from the end of warmup, decaying to 0 instead of to min.
    """
    raise NotImplementedError("get_lr_cosine_schedule")


def save_checkpoint(model: nn.Module, optimizer: torch.optim.Optimizer, iteration: int, out) -> None:
    """Save model.state_dict(), optimizer.state_dict() and `iteration` to `out` (a path or a
    binary file object) with torch.save. Save only state dicts, numbers and strings, never the
    objects themselves: the grader loads checkpoints with torch.load(..., weights_only=True)."""
    raise NotImplementedError("save_checkpoint")


def load_checkpoint(src, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Load a checkpoint written by save_checkpoint from `src` (path or binary file) into `model`
    and `optimizer` (freshly built, same shapes), and return the saved iteration. Training on
    from there must give bit for bit what training without the interruption gives."""
    raise NotImplementedError("load_checkpoint")


@dataclass
class TrainingConfig:
    """The hyperparameters of train_step (given)."""

    max_learning_rate: float = 1e-3
    min_learning_rate: float = 1e-4
    warmup_iters: int = 10
    cosine_cycle_iters: int = 100
    max_l2_norm: float = 1.0


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: Int[Tensor, "batch seq"],
    targets: Int[Tensor, "batch seq"],
    it: int,
    config: TrainingConfig,
) -> float:
    """One step of training at iteration `it` (0-based), with YOUR components:

      1. set every param group's "lr" to get_lr_cosine_schedule(it, …config…);
      2. logits = model(inputs); loss = your cross_entropy over every position
         (targets are already the inputs shifted by one: get_batch did it);
      3. zero the gradients, loss.backward();
      4. gradient_clipping(model.parameters(), config.max_l2_norm);
      5. optimizer.step().
    Return the loss (a Python float) computed before the step.

    The traps: zero_grad after backward (no update) or never (gradients pile up), clipping after
    the step, the learning rate of step `it + 1`, shifting targets that are already shifted.
    """
    raise NotImplementedError("train_step")
