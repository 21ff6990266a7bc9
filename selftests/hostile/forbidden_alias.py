"""Uses torch's own softmax under another name: detected as a forbidden call at its call site."""
from torch.nn.functional import softmax as normalise_rows


def run_linear(d_in, d_out, weights, in_features):
    return in_features @ weights.T


def run_softmax(in_features, dim):
    return normalise_rows(in_features, dim=dim)
