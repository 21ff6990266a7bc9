"""The grading process's side of the boundary: a backend whose adapters run in a child process.

The grading process never imports the submission. Each adapter call ships plain values and
tensors (lmgrade.wire) to lmgrade.child and gets plain tensors back. Gradients cross too:
the output carries an autograd node whose backward asks the child for the vector-Jacobian
product, so the tests differentiate through the boundary as if it were not there.

Limits: the child gets an address-space limit and its own copy of the submission; where
the machine allows it runs in a namespace sandbox (see `isolation_mode`); its output is
drained and capped. If it dies (crash,
sys.exit, os._exit, a signal, the memory limit) the call in flight fails with
`SubmissionCrashed` and the next call starts a fresh child. A timeout in the grading
process (SIGALRM) interrupts the wait and kills the child for real.
"""

from __future__ import annotations

import functools
import os
import pwd
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import torch

from . import wire
from .outcomes import ForbiddenCall, NotImplementedInSubmission, SubmissionBroken, SubmissionCrashed

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MEMORY_LIMIT_BYTES = int(os.environ.get("LMGRADE_CHILD_MEMORY_GB", "4")) << 30
OUTPUT_KEEP_BYTES = 64 << 10

# True while a fresh child imports torch: that time is not the submission's (see pytest_plugin).
starting = False

_BOOTSTRAP = f"import sys; sys.path.insert(0, {str(PROJECT_ROOT)!r}); from lmgrade.child import main; main()"


# Built-in exceptions a test may expect from the submission; others arrive as SubmissionError.
_REBUILT_EXCEPTIONS = {e.__name__: e for e in (ValueError, TypeError, IndexError, KeyError, RuntimeError,
                                               ZeroDivisionError, OverflowError, MemoryError, AttributeError)}


class SubmissionError(Exception):
    """The submission raised an exception; its type and message come as text."""


INSTRUCTOR_DIRS = [PROJECT_ROOT / "lmgrade" / "bugs"]  # inside a visible directory, hidden all the same
SANDBOX_SCRIPT = Path(__file__).resolve().parent / "sandbox.sh"


@functools.lru_cache(maxsize=None)
def isolation_mode() -> str:
    """How strongly the child is confined here, strongest first.

    - "sandbox": fresh mount and PID namespaces, read-only file systems, the reference hidden
      (needs root and namespaces: CI, a root container with CAP_SYS_ADMIN).
    - "unprivileged": the child runs as `nobody` (root, no namespaces, Python readable by all).
    - "process": a separate process with resource limits and the reference's import blocked.
    """
    if os.geteuid() != 0:
        return "process"
    if shutil.which("unshare"):
        probe = subprocess.run(["unshare", "-m", "-p", "-f", "--mount-proc", "--propagation", "private", "sh", "-c",
                                "mount -t tmpfs none /mnt && umount /mnt"], capture_output=True)
        if probe.returncode == 0:
            return "sandbox"
    probe = subprocess.run([sys.executable, "-c", "pass"], preexec_fn=_become_nobody, capture_output=True)
    return "unprivileged" if probe.returncode == 0 else "process"


def _become_nobody() -> None:
    nobody = pwd.getpwnam("nobody")
    os.setgroups([])
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)


def _limits(mode: str):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.setsid()
        if mode == "unprivileged":
            _become_nobody()

    return apply


class _Drain(threading.Thread):
    """Reads the child's stdout/stderr to the end; keeps the first OUTPUT_KEEP_BYTES."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.kept, self.total = stream, bytearray(), 0

    def run(self):
        for chunk in iter(lambda: self.stream.read1(1 << 16), b""):
            self.total += len(chunk)
            if len(self.kept) < OUTPUT_KEEP_BYTES:
                self.kept += chunk[: OUTPUT_KEEP_BYTES - len(self.kept)]

    def tail(self) -> str:
        text = self.kept.decode(errors="replace")[-1500:]
        cut = f"\n[{self.total - len(self.kept)} more bytes of output dropped]" if self.total > len(self.kept) else ""
        return text + cut


class ChildBackend:
    """Answers `getattr(backend, "run_linear")(...)` by asking the child process."""

    def __init__(self, impl: str | None = "student", adapters: str | None = None, submission: str | None = None):
        # The child works on its own copy of the submission, in a directory it may read.
        self.workdir = tempfile.mkdtemp(prefix="lmgrade-child-")
        self.scratch = os.path.join(self.workdir, "scratch")
        os.makedirs(self.scratch)
        if adapters:
            adapters = shutil.copy(adapters, os.path.join(self.workdir, Path(adapters).name))
        if submission:
            shutil.copytree(Path(submission) / "student", os.path.join(self.workdir, "submission", "student"),
                            ignore=shutil.ignore_patterns("__pycache__"))
            submission = os.path.join(self.workdir, "submission")
        for root, dirs, files in os.walk(self.workdir):
            os.chmod(root, 0o755)
        os.chmod(self.scratch, 0o777)
        self.selection = {"impl": impl, "adapters": adapters, "submission": submission}
        self.description = f"{adapters or submission or impl} (in a child process)"
        self.proc: subprocess.Popen | None = None
        self.current_item: str | None = None
        self.count_flops, self.last_flops = False, 0  # FLOPs are counted where the submission runs

    # -- process ------------------------------------------------------------------------

    def _start(self) -> None:
        mode = isolation_mode()
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        command = [sys.executable, "-I", "-c", _BOOTSTRAP, "--request-fd", str(request_r), "--reply-fd", str(reply_w)]
        for key, value in self.selection.items():
            if value:
                command += [f"--{key}", value]
        if mode == "sandbox":
            command = ["unshare", "-m", "-p", "-f", "--mount-proc", "--propagation", "private", "--kill-child",
                       "sh", str(SANDBOX_SCRIPT), self.scratch, ":".join(self._visible()),
                       ":".join(str(d) for d in INSTRUCTOR_DIRS), "--", *command]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.scratch, "OMP_NUM_THREADS": "1",
               "PYTHONDONTWRITEBYTECODE": "1"}
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     pass_fds=(request_r, reply_w), cwd=self.scratch, env=env, preexec_fn=_limits(mode))
        os.close(request_r)
        os.close(reply_w)
        self.request_fd, self.reply_fd = request_w, reply_r
        self.drain = _Drain(self.proc.stdout)
        self.drain.start()
        global starting
        starting = True
        try:
            header, _ = wire.receive(self.reply_fd)  # the child is ready once torch is imported
        except EOFError:
            raise self._died() from None
        finally:
            starting = False

    def _visible(self) -> list[str]:
        """What the sandboxed child may see: Python, its packages, the grader's child side, the submission."""
        paths = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable)), self.workdir,
                 str(PROJECT_ROOT / "adapters"), str(PROJECT_ROOT / "lmgrade")}
        paths.update(p for p in sys.path if p and os.path.isdir(p) and not p.startswith(str(PROJECT_ROOT)))
        if self.selection["impl"] in ("student", "reference") and not (self.selection["adapters"] or self.selection["submission"]):
            paths.add(str(PROJECT_ROOT / self.selection["impl"]))
        return sorted(paths)

    def shutdown(self) -> None:
        self.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            for fd in (self.request_fd, self.reply_fd):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self.proc = None

    def _died(self) -> SubmissionCrashed:
        self.proc.wait()
        code = self.proc.returncode
        # Under the sandbox's shell a signal shows as status 128 + signal number.
        signum = -code if code < 0 else code - 128 if code > 128 else None
        names = {int(sig): sig.name for sig in signal.Signals}
        how = f"was killed by signal {names[signum]}" if signum in names else f"exited with status {code}"
        hint = " (the memory limit, or os._exit/sys.exit in your code?)"
        tail = self.drain.tail()
        self.close()
        return SubmissionCrashed(f"your code's process {how}{hint}" + (f"\nits last output:\n{tail}" if tail.strip() else ""))

    def _exchange(self, header: dict, tensors: dict | None):
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                self.close()
            self._start()
        try:
            wire.send(self.request_fd, header, tensors)
            while not select.select([self.reply_fd], [], [], 1.0)[0]:
                if self.proc.poll() is not None:
                    raise EOFError
            return wire.receive(self.reply_fd)
        except (EOFError, BrokenPipeError):
            raise self._died() from None
        except BaseException:  # a timeout or an interrupt in the grading process: the child is in an unknown state
            self.close()
            raise

    # -- calls ----------------------------------------------------------------------------

    def _raise_for(self, reply: dict):
        kind, message = reply.get("kind"), reply.get("message", "")
        if kind == "not_implemented":
            raise NotImplementedInSubmission(message)
        if kind == "import":
            raise SubmissionBroken(message)
        if kind == "forbidden":
            raise ForbiddenCall(message)
        detail = reply.get("traceback", "")
        kind = reply.get("type", "Error")
        text = f"{kind}: {message}" + (f"\n{detail}" if detail else "")
        if kind in _REBUILT_EXCEPTIONS:  # the test may expect it, e.g. pytest.raises(ValueError)
            raise _REBUILT_EXCEPTIONS[kind](text)
        raise SubmissionError(text)

    def call(self, name: str, *args):
        grad = torch.is_grad_enabled() and any(
            isinstance(t, torch.Tensor) and t.requires_grad for t in _tensors_in(args))
        skeleton, tensors = wire.encode(list(args))
        header = {"op": "call", "fn": name, "args": skeleton, "grad": grad, "item": self.current_item,
                  "count_flops": self.count_flops}
        reply, out = self._exchange(header, tensors)
        self.last_flops = reply.get("flops", 0)
        if not reply["ok"]:
            self._raise_for(reply)
        device = next((t.device for t in _tensors_in(args)), torch.device("cpu"))
        output = wire.decode(reply["output"], out, lambda t, meta: t.to(device))
        if reply["handle"] is None:
            return output
        grad_inputs = [t for t in _tensors_in(args) if t.requires_grad]
        return _RemoteGraph.apply(self, reply["handle"], output, *grad_inputs)

    def backward(self, handle: int, cotangent: torch.Tensor) -> list[torch.Tensor | None]:
        reply, tensors = self._exchange({"op": "backward", "handle": handle}, {"cotangent": cotangent.detach().cpu().contiguous()})
        if not reply["ok"]:
            self._raise_for(reply)
        # The child names each gradient by its input's position; missing ones (unused inputs) are None.
        grads = [tensors[f"g{i}"] if present else None for i, present in enumerate(reply["present"])]
        return grads

    def __getattr__(self, name: str):
        if not name.startswith("run_"):
            raise AttributeError(name)
        return lambda *args: self.call(name, *args)


def _tensors_in(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors_in(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors_in(v)]
    return []


class _RemoteGraph(torch.autograd.Function):
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
