"""A warm pytest: the suite's imports done once, every grading run in a fork of a warm process.

A grading run is `python -m pytest <args>` in a fresh process, and starting one costs seconds
before the first test: importing torch, hypothesis, the grader and the test modules. Where one
process grades many times (the self-check grades every catalogued bug, the grader's own tests
grade dozens of submissions), `WarmPytest` starts a server process that imports all of that
once, by collecting the suite; for each run the server forks, and the fork runs `pytest.main`
with the arguments, environment and working folder the subprocess would have had, in a session
of its own (a timeout kills everything it started). A run cannot reach the next one: each is a
fresh copy of the server, which itself runs no test and no torch operation (so it has no
thread that a fork would lose).

One server answers one run at a time; a caller that grades in parallel holds one per worker.

What the suite reads from the environment when it is imported is fixed in the server: the
Hypothesis profile (a test's own @settings inherit the profile loaded when it is defined) and
the child's memory limit. A run whose environment asks for other values of these gets a new
process instead (`subprocess_pytest`), so it is graded exactly as it would be without the server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# (pytest arguments, environment, working folder, timeout) -> (exit status or -9, output, the run's pid)
Runner = Callable[[list[str], dict[str, str], Path, float], tuple[int, str, int]]

# Environment variables the suite reads when it is imported (see the module's docstring).
READ_AT_IMPORT = ("LMGRADE_PROFILE", "LMGRADE_CHILD_MEMORY_GB")


def with_bytecode(env: dict[str, str]) -> dict[str, str]:
    """`env` for a grader pytest process, which keeps its compiled modules as Python does by default.

    A grading imports the grader and about 170 test and support modules, and pytest rewrites the
    asserts of every test module; with PYTHONDONTWRITEBYTECODE (which some machines set) each run
    compiles all of it again: about 2 of the 4.5 seconds before the first test. Their .pyc files go
    in __pycache__ beside the grader's sources, which the handout, the bundle and the intake of a
    submission all leave out. The submission's child builds its own environment and writes none.
    """
    env = dict(env)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


_running: set[subprocess.Popen] = set()  # subprocess_pytest's runs still going, in any thread


def stop_subprocess_pytests() -> None:
    """Kill every run of subprocess_pytest still going. Each is in a session of its own, so an interrupt
    of this process never reaches them; a run in another thread would otherwise outlive the grading."""
    for proc in list(_running):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def subprocess_pytest(args: list[str], env: dict[str, str], cwd: Path, timeout: float) -> tuple[int, str, int]:
    """`python -m pytest args` in a new process and session: (exit status, output, pid); -9 when killed at timeout."""
    proc = subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    _running.add(proc)
    try:
        log, _ = proc.communicate(timeout=timeout)
        return proc.returncode, log, proc.pid
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        log, _ = proc.communicate()
        return -9, log or "", proc.pid
    finally:
        _running.discard(proc)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class WarmPytest:
    """The client of one warm server (see the module's docstring); a `Runner` for lmgrade.grading.grade."""

    def __init__(self, profile: str, project_root: Path = PROJECT_ROOT):
        """profile: the Hypothesis profile of the runs it will serve (runs with another one start anew)."""
        self.project_root = Path(project_root)
        self.lock = threading.Lock()
        self.env = with_bytecode(dict(os.environ, LMGRADE_PROFILE=profile))
        self.server = subprocess.Popen([sys.executable, "-m", "lmgrade.grading.warm", str(self.project_root)],
                                       cwd=self.project_root, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       text=True, env=self.env)
        ready = json.loads(self.server.stdout.readline() or '{"error": "the warm server exited"}')
        if "error" in ready:
            self.close()
            raise RuntimeError(f"the warm pytest could not start: {ready['error']}")

    def __call__(self, args: list[str], env: dict[str, str], cwd: Path, timeout: float) -> tuple[int, str, int]:
        if any(env.get(name) != self.env.get(name) for name in READ_AT_IMPORT):
            return subprocess_pytest(args, env, cwd, timeout)
        with self.lock, tempfile.NamedTemporaryFile(prefix="lmgrade-warm-", suffix=".log") as log:
            request = {"args": list(args), "env": dict(env), "cwd": str(cwd), "timeout": timeout, "log": log.name}
            self.server.stdin.write(json.dumps(request) + "\n")
            self.server.stdin.flush()
            line = self.server.stdout.readline()
            if not line:
                raise RuntimeError("the warm pytest server exited")
            reply = json.loads(line)
            return reply["status"], Path(log.name).read_text(errors="replace"), reply["pid"]

    def close(self) -> None:
        if self.server.poll() is None:
            self.server.kill()
        self.server.wait()

    def __enter__(self) -> WarmPytest:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- the server ---------------------------------------------------------------------------------


def _serve(project_root: Path) -> None:
    replies = sys.stdout
    os.chdir(project_root)
    # Collecting the whole suite imports everything the runs need, the way pytest does (assertions
    # rewritten, the plugin configured first); its output is not the protocol's.
    with open(os.devnull, "w") as quiet:
        sys.stdout = quiet
        try:
            import pytest

            status = int(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "tests"]))
        finally:
            sys.stdout = replies
    if status != 0:
        print(json.dumps({"error": f"the suite could not be collected (pytest exit {status})"}), flush=True)
        return
    # The suite's modules are compiled now (see with_bytecode); what is imported from here on
    # (catalogue variants, submissions, in temporary folders) is not worth a .pyc file.
    sys.dont_write_bytecode = True
    # Imported by torch.optim.AdamW's step (the oracle of the AdamW tests) on first use, in every fork
    # that runs those tests otherwise: about 1.1 s. Only the import: the server still runs no torch operation.
    import torch._dynamo  # noqa: F401

    _load_the_catalogue()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        with open(request["log"], "wb") as log:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the forked run
                _run(request, log)
        print(json.dumps({"status": _wait(pid, float(request["timeout"])), "pid": pid}), flush=True)


def _load_the_catalogue() -> None:
    """Where the bug catalogue is installed (instructors), its variants written out and imported now,
    so that a run's diagnosis finds them ready."""
    try:
        from lmgrade.catalogue.bugs import BUGS
        from lmgrade.catalogue.diagnosis import bound_variant
    except ImportError:
        return
    for bug in BUGS:
        bound_variant(bug)


def _run(request: dict, log) -> None:
    status = 70
    try:
        os.setsid()
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # the request pipe stays the server's
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        import pytest

        status = int(pytest.main([*request["args"], "-W", "ignore::pytest.PytestAssertRewriteWarning"]))
    except BaseException:  # noqa: BLE001 - reported through the exit status and the log
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _wait(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            return -9
        time.sleep(0.02)


if __name__ == "__main__":
    _serve(Path(sys.argv[1]))
