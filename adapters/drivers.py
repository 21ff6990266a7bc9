"""Drivers: trusted code that runs the adapters which take live objects (parameters, an optimizer
class, a model and a file), where the submission runs, and hands back only tensors and values.

CS336's `run_gradient_clipping(parameters, max_l2_norm)`, `get_adamw_cls()` and
`run_save_checkpoint(model, optimizer, iteration, out)` act on objects that cannot cross a
process boundary. The tests call a driven adapter with plain tensors (`adapters.signatures`);
the driver builds the objects beside the submission (in its sandboxed child, or in-process when
not isolated), calls the submission's function, and returns what the objects hold afterwards.
The verdict is computed by the tests, outside. Each driver takes the backend first; the rest of
its arguments are those of the canonical signature of the same name.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .dispatch import MissingAdapter, current_backend, describe


def _backend_function(backend: Any, name: str) -> Callable:
    function = getattr(backend, name, None)
    if function is None:
        raise MissingAdapter(f"not implemented: {describe(backend)} defines no {name}")
    return function


def _seed_everything(seed: int) -> None:
    """Students sample with torch's or numpy's generator: seed both, so a case repeats exactly."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def _batch(inputs: Any, targets: Any) -> dict:
    if not isinstance(inputs, Tensor) or not isinstance(targets, Tensor):
        raise TypeError(f"get_batch must return two tensors, got {type(inputs).__name__} and {type(targets).__name__}")
    return {"inputs": inputs, "targets": targets, "device": inputs.device.type, "targets_device": targets.device.type}


def run_get_batch(backend, dataset: Tensor, batch_size: int, context_length: int, device: str, seed: int) -> dict:
    """The submission's get_batch on `dataset` as a 1-D np.uint16 array (token ids < 65536)."""
    get_batch = _backend_function(backend, "run_get_batch")
    array = dataset.numpy().astype(np.uint16)
    _seed_everything(seed)
    return _batch(*get_batch(array, batch_size, context_length, device))


def run_get_batch_memmap(backend, num_tokens: int, batch_size: int, context_length: int, seed: int) -> dict:
    """The submission's get_batch on a read-only np.memmap of `num_tokens` uint16 zeros (a sparse
    file: no disk or memory is used until a page is read). The caller measures, from outside, how
    much memory the call took: reading the whole file costs 2 bytes a token, sampling a few kB."""
    get_batch = _backend_function(backend, "run_get_batch")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "tokens.bin")
        with open(path, "wb") as file:
            file.truncate(2 * num_tokens)
        array = np.memmap(path, dtype=np.uint16, mode="r", shape=(num_tokens,))
        _seed_everything(seed)
        batch = _batch(*get_batch(array, batch_size, context_length, "cpu"))
        del array
    return batch


def run_gradient_clipping(backend, parameters: list[Tensor], grads: list[Tensor | None], max_l2_norm: float) -> dict:
    """Parameters with these values and gradients, clipped by the submission; what they hold after."""
    clip = _backend_function(backend, "run_gradient_clipping")
    live = [nn.Parameter(p.detach().clone()) for p in parameters]
    for p, g in zip(live, grads, strict=True):
        p.grad = None if g is None else g.detach().clone()
    clip(iter(live), max_l2_norm)  # a generator, as model.parameters() is: it may be read once
    return {"parameters": [p.detach() for p in live], "grads": [None if p.grad is None else p.grad.detach() for p in live]}


def _optimizer(cls: type, live: list[nn.Parameter], groups: list[dict] | None, defaults: dict) -> torch.optim.Optimizer:
    kwargs = dict(defaults)
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    if groups is None:
        return cls(live, **kwargs)
    param_groups = []
    for group in groups:
        settings = {k: (tuple(v) if k == "betas" else v) for k, v in group.items() if k != "params"}
        param_groups.append({"params": [live[i] for i in group["params"]], **settings})
    return cls(param_groups, **kwargs)


def step_optimizer(cls: type, parameters: list[Tensor], groups: list[dict] | None, defaults: dict,
                   grads: list[list[Tensor | None]], lrs: list[float] | None, reload_after: int | None) -> list[list[Tensor]]:
    """Run optimizer class `cls` for len(grads) steps; the parameters after every step.

    grads[s][i]: the gradient of parameter i at step s (None: no gradient that step). lrs[s], if
    given, is set in every group before step s (as a schedule does). reload_after=k: after step k
    the state_dict goes through torch.save/torch.load(weights_only=True) into a freshly built
    optimizer, which does the remaining steps. Used with the submission's class and with torch's.
    """
    live = [nn.Parameter(p.detach().clone()) for p in parameters]
    optimizer = _optimizer(cls, live, groups, defaults)
    history = []
    for step, step_grads in enumerate(grads):
        if reload_after is not None and step == reload_after:
            buffer = io.BytesIO()
            torch.save(optimizer.state_dict(), buffer)
            buffer.seek(0)
            optimizer = _optimizer(cls, live, groups, defaults)
            optimizer.load_state_dict(torch.load(buffer, weights_only=True))
        if lrs is not None:
            for param_group in optimizer.param_groups:
                param_group["lr"] = lrs[step]
        for p, g in zip(live, step_grads, strict=True):
            p.grad = None if g is None else g.detach().clone().to(p.dtype)
        optimizer.step()
        history.append([p.detach().clone() for p in live])
    return history


def run_adamw(backend, parameters: list[Tensor], groups: list[dict] | None, defaults: dict,
              grads: list[list[Tensor | None]], lrs: list[float] | None, reload_after: int | None) -> list[list[Tensor]]:
    """The submission's AdamW class (get_adamw_cls), stepped as `step_optimizer` says."""
    cls = _backend_function(backend, "get_adamw_cls")()
    if not isinstance(cls, type) or not issubclass(cls, torch.optim.Optimizer):
        raise TypeError(f"get_adamw_cls must return a torch.optim.Optimizer subclass, got {cls!r}")
    return step_optimizer(cls, parameters, groups, defaults, grads, lrs, reload_after)


class TinyNet(nn.Module):
    """The network the checkpoint test trains: two layers and a bias, small enough to be exact."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int):
        super().__init__()
        self.hidden = nn.Parameter(torch.zeros(d_hidden, d_in))
        self.out = nn.Parameter(torch.zeros(d_out, d_hidden))
        self.bias = nn.Parameter(torch.zeros(d_out))

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x @ self.hidden.T) @ self.out.T + self.bias


def _tiny_net(weights: dict[str, Tensor]) -> TinyNet:
    d_hidden, d_in = weights["hidden"].shape
    net = TinyNet(d_in, d_hidden, weights["out"].shape[0]).to(weights["hidden"].dtype)
    net.load_state_dict(weights)
    return net


def run_checkpoint_resume(backend, weights: dict[str, Tensor], inputs: Tensor, targets: Tensor, total_steps: int,
                          resume_at: int, learning_rate: float, weight_decay: float, to_file: bool) -> dict:
    """Train a TinyNet with the submission's AdamW for total_steps in one go, and again with a
    save_checkpoint after resume_at steps, a load_checkpoint into a fresh net and optimizer, and
    the remaining steps. Returns both end states (weights and optimizer state), the iteration that
    load_checkpoint returned, and the checkpoint's bytes (the caller loads them weights_only)."""
    cls = _backend_function(backend, "get_adamw_cls")()
    save = _backend_function(backend, "run_save_checkpoint")
    load = _backend_function(backend, "run_load_checkpoint")

    def fresh():
        net = _tiny_net(weights)
        return net, cls(net.parameters(), lr=learning_rate, weight_decay=weight_decay)

    def train(net, optimizer, steps):
        for _ in range(steps):  # the grading side may have turned autograd off: training needs it
            with torch.set_grad_enabled(True):
                optimizer.zero_grad()
                ((net(inputs) - targets) ** 2).mean().backward()
            optimizer.step()

    def state(net, optimizer) -> dict:
        tensors = {}
        for index, parameter in enumerate(net.parameters()):
            for key, value in optimizer.state.get(parameter, {}).items():
                tensors[f"{index}/{key}"] = torch.as_tensor(value).detach().clone()
        return {"weights": {k: v.detach().clone() for k, v in net.state_dict().items()}, "optimizer": tensors}

    net, optimizer = fresh()
    train(net, optimizer, total_steps)
    straight = state(net, optimizer)

    net, optimizer = fresh()
    train(net, optimizer, resume_at)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "checkpoint.pt")
        if to_file:
            save(net, optimizer, resume_at, path)
            with open(path, "rb") as file:
                blob = file.read()
        else:
            buffer = io.BytesIO()
            save(net, optimizer, resume_at, buffer)
            blob = buffer.getvalue()
    del net, optimizer
    net, optimizer = fresh()
    net.load_state_dict({k: torch.zeros_like(v) for k, v in net.state_dict().items()})  # nothing left to reuse
    if to_file:
        with tempfile.TemporaryDirectory() as folder:
            source = os.path.join(folder, "checkpoint.pt")
            with open(source, "wb") as file:
                file.write(blob)
            iteration = load(source, net, optimizer)
    else:
        iteration = load(io.BytesIO(blob), net, optimizer)
    train(net, optimizer, total_steps - resume_at)
    resumed = state(net, optimizer)
    if isinstance(iteration, Tensor):
        iteration = iteration.item()
    if not isinstance(iteration, (int, np.integer)):
        raise TypeError(f"load_checkpoint must return the iteration as an int, got {type(iteration).__name__}")
    return {"straight": straight, "resumed": resumed, "iteration": int(iteration),
            "checkpoint": torch.frombuffer(bytearray(blob), dtype=torch.uint8) if blob else torch.zeros(0, dtype=torch.uint8)}


def run_train_steps(backend, vocab_size: int, context_length: int, d_model: int, num_layers: int, num_heads: int,
                    d_ff: int, rope_theta: float, weights: dict[str, Tensor], inputs: Tensor, targets: Tensor,
                    num_steps: int, max_learning_rate: float, min_learning_rate: float, warmup_iters: int,
                    cosine_cycle_iters: int, max_l2_norm: float, weight_decay: float, loop: str) -> Tensor:
    """The submission's LM with these weights and its AdamW (betas (0.9, 0.95), eps 1e-8), trained
    num_steps times on one batch, by its own train_step (loop="yours") or by this loop made of its
    own parts (loop="grader": its schedule, its cross_entropy, its clipping, in the SPEC's order).
    The second is what a correct train_step gives with the submission's parts, right or wrong:
    a part's mistake is charged to the part (SPEC §4.6)."""
    model = _backend_function(backend, "build_lm")(vocab_size, context_length, d_model, num_layers, num_heads, d_ff,
                                                   rope_theta, weights)
    cls = _backend_function(backend, "get_adamw_cls")()
    optimizer = cls(model.parameters(), lr=max_learning_rate, betas=(0.9, 0.95), eps=1e-8, weight_decay=weight_decay)
    schedule = (max_learning_rate, min_learning_rate, warmup_iters, cosine_cycle_iters)
    losses = []
    for it in range(num_steps):
        with torch.set_grad_enabled(True):  # the grading side may have turned autograd off: training needs it
            if loop == "yours":
                loss = _backend_function(backend, "run_train_step")(model, optimizer, inputs, targets, it, *schedule,
                                                                    max_l2_norm)
            else:
                lr = _backend_function(backend, "run_get_lr_cosine_schedule")(it, *schedule)
                for param_group in optimizer.param_groups:
                    param_group["lr"] = lr
                loss = _backend_function(backend, "run_cross_entropy")(model(inputs), targets)
                optimizer.zero_grad()
                loss.backward()
                _backend_function(backend, "run_gradient_clipping")(model.parameters(), max_l2_norm)
                optimizer.step()
        losses.append(float(loss.detach()) if isinstance(loss, Tensor) else float(loss))
    return torch.tensor(losses, dtype=next(iter(weights.values())).dtype)


DRIVERS: dict[str, Callable] = {
    "run_get_batch": run_get_batch,
    "run_get_batch_memmap": run_get_batch_memmap,
    "run_gradient_clipping": run_gradient_clipping,
    "run_adamw": run_adamw,
    "run_checkpoint_resume": run_checkpoint_resume,
    "run_train_steps": run_train_steps,
}

# The submission's functions each driver calls (what the static scan must look at for it).
DRIVEN_ON: dict[str, tuple[str, ...]] = {
    "run_get_batch": ("run_get_batch",),
    "run_get_batch_memmap": ("run_get_batch",),
    "run_gradient_clipping": ("run_gradient_clipping",),
    "run_adamw": ("get_adamw_cls",),
    "run_checkpoint_resume": ("get_adamw_cls", "run_save_checkpoint", "run_load_checkpoint"),
    "run_train_steps": ("build_lm", "get_adamw_cls", "run_train_step", "run_get_lr_cosine_schedule", "run_cross_entropy",
                        "run_gradient_clipping"),
}


def drive(name: str, *args: Any) -> Any:
    """Run driven adapter `name` where the current backend runs: a backend in another process (it
    has `drive`) runs the driver there; any other backend is in this process, and it runs here."""
    backend = current_backend.get(None)
    if backend is None:
        raise RuntimeError(f"{name} was called outside a bound adapters handle")
    if hasattr(type(backend), "drive"):
        return backend.drive(name, *args)
    return DRIVERS[name](backend, *args)
