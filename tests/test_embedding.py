"""Embedding: row lookup in a (vocab_size, d_model) table."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from .checks import assert_unchanged, check_against_reference, on
from .strategies import layouts, leading_dims, model_dims, randint, randn, seeds

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "An Embedding failure is usually a lookup that is scaled, or that reads weight.data, so no gradient "
    "reaches the table."
    "\n"
    "Ask yourself: is your output exactly the table's rows, and does a gradient flow back to the table?"
)


def embedding_args(lead, vocab_size, d_model, seed):
    return dict(
        vocab_size=vocab_size,
        d_model=d_model,
        weights=randn((vocab_size, d_model), seed),
        token_ids=randint(vocab_size, lead, seed + 1),
    )


FIXED = [((2, 7), 11, 8, 0), ((5,), 3, 16, 1), ((2, 3, 4), 50, 24, 2)]


@given(lead=leading_dims, vocab=st.sampled_from([3, 50]), d_model=model_dims, layout=layouts, seed=seeds)
def test_embedding_output_is_ids_shape_then_d_model_in_table_dtype(impl, device, lead, vocab, d_model, layout, seed):
    out = impl.run_embedding(**on(embedding_args(lead, vocab, d_model, seed), device=device, layout=layout))
    assert out.shape == (*lead, d_model) and out.dtype == torch.float32 and out.device.type == device.type


@given(vocab=st.sampled_from([3, 50]), d_model=model_dims, seed=seeds)
def test_embedding_row_i_is_table_row_i(impl, vocab, d_model, seed):
    args = on(embedding_args((vocab,), vocab, d_model, seed))
    args["token_ids"] = torch.arange(vocab)
    assert_unchanged(impl.run_embedding(**args), args["weights"], "embedding of ids 0..vocab-1 vs the table itself", component="embedding")


@pytest.mark.parametrize("lead, vocab, d_model, seed", FIXED)
def test_embedding_matches_reference_on_fixed_cases(impl, oracle, device, lead, vocab, d_model, seed):
    args = embedding_args(lead, vocab, d_model, seed)
    check_against_reference(impl, oracle, "run_embedding", args, wrt=["weights"], component="embedding", device=device)
