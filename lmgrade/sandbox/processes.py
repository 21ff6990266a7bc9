"""The child's whole process tree, by uid: throw-away uids, what they run, their memory, their end.

Every child backend gets a uid of its own (tier 2 runs as it; tier 1 starts bwrap as it), so
"everything the submission started" is "every process of that uid", whatever session or
process group it moved to.
"""

from __future__ import annotations

import os
import shutil
import signal
import time

UID_BASE = 2_000_000_000  # throw-away uids: UID_BASE + the grading process's pid (unique while it runs)

UIDS_PER_PROCESS = 16
_uid_counter = [0]


def throwaway_uid() -> int:
    """A uid of its own for each child backend: UID_BASE + pid * 16 + a counter (unique while the process lives)."""
    _uid_counter[0] += 1
    return UID_BASE + os.getpid() * UIDS_PER_PROCESS + _uid_counter[0] % UIDS_PER_PROCESS


def uids_of_process(pid: int) -> range:
    return range(UID_BASE + pid * UIDS_PER_PROCESS, UID_BASE + (pid + 1) * UIDS_PER_PROCESS)


def processes_of(uid: int) -> list[int]:
    """Live processes of uid (zombies, already dead and waiting to be reaped, left out)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid != uid:
                    continue
                with open(f"/proc/{name}/stat", "rb") as f:
                    state = f.read().rsplit(b")", 1)[1].split()[0]
                if state not in (b"Z", b"X"):
                    found.append(int(name))
            except (OSError, IndexError):
                pass
    return found


def tree_rss(uid: int) -> int:
    """Resident bytes of every process of uid (a forking child cannot multiply its memory limit)."""
    total = 0
    for pid in processes_of(uid):
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            pass
    return total


def reset_peak_rss(pids: list[int]) -> None:
    """Set each process's peak resident size (VmHWM) back to its current size (clear_refs 5)."""
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass


def peak_rss(pids: list[int]) -> int:
    """The sum of the processes' peak resident sizes (VmHWM), in bytes, read by the kernel's count."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) << 10
        except (OSError, ValueError, IndexError, StopIteration):
            pass
    return total


def peak_growth_here(call) -> tuple[int, Exception | None]:
    """How far call() raises this process's peak resident memory (bytes), and its error if any."""
    pid = [os.getpid()]
    reset_peak_rss(pid)
    before = peak_rss(pid)
    try:
        call()
    except Exception as error:  # noqa: BLE001 - the caller decides what the error means
        return peak_rss(pid) - before, error
    return peak_rss(pid) - before, None


def kill_uid(uid: int) -> None:
    """SIGKILL every process of uid (root only): a helper becomes uid and signals -1."""
    if os.geteuid() != 0:
        return
    for attempt in range(20):  # a fork bomb may fork while it is being killed: again until none is left
        if not processes_of(uid):
            return
        if attempt:
            time.sleep(0.05)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the forked helper
            try:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)


def remove_files_of(uid: int, places: tuple[str, ...] = ("/dev/shm", "/tmp", "/var/tmp")) -> None:
    """Tier 2: what the uid left in the shared temporary folders goes too."""
    for place in places:
        try:
            entries = os.listdir(place)
        except OSError:
            continue
        for name in entries:
            path = os.path.join(place, name)
            try:
                if os.lstat(path).st_uid != uid:
                    continue
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
            except OSError:
                pass
