"""lmgrade.core.no_dynamo: FLOP counting and torch.optim without importing torch._dynamo, graded the same."""

from __future__ import annotations

import subprocess
import sys
import textwrap


# An optimizer as students write theirs (torch's own AdamW.step imports torch._dynamo itself, whatever we do).
SGD = """
class SGD(torch.optim.Optimizer):
    def __init__(self, params, lr):
        super().__init__(params, dict(lr=lr))

    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                p.data -= group["lr"] * p.grad
"""


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", "import torch\n" + SGD + textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_counting_flops_and_stepping_an_optimizer_in_a_fresh_process_do_not_import_torch_dynamo():
    out = _run("""
        import sys, torch
        from lmgrade.core.no_dynamo import flop_counter_mode, skip_dynamo_imports
        skip_dynamo_imports()
        with flop_counter_mode() as counter:
            torch.ones(3, 5) @ torch.ones(5, 7)
        weight = torch.nn.Parameter(torch.ones(3))
        optimizer = SGD([weight], lr=0.1)
        weight.sum().backward()
        optimizer.step()
        optimizer.zero_grad()
        print(counter.get_total_flops(), "torch._dynamo" in sys.modules)
    """)
    assert out == f"{2 * 3 * 5 * 7} False"


def test_compiled_code_counts_the_same_flops_and_trains_to_the_same_losses_as_eager_code():
    """A submission may use torch.compile: what torch marks as not to be traced still is not."""
    out = _run("""
        import torch
        from lmgrade.core.no_dynamo import flop_counter_mode, skip_dynamo_imports
        skip_dynamo_imports()

        def attention(x, w):
            return torch.softmax(x @ w, dim=-1) @ w.T

        x, w = torch.randn(8, 16), torch.randn(16, 32)
        counts = []
        for fn in (attention, torch.compile(attention, backend="eager")):
            with flop_counter_mode() as counter:
                y = fn(x, w)
            counts.append(counter.get_total_flops())

        def losses(compiled):
            torch.manual_seed(0)
            model = torch.nn.Linear(4, 2)
            optimizer = SGD(model.parameters(), lr=0.01)
            def step(batch):
                optimizer.zero_grad()
                loss = model(batch).pow(2).sum()
                loss.backward()
                optimizer.step()
                return loss.item()
            step = torch.compile(step, backend="eager") if compiled else step
            return [step(torch.ones(8, 4)) for _ in range(3)]

        print(counts[0], counts[1], torch.allclose(y, attention(x, w)), losses(False) == losses(True))
    """)
    eager, compiled, same_output, same_losses = out.split()
    assert int(eager) == 2 * 8 * 16 * 32 * 2 and compiled == eager and same_output == "True" and same_losses == "True"
