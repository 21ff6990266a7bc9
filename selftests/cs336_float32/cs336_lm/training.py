"""Training, as a CS336 student writes it (handout §4–5 formulas): numpy sampling, AdamW in the
α_t form with the decay after the update, a stacked-norm clip, torch.save of state dicts."""

from __future__ import annotations

import math
import os
from typing import BinaryIO, IO

import numpy as np
import numpy.typing as npt
import torch


def get_batch(dataset: npt.NDArray, batch_size: int, context_length: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    starts = np.random.randint(0, len(dataset) - context_length, size=batch_size)
    x = np.stack([dataset[s : s + context_length] for s in starts]).astype(np.int64)
    y = np.stack([dataset[s + 1 : s + 1 + context_length] for s in starts]).astype(np.int64)
    return torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)


def gradient_clipping(parameters, max_l2_norm: float) -> None:
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    if total > max_l2_norm:
        factor = max_l2_norm / (total + 1e-6)
        for g in grads:
            g.mul_(factor)


class AdamW(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            lr, (beta1, beta2), eps, decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                t = state.get("t", 0) + 1
                m = state.get("m", torch.zeros_like(p.data))
                v = state.get("v", torch.zeros_like(p.data))
                g = p.grad.data
                m = beta1 * m + (1 - beta1) * g
                v = beta2 * v + (1 - beta2) * g * g
                alpha = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
                p.data -= alpha * m / (torch.sqrt(v) + eps)
                p.data -= lr * decay * p.data
                state["t"], state["m"], state["v"] = t, m, v
        return loss


def get_lr_cosine_schedule(it: int, max_learning_rate: float, min_learning_rate: float, warmup_iters: int,
                           cosine_cycle_iters: int) -> float:
    if it < warmup_iters:
        return it / warmup_iters * max_learning_rate
    if it > cosine_cycle_iters:
        return min_learning_rate
    cos = math.cos((it - warmup_iters) / (cosine_cycle_iters - warmup_iters) * math.pi)
    return min_learning_rate + 0.5 * (1 + cos) * (max_learning_rate - min_learning_rate)


def save_checkpoint(model, optimizer, iteration: int, out: str | os.PathLike | BinaryIO | IO[bytes]) -> None:
    torch.save({"model_state": model.state_dict(), "optimizer_state": optimizer.state_dict(), "iteration": iteration}, out)


def load_checkpoint(src: str | os.PathLike | BinaryIO | IO[bytes], model, optimizer) -> int:
    checkpoint = torch.load(src)
    model.load_state_dict(checkpoint["model_state"])
    optimizer.load_state_dict(checkpoint["optimizer_state"])
    return checkpoint["iteration"]
