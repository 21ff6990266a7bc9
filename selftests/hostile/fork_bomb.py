"""Forks as many sleeping processes as it can (up to 2000). Returns how many it made: bounded by the process limit,
and all of them are gone once the child is closed."""
import os
import time


def run_softmax(in_features, dim):
    import torch

    made = 0
    for _ in range(2000):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            os.setsid()  # leave the process group: only killing by uid or namespace catches it
            time.sleep(600)
            os._exit(0)
        made += 1
    return torch.tensor([float(made)])
