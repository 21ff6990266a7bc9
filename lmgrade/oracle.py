"""Expected outputs and gradients: from the live reference (instructors) or from shipped snapshots.

A comparison case is (adapter name, keyword arguments, which tensors to differentiate,
cotangent seed). Its expected values are a dict {"output": ..., "grad/<path>": ...}, a
pure function of the case, so the student handout can ship them as data files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .compare import Mismatch


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
            "did you use .detach(), .data, torch.no_grad() or a non-differentiable op?"
        )
    grads = torch.autograd.grad(output, leaves, cotangent(output.shape, cotangent_seed, output), allow_unused=True)
    for path, leaf, grad in zip(wrt, leaves, grads):
        if grad is None:
            raise Mismatch(f"{fn}: no gradient flows back to {path!r}: the output does not use it")
        result[f"grad/{path}"] = grad
    return result


def case_key(fn: str, args: dict, wrt: Sequence[str], cotangent_seed: int) -> str:
    """A digest of everything that determines the expected values of a case."""
    digest = hashlib.sha256(f"{fn}|{','.join(wrt)}|{cotangent_seed}".encode())

    def feed(value: Any, name: str) -> None:
        if isinstance(value, dict):
            for key in sorted(value):
                feed(value[key], f"{name}/{key}")
        elif isinstance(value, Tensor):
            t = value.detach().to("cpu").contiguous()
            digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            digest.update(bytes(t.flatten().view(torch.uint8).tolist()))
        else:
            digest.update(f"{name}={value!r}".encode())

    feed(args, "")
    return digest.hexdigest()[:24]


class LiveOracle:
    """The hidden reference, run in float64 on the CPU: the ground truth."""

    def __init__(self, reference_bound):
        self.reference = reference_bound

    def expected(self, fn: str, args: dict, wrt: Sequence[str] = (), cotangent_seed: int = 0) -> dict[str, Tensor]:
        def to_ground_truth(t: Tensor) -> Tensor:
            t = t.detach().to("cpu")
            return t.to(torch.float64) if t.is_floating_point() else t

        return outputs_and_grads(self.reference, fn, map_tensors(args, to_ground_truth), wrt, cotangent_seed)
