"""softmax asks for ~400 GB: it fails on the memory limit; linear is graded as usual."""
import torch


def run_linear(d_in, d_out, weights, in_features):
    return in_features @ weights.T


def run_softmax(in_features, dim):
    hog = torch.ones(100_000_000_000, dtype=torch.float32)
    return hog[: in_features.numel()].reshape(in_features.shape)
