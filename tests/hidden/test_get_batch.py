"""get_batch on drawn sizes and seeds: every row a real window, targets shifted, starts in range."""

import torch
from hypothesis import given
from hypothesis import strategies as st

from ..strategies import seeds
from ..test_get_batch import distinct_tokens, sample, starts_of, diagnosed_batch

drawn_sizes = st.sampled_from([(9, 1, 8), (33, 4, 16), (64, 7, 12), (300, 2, 32), (1000, 16, 5)])


@given(size=drawn_sizes, seed=seeds)
def test_get_batch_windows_on_drawn_sizes(impl, oracle, size, seed):
    num_tokens, batch_size, context_length = size
    dataset = distinct_tokens(num_tokens)
    batch = sample(impl, num_tokens, batch_size, context_length, seed)
    with diagnosed_batch(oracle, batch, num_tokens, batch_size, context_length, seed):
        inputs, targets = batch["inputs"].cpu(), batch["targets"].cpu()
        assert inputs.shape == targets.shape == (batch_size, context_length)
        assert inputs.dtype == targets.dtype == torch.int64
        for b, s in enumerate(starts_of(batch).tolist()):
            assert 0 <= s <= num_tokens - context_length - 1, f"row {b} starts at {s}, outside 0 … {num_tokens - context_length - 1}"
            assert torch.equal(inputs[b], dataset[s:s + context_length]), f"row {b} of inputs is not a window of the dataset"
            assert torch.equal(targets[b], dataset[s + 1:s + context_length + 1]), (
                f"row {b} of targets is not the window shifted by one")


@given(seed=seeds)
def test_get_batch_reaches_both_ends_when_there_are_two_starts(impl, oracle, seed):
    """9 tokens, context 7: the starts are 0 and 1 only; 64 rows draw both (a uniform sampler misses
    one with probability 2⁻⁶³)."""
    batch = sample(impl, 9, 64, 7, seed)
    with diagnosed_batch(oracle, batch, 9, 64, 7, seed):
        assert set(starts_of(batch).tolist()) == {0, 1}, f"starts drawn: {sorted(set(starts_of(batch).tolist()))}; expected {{0, 1}}"
