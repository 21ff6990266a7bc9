"""torch functions that import torch._dynamo on their first call, made not to.

torch wraps a few of its functions in `torch._compile._disable_dynamo`, which imports torch._dynamo
(about 1.1 s on a 2-core machine) the first time the function runs, only to mark it as code
torch.compile must not trace. A grading meets two of them in the test process and again in the
submission's: FlopCounterMode's dispatch handler (the KV-cache and generation cost tests) and the
methods of torch.optim.Optimizer (AdamW, training, checkpoints), each time for an import nothing
else uses. The wrapper looks for a ready-made "disabled" function on the one it wraps before
importing; giving it that function itself skips the import.

A submission that uses torch.compile is graded the same: a compiled function counts the same FLOPs
and a compiled training step gives the same losses (selftests/test_no_dynamo.py; by hand also with
the inductor backend). Where torch no longer wraps these functions this way, nothing is changed.
"""

from __future__ import annotations

import functools

import torch
from torch.optim.optimizer import Optimizer
from torch.utils import flop_counter


@functools.cache
def _wrapper_code():
    return torch._compile._disable_dynamo(lambda: None).__code__


def _disarm(function) -> None:
    if getattr(function, "__code__", None) is _wrapper_code():
        raw = function.__wrapped__
        if getattr(raw, "__dynamo_disable", None) is None:
            setattr(raw, "__dynamo_disable", raw)  # read by the wrapper before it imports


@functools.cache
def skip_dynamo_imports() -> None:
    """Once per process, before FLOPs are counted or an optimizer is built."""
    for owner in (getattr(flop_counter, "_FlopCounterMode", None), Optimizer):
        for function in vars(owner).values() if owner is not None else ():
            _disarm(function)


def flop_counter_mode() -> flop_counter.FlopCounterMode:
    """A FlopCounterMode that prints nothing: `with flop_counter_mode() as counter: ...; counter.get_total_flops()`."""
    skip_dynamo_imports()
    return flop_counter.FlopCounterMode(display=False)
