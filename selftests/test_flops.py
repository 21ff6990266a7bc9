"""lmgrade.core.flops: the FLOP counter the grader uses counts what torch's does, without importing torch._dynamo."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import torch

from lmgrade.core.flops import flop_counter_mode


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def test_counting_flops_in_a_fresh_process_does_not_import_torch_dynamo():
    out = _run("""
        import sys, torch
        from lmgrade.core.flops import flop_counter_mode
        with flop_counter_mode() as counter:
            torch.ones(3, 5) @ torch.ones(5, 7)
        print(counter.get_total_flops(), "torch._dynamo" in sys.modules)
    """)
    assert out == f"{2 * 3 * 5 * 7} False"


def test_a_compiled_function_counts_the_same_flops_as_the_same_function_run_eagerly():
    """A submission may use torch.compile: the handler torch marks as not to be traced still is not."""
    out = _run("""
        import torch
        from lmgrade.core.flops import flop_counter_mode

        def attention(x, w):
            return torch.softmax(x @ w, dim=-1) @ w.T

        x, w = torch.randn(8, 16), torch.randn(16, 32)
        counts = []
        for fn in (attention, torch.compile(attention, backend="eager")):
            with flop_counter_mode() as counter:
                y = fn(x, w)
            counts.append(counter.get_total_flops())
        print(counts[0], counts[1], torch.allclose(y, attention(x, w)))
    """)
    eager, compiled, same = out.split()
    assert int(eager) == 2 * 8 * 16 * 32 * 2 and compiled == eager and same == "True"


def test_the_counter_counts_as_torchs_own():
    x, w = torch.randn(4, 6, 10), torch.randn(10, 12)
    with flop_counter_mode() as ours:
        torch.einsum("bsi,io->bso", x, w)
    with torch.utils.flop_counter.FlopCounterMode(display=False) as theirs:
        torch.einsum("bsi,io->bso", x, w)
    assert ours.get_total_flops() == theirs.get_total_flops() == 2 * 4 * 6 * 10 * 12
