"""Embedding against the hidden reference on drawn shapes (forward and gradient w.r.t. the table)."""

from hypothesis import given
from hypothesis import strategies as st

from ..checks import check_against_reference
from ..strategies import layouts, leading_dims, model_dims, seeds
from ..test_embedding import embedding_args


@given(lead=leading_dims, vocab=st.sampled_from([3, 50]), d_model=model_dims, layout=layouts, seed=seeds)
def test_embedding_matches_reference_forward_and_backward(impl, oracle, device, lead, vocab, d_model, layout, seed):
    args = embedding_args(lead, vocab, d_model, seed)
    check_against_reference(impl, oracle, "run_embedding", args, wrt=["weights"], component="embedding", device=device, layout=layout)
