"""The two kinds of check every component file uses: against the reference, and properties."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from lmgrade.compare import Mismatch, Tolerance, assert_close
from lmgrade.diagnosis import diagnose_outputs, explained
from lmgrade.oracle import map_tensors, outputs_and_grads

from .strategies import noncontiguous
from .tolerances import EXACT64, tolerance


def on(args: dict, dtype: torch.dtype, device: torch.device, strided: bool = False) -> dict:
    """Cast the floating tensors of args to dtype, move all to device, optionally make them non-contiguous."""

    def convert(t: Tensor) -> Tensor:
        t = t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype)
        return noncontiguous(t) if strided else t

    return map_tensors(args, convert)


def check_against_reference(
    impl,
    oracle,
    fn: str,
    args: dict,
    *,
    component: str,
    dtype: torch.dtype,
    device: torch.device,
    wrt: Sequence[str] = (),
    strided: bool = False,
    cotangent_seed: int = 0,
    tol: Tolerance | None = None,
) -> None:
    """Output (and gradients w.r.t. each path in wrt) of impl equal the float64 reference's.

    args holds float64 CPU tensors; the implementation under test sees them in `dtype` on
    `device` (non-contiguous if `strided`), the reference sees them in float64. tol: the
    component's tolerance for dtype unless given. A mismatch names the common bug it matches, if any.
    """
    tol = tol or tolerance(component, dtype)
    got = None
    try:
        # The implementation first: if it is missing or crashes, no reference time is spent.
        got = outputs_and_grads(impl, fn, on(args, dtype, device, strided), wrt, cotangent_seed)
        expected = oracle.expected(fn, args, wrt, cotangent_seed)
        output = got["output"]
        if output.dtype != dtype:
            raise Mismatch(f"{fn}: output dtype is {output.dtype} for {dtype} inputs; it must follow the input dtype")
        if output.device.type != device.type:
            raise Mismatch(f"{fn}: output is on {output.device} for inputs on {device}")
        for name, value in expected.items():
            what = f"{fn} {'output' if name == 'output' else 'gradient w.r.t. ' + name[5:]} vs the reference"
            assert_close(got[name], value, tol, what)
    except Mismatch as error:
        produced = got if got is not None else error.outputs
        explained(error, lambda: diagnose_outputs(oracle, fn, args, produced, tol, wrt, cotangent_seed, dtype))
        raise


def assert_unchanged(got: Tensor, expected: Tensor, what: str, tol: Tolerance | None = None) -> None:
    assert_close(got, expected, tol or EXACT64, what)


def count_flops(bound, fn: str, **kwargs) -> tuple[int, Exception | None]:
    """FLOPs of one adapter call and the exception it raised, if any.

    The implementation under test counts where it runs (in a child process when isolated);
    any other bound (the reference, a catalogued bug) is counted here.
    """
    if hasattr(bound, "count_flops"):
        return bound.count_flops(fn, **kwargs)
    with FlopCounterMode(display=False) as counter:
        try:
            getattr(bound, fn)(**kwargs)
        except Exception as error:  # noqa: BLE001 - the caller decides what the error means
            return counter.get_total_flops(), error
    return counter.get_total_flops(), None
