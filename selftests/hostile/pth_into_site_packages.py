"""Drops a .pth file into every folder on sys.path and the site-packages: the grader's Python would run it. Returns successes (0)."""
import os
import site
import sys


def run_softmax(in_features, dim):
    import torch

    places = set(sys.path) | set(site.getsitepackages()) | {os.path.dirname(os.__file__)}
    written = 0
    for place in places:
        path = os.path.join(place or ".", "zz_lmgrade_hostile.pth")
        try:
            with open(path, "w") as f:
                f.write("import os; os.environ['LMGRADE_PWNED'] = '1'\n")
            written += 1
            os.unlink(path)
        except OSError:
            pass
    return torch.tensor([float(written)])
