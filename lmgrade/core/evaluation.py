"""Run one adapter on a case and collect its output and the gradients of Σ output ⊙ cotangent.

A case's arguments are nested dicts of tensors; a differentiated argument is named by its
path ("in_features", "weights/ln1.weight"). Used by the oracle (the reference's expected
values), by the tests (the submission's values) and by diagnosis (the bugs' values), so all
three differentiate the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lmgrade.core.compare import Mismatch


def get_path(args: dict, path: str) -> Any:
    value = args
    for part in path.split("/"):
        value = value[part]
    return value


def set_path(args: dict, path: str, new: Any) -> dict:
    """A copy of args with the value at path replaced (nested dicts are copied, tensors are not)."""
    head, _, rest = path.partition("/")
    copied = dict(args)
    copied[head] = set_path(args[head], rest, new) if rest else new
    return copied


def map_tensors(args: Any, fn) -> Any:
    if isinstance(args, Tensor):
        return fn(args)
    if isinstance(args, dict):
        return {key: map_tensors(value, fn) for key, value in args.items()}
    if isinstance(args, (list, tuple)):
        return type(args)(map_tensors(value, fn) for value in args)
    return args


def cotangent(shape, seed: int, like: Tensor) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(tuple(shape), generator=g, dtype=torch.float64).to(like.dtype).to(like.device)


def outputs_and_grads(bound, fn: str, args: dict, wrt: Sequence[str], cotangent_seed: int = 0) -> dict[str, Tensor]:
    """Run one adapter; differentiate Σ output ⊙ cotangent w.r.t. each path in wrt."""
    leaves = []
    for path in wrt:
        leaf = get_path(args, path).detach().requires_grad_(True)
        args = set_path(args, path, leaf)
        leaves.append(leaf)
    output = getattr(bound, fn)(**args)
    result = {"output": output.detach()}
    if not leaves:
        return result
    if not output.requires_grad:
        raise Mismatch(
            f"{fn}: the output does not depend differentiably on {list(wrt)}; "
            "did you use .detach(), .data, torch.no_grad() or a non-differentiable op?", outputs=result
        )
    grads = torch.autograd.grad(output, leaves, cotangent(output.shape, cotangent_seed, output), allow_unused=True)
    result.update({f"grad/{path}": grad for path, grad in zip(wrt, grads) if grad is not None})
    pairs = list(zip(wrt, grads))
    weights = [path for path in wrt if is_weight_path(path)]
    if weights and all(grad is None for path, grad in pairs if path in weights):
        # The output is differentiable, yet no weight tensor we passed gets a gradient: the adapter
        # copied the weights into its module (CS336's load_state_dict), so the gradients went to the
        # module's own parameters. Legitimate; only the input gradients can be compared.
        pairs = [(path, grad) for path, grad in pairs if path not in weights]
    for path, grad in pairs:
        if grad is None:  # what was produced goes with the error: a diagnosis can still match it
            raise Mismatch(f"{fn}: no gradient flows back to {path!r}: the output does not use it", outputs=result)
    return result


def is_weight_path(path: str) -> bool:
    """A differentiated argument that is a weight (`weights`, `weights/<name>`, `q_proj_weight`), not an input."""
    return "weight" in path
