"""The grading process's side of the boundary: a backend whose adapters run in a child process.

The grading process never imports the submission. Each adapter call ships plain values and
tensors (lmgrade.sandbox.wire) to lmgrade.sandbox.child and gets plain tensors back. Gradients cross too:
the output carries an autograd node whose backward asks the child for the vector-Jacobian
product, so the tests differentiate through the boundary as if it were not there.

Confinement (lmgrade.sandbox.tiers): the child runs in bubblewrap (tier 1) or as a throw-away uid
(tier 2), from a private, intake-checked copy of the submission and a staged copy of the
grader's child-side code; nothing else of the grader is visible to it. Its output is
drained and capped, its replies are size- and depth-limited before they are parsed, and the
memory of all its processes together is watched from here. If it dies (crash, sys.exit,
os._exit, a signal, a limit) the call in flight fails with `SubmissionCrashed` and the next
call starts a fresh child. A timeout in the grading process (SIGALRM) interrupts the wait
and kills the child and everything it started.

What the child reports and could forge is not trusted alone: forbidden calls are also found
by a static scan done here (lmgrade.sandbox.static_scan), and the child's run-time detector and FLOP
counter must pass a canary on every call (see lmgrade.sandbox.child).
"""

from __future__ import annotations

import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from lmgrade.sandbox import intake, processes, replies, staging, static_scan, tiers, wire
from lmgrade.core.outcomes import ForbiddenCall, SubmissionCrashed
from lmgrade.sandbox.remote_graph import RemoteGraph, tensors_in

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MEMORY_LIMIT_BYTES = tiers.MEMORY_LIMIT_BYTES
REPLY_HEADER_BYTES = 8 << 20  # a reply's JSON part; tensors travel apart
REPLY_DEPTH = 32

# True while a fresh child imports torch: that time is not the submission's (see pytest_plugin).
starting = False


def _bootstrap(runtime: str) -> str:
    return f"import sys; sys.path.insert(0, {runtime!r}); from lmgrade.sandbox.child import main; main()"


def isolation_mode() -> str:
    """The sandbox tier the child gets here: "bwrap" (tier 1), "uid" (tier 2) or "none". Never raises."""
    return tiers.detect().name


def isolation_tier() -> tiers.Tier:
    return tiers.detect()


class ChildBackend:
    """Answers `getattr(backend, "run_linear")(...)` by asking the child process."""

    def __init__(self, impl: str | None = "student", adapters: str | None = None, submission: str | None = None,
                 cpu_seconds: int = 3600):
        self.tier = tiers.detect()
        self.trusted = not (adapters or submission)  # the bundled student/reference packages
        if self.tier.name == "none" and not self.trusted and os.environ.get(tiers.ENV, "").lower() != "none":
            raise tiers.SandboxUnavailable(
                f"{self.tier.detail}. Untrusted code is not run without a sandbox; --no-sandbox grades it anyway")
        self.uid = processes.throwaway_uid() if self.tier.as_uid else None
        self.cpu_seconds = cpu_seconds
        # Everything the child may read lives here: a staged runtime and its own copy of the submission.
        self.workdir = tempfile.mkdtemp(prefix="lmgrade-child-")
        work = Path(self.workdir)
        trusted_package = impl if self.trusted and impl in ("student", "reference") else None
        staging.stage_runtime(work / "runtime", trusted_package)
        selection = {"impl": impl, "adapters": None, "submission": None}
        if adapters:
            selection["adapters"] = str(intake.take_in_adapters(Path(adapters), work / "submission" / Path(adapters).name))
        if submission:
            selection["submission"] = str(intake.take_in_submission(Path(submission), work / "submission"))
        staging.own_for_child(work, self.uid)
        self.scratch = work / "scratch"  # tier 2 and no sandbox: the child's writable folder
        self.scratch.mkdir(mode=0o700)
        if self.uid is not None and self.tier.name == "uid":
            os.chown(self.scratch, self.uid, self.uid)
        if self.tier.name == "uid":
            staging.protect_grader_files()
        self.selection = selection
        self.description = f"{adapters or submission or impl} (in a child process, {self.tier.label})"
        self.proc: subprocess.Popen | None = None
        self.ready_pending = False  # started, and its "ready" not read yet
        self.current_item: str | None = None
        self.count_flops, self.last_flops = False, 0  # FLOPs are counted where the submission runs
        self.measure_peak, self.last_peak_growth = False, 0  # peak memory of a call, measured from outside
        # Static scan of what the child will import, done here, where the submission cannot reach.
        scanned = selection["adapters"] or selection["submission"] or (
            str(work / "runtime" / impl) if impl == "student" else None)
        self._scan_verdicts: dict = {}
        self.scan = static_scan.scan_path(scanned, adapters_file=bool(selection["adapters"])) if scanned else None

    # -- process ------------------------------------------------------------------------

    def prestart(self) -> None:
        """Start the child now (its imports overlap with the caller's own work); the first call waits for it."""
        if self.proc is None:
            self._spawn()

    def _start(self) -> None:
        self._spawn()
        self._await_ready()

    def _spawn(self) -> None:
        runtime = str(Path(self.workdir) / "runtime")
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        command = [sys.executable, "-I", "-c", _bootstrap(runtime), "--request-fd", str(request_r),
                   "--reply-fd", str(reply_w)]
        for key, value in self.selection.items():
            if value:
                command += [f"--{key}", value]
        home = str(self.scratch)
        cwd = home
        if self.tier.name == "bwrap":
            home = cwd_inside = "/tmp/work"
            command = tiers.bwrap_command(command, [*tiers.python_paths(), self.workdir], cwd_inside)
            cwd = self.workdir
        env = {"PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": home, "OMP_NUM_THREADS": "1",
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1"}
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     pass_fds=(request_r, reply_w), cwd=cwd, env=env,
                                     preexec_fn=tiers.preexec(self.tier.name, self.uid, self.cpu_seconds))
        os.close(request_r)
        os.close(reply_w)
        self.request_fd, self.reply_fd = request_w, reply_r
        self.drain = replies.OutputDrain(self.proc.stdout)
        self.drain.start()
        self.ready_pending = True

    def _await_ready(self) -> None:
        global starting
        starting = True
        try:
            header, _ = self._receive()  # the child is ready once torch is imported
        except EOFError:
            raise self._died() from None
        finally:
            starting = False
        self.ready_pending = False

    def _receive(self):
        return wire.receive(self.reply_fd, max_header=REPLY_HEADER_BYTES, max_depth=REPLY_DEPTH)

    def shutdown(self) -> None:
        self.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def close(self) -> None:
        self.ready_pending = False
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait()
            for fd in (self.request_fd, self.reply_fd):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self.proc = None
        if self.uid is not None:  # whatever it started, in another session or not: gone
            processes.kill_uid(self.uid)
            if self.tier.name == "uid":
                processes.remove_files_of(self.uid)

    def _died(self, why: str | None = None) -> SubmissionCrashed:
        self.proc.wait()
        code = self.proc.returncode
        # Under a wrapper a signal shows as status 128 + signal number.
        signum = -code if code < 0 else code - 128 if code > 128 else None
        names = {int(sig): sig.name for sig in signal.Signals}
        how = why or (f"was killed by signal {names[signum]}" if signum in names else f"exited with status {code}")
        hint = "" if why else " (the memory limit, or os._exit/sys.exit in your code?)"
        tail = self.drain.tail()
        self.close()
        return SubmissionCrashed(f"your code's process {how}{hint}" + (f"\nits last output:\n{tail}" if tail.strip() else ""))

    def _over_memory(self) -> bool:
        return self.uid is not None and processes.tree_rss(self.uid) > MEMORY_LIMIT_BYTES

    def _ensure_running(self) -> None:
        if self.proc is None or (self.proc.poll() is not None and not self.ready_pending):
            if self.proc is not None:
                self.close()
            self._start()
        elif self.ready_pending:  # started early (prestart), or dead before it said it was ready
            self._await_ready()

    def _pids(self) -> list[int]:
        return processes.processes_of(self.uid) if self.uid is not None else [self.proc.pid]

    def _exchange(self, header: dict, tensors: dict | None):
        self._ensure_running()
        try:
            wire.send(self.request_fd, header, tensors)
            while not select.select([self.reply_fd], [], [], 0.25)[0]:
                if self.proc.poll() is not None:
                    raise EOFError
                if self._over_memory():
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    processes.kill_uid(self.uid)
                    raise self._died(f"used more than {MEMORY_LIMIT_BYTES >> 30} GiB in all its processes together "
                                     "and was stopped")
            return self._receive()
        except (EOFError, BrokenPipeError):
            raise self._died() from None
        except wire.ProtocolError as error:  # an oversized or malformed reply: the child is not trusted further
            self.close()
            raise SubmissionCrashed(f"your code's process sent an invalid reply ({error})") from None
        except BaseException:  # a timeout or an interrupt in the grading process: the child is in an unknown state
            self.close()
            raise

    # -- calls ----------------------------------------------------------------------------

    def _static_check(self, name: str) -> None:
        if self.scan is None:
            return
        from lmgrade.sandbox.policy import forbidden_for

        key = (name, self.current_item)
        if key not in self._scan_verdicts:
            self._scan_verdicts[key] = self.scan.violations(name, forbidden_for(self.current_item))
        found = self._scan_verdicts[key]
        if found:
            # One that cannot be imported (its package not beside its adapters: unseen by the scan) hears that first.
            reply, _ = self._exchange({"op": "status"}, None)
            if not reply.get("ok"):
                replies.raise_for(reply, self.current_item)
            where = f" (forbidden in item {self.current_item})" if self.current_item else ""
            raise ForbiddenCall(f"forbidden torch function or unsafe code{where}, found by the grader's scan of your files: "
                                + "; ".join(found[:5]))

    def drive(self, name: str, *args):
        """A driven adapter (adapters/drivers.py): its driver runs in the child, beside the submission."""
        from adapters.drivers import DRIVEN_ON

        for function in DRIVEN_ON[name]:
            self._static_check(function)
        return self.call(name, *args, driven=True)

    def call(self, name: str, *args, driven: bool = False):
        if not driven:
            self._static_check(name)
        grad = torch.is_grad_enabled() and any(
            isinstance(t, torch.Tensor) and t.requires_grad for t in tensors_in(args))
        skeleton, tensors = wire.encode(list(args))
        canary = [random.randint(2, 9), random.randint(2, 9), random.randint(2, 9)]
        header = {"op": "call", "fn": name, "args": skeleton, "grad": grad, "item": self.current_item,
                  "count_flops": self.count_flops, "canary": canary, "driven": driven}
        if self.measure_peak:  # measured here, by the kernel's count: nothing the child does can change it
            self._ensure_running()
            processes.reset_peak_rss(self._pids())
            before = processes.peak_rss(self._pids())
        reply, out = self._exchange(header, tensors)
        if self.measure_peak:
            self.last_peak_growth = processes.peak_rss(self._pids()) - before
        self.last_flops = 0
        self.last_flops = replies.check_canaries(reply, canary, self.count_flops)
        if not reply.get("ok"):
            replies.raise_for(reply, self.current_item)
        device = next((t.device for t in tensors_in(args)), torch.device("cpu"))
        try:
            output = wire.decode(reply["output"], out, lambda t, meta: t.to(device))
        except (KeyError, TypeError, ValueError):
            raise SubmissionCrashed("your code's process sent an invalid reply") from None
        if reply.get("handle") is None:
            return output
        grad_inputs = [t for t in tensors_in(args) if t.requires_grad]
        return RemoteGraph.apply(self, int(reply["handle"]), output, *grad_inputs)

    def backward(self, handle: int, cotangent: torch.Tensor) -> list[torch.Tensor | None]:
        reply, tensors = self._exchange({"op": "backward", "handle": handle}, {"cotangent": cotangent.detach().cpu().contiguous()})
        if not reply.get("ok"):
            replies.raise_for(reply, self.current_item)
        # The child names each gradient by its input's position; missing ones (unused inputs) are None.
        present = reply.get("present")
        if not isinstance(present, list) or any(p and f"g{i}" not in tensors for i, p in enumerate(present)):
            raise SubmissionCrashed("your code's process sent an invalid reply (gradients missing)")
        grads = [tensors[f"g{i}"] if p else None for i, p in enumerate(present)]
        return grads

    def __getattr__(self, name: str):
        if not name.startswith("run_"):
            raise AttributeError(name)
        return lambda *args: self.call(name, *args)
