"""softmax sends itself SIGKILL; grading goes on with a fresh child."""
import os
import signal


def run_linear(d_in, d_out, weights, in_features):
    return in_features @ weights.T


def run_softmax(in_features, dim):
    os.kill(os.getpid(), signal.SIGKILL)
