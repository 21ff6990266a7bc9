"""Prints 100 MB from linear (which is otherwise correct): the output is capped, the score is not affected."""
import sys


def run_linear(d_in, d_out, weights, in_features):
    chunk = "x" * (1 << 20)
    for _ in range(100):
        sys.stdout.write(chunk)
    sys.stdout.flush()
    return in_features @ weights.T
