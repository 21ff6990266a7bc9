"""An output computed in the child, joined to the grading process's autograd graph: its backward
asks the child for the vector-Jacobian product of the graph the child kept for that call."""

from __future__ import annotations

import torch


def tensors_in(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in tensors_in(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors_in(v)]
    return []


class RemoteGraph(torch.autograd.Function):
    """Connects an output computed in the child to the grading process's autograd graph."""

    @staticmethod
    def forward(ctx, backend, handle, output, *grad_inputs):
        ctx.backend, ctx.handle = backend, handle
        ctx.input_meta = [(t.dtype, t.device) for t in grad_inputs]
        return output.to(grad_inputs[0].device).clone() if grad_inputs else output.clone()

    @staticmethod
    def backward(ctx, cotangent):
        grads = ctx.backend.backward(ctx.handle, cotangent)
        moved = [g.to(dtype=dtype, device=device) if g is not None else None for g, (dtype, device) in zip(grads, ctx.input_meta)]
        return (None, None, None, *moved)
