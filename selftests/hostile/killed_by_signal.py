"""softmax aborts its own process (SIGABRT); grading goes on with a fresh child."""
import os


def run_linear(d_in, d_out, weights, in_features):
    return in_features @ weights.T


def run_softmax(in_features, dim):
    os.abort()
