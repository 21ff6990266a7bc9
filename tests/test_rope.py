"""RoPE: interleaved pairs (2k, 2k+1) rotated by pos · θ^(−2k/d_k)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from .checks import assert_unchanged, check_against_reference, on
from .strategies import layouts, leading_dims, randint, randn, seeds

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "A RoPE failure is usually the pairing (the SPEC rotates interleaved pairs (2k, 2k+1), not the two "
    "halves), the angle pos · θ^(−2k/d), or positions not taken from token_positions."
    "\n"
    "Ask yourself: which two coordinates does each angle rotate, and at which position?"
)

D_KS = st.sampled_from([4, 8, 16])
THETAS = st.sampled_from([100.0, 10000.0])
MAX_SEQ_LEN = 32


def rope_args(lead, seq, d_k, theta, seed, positions=None):
    if positions is None:
        positions = randint(MAX_SEQ_LEN, (*lead, seq), seed + 1)
    return dict(d_k=d_k, theta=theta, max_seq_len=MAX_SEQ_LEN, in_query_or_key=randn((*lead, seq, d_k), seed), token_positions=positions)


FIXED = [((2,), 5, 8, 10000.0, 0), ((), 7, 4, 100.0, 1), ((2, 3), 4, 16, 10000.0, 2)]


@given(lead=leading_dims, seq=st.sampled_from([1, 5]), d_k=D_KS, layout=layouts, seed=seeds)
def test_rope_keeps_shape_and_dtype(impl, device, lead, seq, d_k, layout, seed):
    args = on(rope_args(lead, seq, d_k, 10000.0, seed), device=device, layout=layout)
    out = impl.run_rope(**args)
    assert out.shape == (*lead, seq, d_k) and out.dtype == torch.float32 and out.device.type == device.type


@given(d_k=D_KS, theta=THETAS, seed=seeds)
def test_rope_at_position_zero_is_identity(impl, d_k, theta, seed):
    args = on(rope_args((3,), 4, d_k, theta, seed, positions=torch.zeros(3, 4, dtype=torch.long)))
    assert_unchanged(impl.run_rope(**args), args["in_query_or_key"], "RoPE at position 0 vs its input", component="rope")


@given(d_k=D_KS, theta=THETAS, seed=seeds)
def test_rope_preserves_the_norm_of_each_vector(impl, d_k, theta, seed):
    args = on(rope_args((2,), 6, d_k, theta, seed))
    out = impl.run_rope(**args)
    assert_unchanged(out.norm(dim=-1), args["in_query_or_key"].norm(dim=-1), "‖RoPE(x)‖ vs ‖x‖", component="rope")


@given(d_k=D_KS, theta=THETAS, shift=st.integers(1, 10), seed=seeds)
def test_rope_dot_products_depend_only_on_relative_position(impl, d_k, theta, shift, seed):
    """⟨RoPE(q, m), RoPE(k, n)⟩ = ⟨RoPE(q, m + s), RoPE(k, n + s)⟩."""
    q, k = randn((1, d_k), seed).float(), randn((1, d_k), seed + 1).float()
    m, n = randint(MAX_SEQ_LEN - 10, (1, 1), seed + 2), randint(MAX_SEQ_LEN - 10, (1, 1), seed + 3)

    def rotated(x, pos):
        return impl.run_rope(d_k=d_k, theta=theta, max_seq_len=MAX_SEQ_LEN, in_query_or_key=x, token_positions=pos[0])

    near = (rotated(q, m) * rotated(k, n)).sum()
    far = (rotated(q, m + shift) * rotated(k, n + shift)).sum()
    assert_unchanged(far, near, f"q·k after RoPE with both positions shifted by {shift}", component="rope")


@pytest.mark.parametrize("lead, seq, d_k, theta, seed", FIXED)
def test_rope_matches_reference_on_fixed_cases(impl, oracle, device, lead, seq, d_k, theta, seed):
    args = rope_args(lead, seq, d_k, theta, seed)
    check_against_reference(impl, oracle, "run_rope", args, wrt=["in_query_or_key"], component="rope", device=device)
