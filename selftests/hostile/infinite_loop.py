"""softmax never returns: the softmax item times out, linear is graded as usual."""


def run_linear(d_in, d_out, weights, in_features):
    return in_features @ weights.T


def run_softmax(in_features, dim):
    while True:
        pass
