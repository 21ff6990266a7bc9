"""FLOP counting: torch's FlopCounterMode, without the second its first use spends importing torch._dynamo.

torch wraps the counter's dispatch handler in `torch._compile._disable_dynamo`, which imports
torch._dynamo (about 1.1 s on a 2-core machine) the first time the handler runs, only to mark the
handler as code torch.compile must not trace. A grading counts FLOPs in the test process and in
the submission's process, so two of those seconds per grading went to an import nothing used.
The wrapper looks for a ready-made "disabled" handler on the function before importing; giving it
the handler itself skips the import. A submission that uses torch.compile still counts the same
FLOPs (selftests/test_flops.py; by hand also with the inductor backend). Where torch no longer
wraps the handler this way, nothing is changed and the import happens as before.
"""

from __future__ import annotations

from torch.utils import flop_counter


def _skip_dynamo_import() -> None:
    handler = getattr(flop_counter, "_FlopCounterMode", None)
    raw = getattr(getattr(handler, "__torch_dispatch__", None), "__wrapped__", None)
    if raw is not None and getattr(raw, "__dynamo_disable", None) is None:
        setattr(raw, "__dynamo_disable", raw)  # read by torch._compile._disable_dynamo's wrapper


def flop_counter_mode() -> flop_counter.FlopCounterMode:
    """A FlopCounterMode that prints nothing: `with flop_counter_mode() as counter: ...; counter.get_total_flops()`."""
    _skip_dynamo_import()
    return flop_counter.FlopCounterMode(display=False)
