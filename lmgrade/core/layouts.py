"""Memory layouts: the same values laid out as a sliced, transposed, permuted or expanded tensor.

A correct implementation must not care how its inputs are laid out; `.view` on a permuted
tensor, or an in-place write into an expanded one, does. The tests draw a layout per case
(`apply`), and the layout crosses the process boundary (`describe` / `rebuild`) so the
submission in its sandbox sees the strides the test made, not a contiguous copy.
"""

from __future__ import annotations

import torch
from torch import Tensor

# "expanded" changes values (every index of a broadcast dimension holds the same row), so the
# test applies it to the ground truth too: see `broadcast_values`.
LAYOUTS = ("contiguous", "sliced", "transposed", "permuted", "expanded")


def broadcast_values(t: Tensor) -> Tensor:
    """The values an expanded layout can hold: the first leading row repeated (contiguous)."""
    if t.dim() < 2 or t.shape[0] < 2:
        return t
    return t[:1].expand_as(t).contiguous()


def apply(t: Tensor, layout: str) -> Tensor:
    """t's values (after `broadcast_values` for "expanded") in the given layout."""
    if layout == "contiguous" or t.dim() == 0:
        return t.contiguous()
    if layout == "sliced":  # stride 2 in the last dimension
        wide = t.new_zeros(*t.shape[:-1], 2 * t.shape[-1])
        wide[..., ::2] = t
        return wide[..., ::2]
    if layout == "transposed":  # the last two dimensions stored the other way round
        if t.dim() < 2:
            return apply(t, "sliced")
        return t.transpose(-1, -2).contiguous().transpose(-1, -2)
    if layout == "permuted":  # leading dimensions stored in reverse order
        if t.dim() < 3:
            return apply(t, "transposed")
        lead = list(range(t.dim() - 1))
        order = lead[::-1] + [t.dim() - 1]
        return t.permute(order).contiguous().permute(torch.argsort(torch.tensor(order)).tolist())
    if layout == "expanded":  # the first dimension broadcast with stride 0
        if t.dim() < 2 or t.shape[0] < 2:
            return apply(t, "sliced")
        if not torch.equal(t, t[:1].expand_as(t)):
            raise ValueError("an expanded layout needs values from broadcast_values()")
        return t[:1].expand_as(t)
    raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")


def describe(t: Tensor) -> dict:
    """What `rebuild` needs to lay a contiguous copy of t out as t is: strides and shape."""
    return {"shape": list(t.shape), "stride": list(t.stride())}


def rebuild(values: Tensor, layout: dict | None) -> Tensor:
    """values (contiguous) laid out with the strides `describe` saw: the same stride order, the
    same broadcast (stride-0) dimensions, and a gap where the original had one."""
    if not layout or values.dim() == 0 or values.is_contiguous() and list(values.stride()) == layout["stride"]:
        return values
    stride = layout["stride"]
    shape = list(values.shape)
    if stride == list(values.contiguous().stride()):
        return values
    # Broadcast dimensions: keep one index, expand back at the end.
    zero = [d for d, s in enumerate(stride) if s == 0 and shape[d] > 1]
    core = values
    for d in zero:
        core = core.narrow(d, 0, 1)
    # Store the remaining dimensions in the original's stride order (largest stride outermost).
    order = sorted(range(len(shape)), key=lambda d: (-stride[d], d))
    stored = core.permute(order).contiguous()
    gap = sum(s * (n - 1) for s, n in zip(stride, shape) if s) + 1 > values.numel() and not zero
    if gap:  # a slice of something larger: stride 2 in the innermost stored dimension
        wide = stored.new_zeros(*stored.shape[:-1], 2 * stored.shape[-1]) if stored.dim() else stored
        wide[..., ::2] = stored
        stored = wide[..., ::2]
    out = stored.permute(torch.argsort(torch.tensor(order)).tolist())
    return out.expand(*shape) if zero else out
