"""Leaves a file in /dev/shm and /tmp; a later child finds it (state carried between items or classmates).
Returns 1 if a marker left by an earlier child is still there (a sound grader: 0)."""
import os

MARKERS = ("/dev/shm/lmgrade-hostile-marker", "/tmp/lmgrade-hostile-marker", "/var/tmp/lmgrade-hostile-marker")


def run_softmax(in_features, dim):
    import torch

    seen = any(os.path.exists(m) for m in MARKERS)
    for marker in MARKERS:
        try:
            with open(marker, "w") as f:
                f.write("state")
        except OSError:
            pass
    return torch.tensor([float(seen)])
