"""The submission's process: imports the submission, answers adapter calls, nothing else.

Started by lmgrade.sandbox.isolation with two pipe descriptors. It never sees the rubric, the
tests or the reference; it gets plain tensors and values, and sends back plain tensors.
Gradients: a call whose inputs require grad keeps its graph under a handle until the
grading process asks for the vector-Jacobian product (or releases it).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.abc
import sys
import threading
import traceback
from collections import OrderedDict

MAX_KEPT_GRAPHS = 32


class _BlockInstructorCode(importlib.abc.MetaPathFinder):
    """The reference and the bug catalogue are not the submission's to import."""

    BLOCKED = ("reference", "lmgrade.catalogue", "interop")

    def find_spec(self, fullname, path=None, target=None):
        if any(fullname == b or fullname.startswith(b + ".") for b in self.BLOCKED):
            raise ImportError(f"{fullname} is not available to submissions")
        return None


def _restrict_imports() -> None:
    sys.meta_path.insert(0, _BlockInstructorCode())
    for name in list(sys.modules):
        if any(name == b or name.startswith(b + ".") for b in _BlockInstructorCode.BLOCKED):
            del sys.modules[name]


class Server:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.backend = None
        self.import_error: str | None = None
        self.graphs: OrderedDict[int, tuple] = OrderedDict()
        self.next_handle = 0

    def load(self):
        if self.backend is None and self.import_error is None:
            import adapters

            try:
                self.backend = adapters.select(
                    impl=self.args.impl, adapters_file=self.args.adapters, submission=self.args.submission
                ).backend
            except BaseException as error:  # noqa: BLE001 - even sys.exit() at import is the submission's failure
                self.import_error = f"could not import the implementation under test: {type(error).__name__}: {error}"
        return self.backend

    def call(self, header, tensors):
        import torch

        from lmgrade.core import layouts
        from lmgrade.core.no_dynamo import flop_counter_mode, skip_dynamo_imports
        from lmgrade.sandbox import wire
        from lmgrade.sandbox.forbidden import ForbiddenCallDetector
        from lmgrade.sandbox.policy import forbidden_for

        from adapters.dispatch import call_adapter

        backend = self.load()
        if backend is None:
            return {"ok": False, "kind": "import", "message": self.import_error}, None
        skip_dynamo_imports()  # once: the submission's optimizer would import torch._dynamo for nothing
        if header.get("driven"):  # trusted driver code builds the live objects and calls the submission
            import functools

            from adapters.drivers import DRIVERS

            function = functools.partial(DRIVERS[header["fn"]], backend) if header["fn"] in DRIVERS else None
        else:
            function = getattr(backend, header["fn"], None)
        if function is None:
            return {"ok": False, "kind": "not_implemented", "message": f"not implemented: the submission defines no {header['fn']}"}, None

        grad_inputs = []

        def rebuild(t, meta):
            if meta["device"] != "cpu":
                t = t.to(meta["device"])
            t = layouts.rebuild(t, meta.get("layout"))  # the strides the test made (sliced, permuted, expanded, ...)
            if meta["requires_grad"] and header["grad"]:
                t = t.detach().requires_grad_(True)
                grad_inputs.append(t)
            return t

        args = wire.decode(header["args"], tensors, rebuild)
        detector = ForbiddenCallDetector(forbidden_for(header.get("item")))
        counting = bool(header.get("count_flops"))
        counter = flop_counter_mode() if counting else contextlib.nullcontext()
        m, n, k = header.get("canary", [2, 2, 2])
        self.canary = {"detector_canary": False}
        threads_before = threading.active_count()

        def flop_canary():
            if counting:
                before = counter.get_total_flops()
                torch.mm(torch.ones(m, k), torch.ones(k, n))
                return counter.get_total_flops() - before
            return 0

        with torch.set_grad_enabled(bool(header["grad"])), detector, counter:
            first = flop_canary()
            try:
                output = call_adapter(header["fn"], function, args, backend) if not header.get("driven") else function(*args)
            finally:
                # The grader's own calls after the submission's: the detector and the counter must still see them.
                self.canary["detector_canary"] = detector.canary()
                last = flop_canary()
                if counting:
                    self.canary["canary_flops"] = [first, last]
                    self.canary["flops"] = counter.get_total_flops()
                self.canary["threads_started"] = threading.active_count() > threads_before
        violation = detector.report(header.get("item"))
        if violation:
            return {"ok": False, "kind": "forbidden", "message": violation, "violations": detector.sites}, None
        reply = {"ok": True, "handle": None}
        if isinstance(output, torch.Tensor) and output.requires_grad and grad_inputs:
            handle = self.next_handle = self.next_handle + 1
            self.graphs[handle] = (output, grad_inputs)
            while len(self.graphs) > MAX_KEPT_GRAPHS:
                self.graphs.popitem(last=False)
            reply["handle"] = handle
        skeleton, out_tensors = wire.encode(output)
        reply["output"] = skeleton
        return reply, out_tensors

    def status(self, header, tensors):
        """Whether the submission imports: asked before a static-scan finding is reported, since a
        submission that cannot be imported has its import error to fix first."""
        self.load()
        if self.import_error is not None:
            return {"ok": False, "kind": "import", "message": self.import_error}, None
        return {"ok": True}, None

    def backward(self, header, tensors):
        import torch

        graph = self.graphs.pop(header["handle"], None)
        if graph is None:
            return {"ok": False, "kind": "error", "message": "the graph of that call was released"}, None
        output, inputs = graph
        grads = torch.autograd.grad(output, inputs, tensors["cotangent"].to(output.dtype), allow_unused=True)
        reply = {"ok": True, "present": [g is not None for g in grads]}
        return reply, {f"g{i}": g.contiguous() for i, g in enumerate(grads) if g is not None}

    def serve(self, request_fd: int, reply_fd: int) -> None:
        from lmgrade.sandbox import wire

        while True:
            try:
                # From the grader: its nesting is not checked (0.2 ms a request, byte by byte in Python).
                header, tensors = wire.receive(request_fd, max_depth=None)
            except EOFError:
                return
            try:
                reply, out = getattr(self, header["op"])(header, tensors)
            except NotImplementedError as error:
                reply, out = {"ok": False, "kind": "not_implemented", "message": str(error) or "NotImplementedError"}, None
            except Exception as error:  # the submission's exception: report it, keep serving
                tb = traceback.format_exception(type(error), error, error.__traceback__)
                reply, out = {"ok": False, "kind": "error", "type": type(error).__name__,
                              "message": str(error)[:2000], "traceback": "".join(tb[-6:])[-4000:]}, None
            reply.update(getattr(self, "canary", None) or {})  # canaries and FLOPs, also when it raised
            self.canary = None
            wire.send(reply_fd, reply, out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--request-fd", type=int, required=True)
    parser.add_argument("--reply-fd", type=int, required=True)
    parser.add_argument("--impl", default="student")
    parser.add_argument("--adapters", default=None)
    parser.add_argument("--submission", default=None)
    args = parser.parse_args()
    if args.impl != "reference" or args.adapters or args.submission:
        _restrict_imports()
    import adapters  # noqa: F401 - the heavy imports (torch, einx, jaxtyping) before saying ready
    import torch  # noqa: F401

    from lmgrade.sandbox import wire

    wire.send(args.reply_fd, {"ready": True})
    Server(args).serve(args.request_fd, args.reply_fd)


if __name__ == "__main__":
    main()
