"""Training: batches, AdamW, the learning-rate schedule, gradient clipping, checkpoints, the loop."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from jaxtyping import Int
from torch import Tensor, nn

from .loss import cross_entropy


def get_batch(
    dataset: npt.NDArray, batch_size: int, context_length: int, device: str
) -> tuple[Int[Tensor, "batch_size context_length"], Int[Tensor, "batch_size context_length"]]:
    """`batch_size` windows of `context_length` tokens at uniform random starts, and the same
    windows shifted by one token (the targets).

    A start s needs tokens s … s + context_length (the last one is the last target), so the
    starts run over 0 … len(dataset) − context_length − 1, both ends included. Only the sampled
    windows are read: `dataset` may be a memory-mapped file far larger than memory.
    """
    starts = torch.randint(0, len(dataset) - context_length, (batch_size,)).numpy()
    offsets = np.arange(context_length + 1)
    windows = dataset[starts[:, None] + offsets]  # (batch_size, context_length + 1): reads only these
    windows = torch.from_numpy(windows.astype(np.int64)).to(device)
    return windows[:, :-1], windows[:, 1:]


def gradient_clipping(parameters: Iterable[nn.Parameter], max_l2_norm: float) -> None:
    """Scale every gradient in place by max_l2_norm / (‖g‖ + 1e-6) when the global norm ‖g‖ (over all
    gradients together, as one vector) exceeds max_l2_norm; parameters without a gradient are skipped."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    norm = torch.sqrt(sum(g.detach().pow(2).sum() for g in grads))
    if norm > max_l2_norm:
        scale = max_l2_norm / (norm + 1e-6)
        for g in grads:
            g.mul_(scale)


class AdamW(torch.optim.Optimizer):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW.

    Per parameter θ with gradient g, at step t = 1, 2, …:
        θ ← θ − lr · λ · θ                            (decoupled: never through the gradient)
        m ← β₁ m + (1 − β₁) g          v ← β₂ v + (1 − β₂) g²
        m̂ = m / (1 − β₁ᵗ)              v̂ = v / (1 − β₂ᵗ)     (bias correction)
        θ ← θ − lr · m̂ / (√v̂ + ε)
    The decay comes first, as in torch. CS336 writes the same update with α_t = lr·√(1−β₂ᵗ)/(1−β₁ᵗ),
    decay last and ε not rescaled; the two agree to O(lr²·λ) and O(ε/√v̂), inside the tolerance
    wherever gradients are not themselves of the order of ε.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"invalid AdamW hyperparameters: lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                p.mul_(1 - lr * weight_decay)
                denominator = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
                p.addcdiv_(m, denominator, value=-lr / (1 - beta1**t))
        return loss


def get_lr_cosine_schedule(
    it: int, max_learning_rate: float, min_learning_rate: float, warmup_iters: int, cosine_cycle_iters: int
) -> float:
    """Linear warmup from 0 to max over [0, warmup_iters), cosine from max down to min over
    [warmup_iters, cosine_cycle_iters], then min for ever."""
    if it < warmup_iters:
        return it / warmup_iters * max_learning_rate
    if it <= cosine_cycle_iters:
        progress = (it - warmup_iters) / (cosine_cycle_iters - warmup_iters)
        return min_learning_rate + 0.5 * (1 + math.cos(math.pi * progress)) * (max_learning_rate - min_learning_rate)
    return min_learning_rate


def save_checkpoint(model: nn.Module, optimizer: torch.optim.Optimizer, iteration: int, out) -> None:
    """Write the model's and the optimizer's state and the iteration to a path or a binary file.
    Only tensors, numbers and strings: it loads with torch.load(weights_only=True)."""
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "iteration": iteration}, out)


def load_checkpoint(src, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Restore what save_checkpoint wrote into freshly built objects; returns the iteration."""
    checkpoint = torch.load(src, weights_only=True)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    return checkpoint["iteration"]


@dataclass
class TrainingConfig:
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
    """One optimiser step at iteration `it` (0-based): set the scheduled learning rate, forward,
    mean cross-entropy over every position, backward, clip, step. Returns the loss before the step."""
    lr = get_lr_cosine_schedule(it, config.max_learning_rate, config.min_learning_rate,
                                config.warmup_iters, config.cosine_cycle_iters)
    for group in optimizer.param_groups:
        group["lr"] = lr
    logits = model(inputs)  # (batch, seq, vocab): position i predicts targets[:, i]
    loss = cross_entropy(logits, targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    gradient_clipping(model.parameters(), config.max_l2_norm)
    optimizer.step()
    return loss.item()
