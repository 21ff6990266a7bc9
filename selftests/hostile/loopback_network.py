"""Connects to a server on the grader's loopback interface (port given as `dim`). Returns 1 if it could (tier 1: 0)."""
import socket


def run_softmax(in_features, dim):
    import torch

    try:
        with socket.create_connection(("127.0.0.1", int(dim)), timeout=2) as s:
            s.sendall(b"hello from the sandbox")
        return torch.tensor([1.0])
    except OSError:
        return torch.tensor([0.0])
