"""Perplexity against the hidden reference on drawn sequence lengths, strides and weights."""

import torch
from hypothesis import given
from hypothesis import strategies as st

from ..strategies import seeds
from ..test_generate import no_shrinking
from ..test_perplexity import LENGTHS, PPL_CONFIG, STRIDES, check_ppl_against, ppl_args


@no_shrinking
@given(n=LENGTHS, stride=STRIDES, seed=seeds, dtype=st.sampled_from([torch.float32, torch.float64]))
def test_perplexity_matches_reference(impl, oracle, device, n, stride, seed, dtype):
    # A float comes back, not a tensor: the live reference answers directly (hidden tests never ship as snapshots).
    args = ppl_args(PPL_CONFIG, n, stride, seed)
    check_ppl_against(impl, oracle, args, oracle.reference.run_perplexity(**args), dtype, device,
                      f"perplexity (n={n}, stride={stride}, {dtype}) vs the reference")
