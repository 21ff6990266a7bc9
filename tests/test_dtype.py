"""Other dtypes than float32: float64 in → float64 out at float64 accuracy; 16-bit RMSNorm in float32.

float32 is what the rest of the suite feeds (SPEC §4.1). Support for other dtypes is graded
here only, in its own small item, so a float32-only implementation (CS336 modules hold float32
parameters) loses this item and nothing else. A case whose float32 output is already wrong is
not charged here: that mistake belongs to the component's own item (SPEC §4.6).
"""

import pytest
import torch

from lmgrade.core.compare import Mismatch, Tolerance, describe_difference

from .checks import NO_RESULT, check_against_reference, ground_truth, on
from .strategies import LM_CONFIGS, randint, randn
from .test_attention import MHA_WRT, SDPA_WRT, mha_args, sdpa_args
from .test_block import WRT as BLOCK_WRT
from .test_block import block_args
from .test_embedding import embedding_args
from .test_linear import WRT as LINEAR_WRT
from .test_linear import linear_args
from .test_lm import lm_args, lm_wrt
from .test_rmsnorm import WRT as RMSNORM_WRT
from .test_rmsnorm import rmsnorm_args
from .test_rope import rope_args
from .test_softmax import softmax_args
from .test_swiglu import SWIGLU_WRT, silu_args, swiglu_args
from .tolerances import tolerance

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "A dtype failure is usually a hard-coded float32 (a .float(), a dtype=torch.float32 buffer) or a "
    "16-bit RMSNorm computed in 16 bits."
    "\n"
    "Ask yourself: does a float64 input stay float64 through every step, and does RMSNorm square 16-bit "
    "inputs in float32?"
)

CONFIG = LM_CONFIGS[1]


def _cross_entropy_args():
    return dict(inputs=randn((2, 5, 17), 0, 2.0), targets=randint(17, (2, 5), 1))


# (adapter, component, args, wrt): one small case per graded operation.
CASES = {
    "linear": ("run_linear", "linear", linear_args((2, 5), 16, 8, 0), LINEAR_WRT),
    "embedding": ("run_embedding", "embedding", embedding_args((2, 7), 11, 8, 0), ["weights"]),
    "rmsnorm": ("run_rmsnorm", "rmsnorm", rmsnorm_args((3,), 8, 1, 0.01), RMSNORM_WRT),
    "silu": ("run_silu", "silu", silu_args((3, 4), 0, 4.0), ["in_features"]),
    "swiglu": ("run_swiglu", "swiglu", swiglu_args((2, 5), 16, 40, 0), SWIGLU_WRT),
    "softmax": ("run_softmax", "softmax", softmax_args((3, 5), 0, 1), ["in_features"]),
    "attention": ("run_scaled_dot_product_attention", "attention", sdpa_args((2,), 4, 4, 8, 8, 0), SDPA_WRT),
    "rope": ("run_rope", "rope", rope_args((2,), 5, 8, 10000.0, 0), ["in_query_or_key"]),
    "multihead_attention": ("run_multihead_self_attention_with_rope", "attention",
                            mha_args(CONFIG, 2, 7, 0, rope=True), MHA_WRT),
    "block": ("run_transformer_block", "block", block_args(CONFIG, 2, 7, 0), BLOCK_WRT),
    "lm": ("run_transformer_lm", "lm", lm_args(CONFIG, 2, 7, 0), lm_wrt(CONFIG)),
    "cross_entropy": ("run_cross_entropy", "cross_entropy", _cross_entropy_args(), ["inputs"]),
    "decoding": ("run_next_token_distribution", "decoding",
                 dict(logits=randn((2, 3, 17), 5, 2.0), temperature=0.7, top_k=None, top_p=None), ()),
}


def _float32_output_is_right(impl, oracle, fn: str, component: str, args: dict) -> bool:
    """Whether the float32 run of the same case matches the reference (if not, its own item pays)."""
    try:
        truth = ground_truth(args)
        got = getattr(impl, fn)(**on(truth)).detach()
        return describe_difference(got, oracle.expected(fn, truth)["output"], tolerance(component, torch.float32)) is None
    except NO_RESULT:
        return False


@pytest.mark.parametrize("case", list(CASES))
def test_float64_inputs_give_float64_outputs_at_float64_accuracy(impl, oracle, device, case):
    """float64 weights and inputs: the output is float64 and equals the float64 reference to ~1e-9."""
    fn, component, args, wrt = CASES[case]
    try:
        check_against_reference(impl, oracle, fn, args, wrt=wrt, component=component, dtype=torch.float64, device=device)
    except Mismatch:
        if not _float32_output_is_right(impl, oracle, fn, component, args):
            return  # a value mistake, already charged in the component's own item
        raise


# float16 keeps ~3 significant digits: its inputs are rounded by ~5e-4 relative, and so is the output.
FLOAT16 = Tolerance(rtol=4e-3, atol=4e-3, row="rmsnorm, float16", reason="float16 rounding of inputs and output, ~5e-4")


@pytest.mark.parametrize("lead, d_model, seed", [((2, 5), 16, 0), ((3,), 24, 1)])
def test_rmsnorm_of_float16_inputs_in_the_hundreds_is_computed_in_float32(impl, oracle, device, lead, d_model, seed):
    """x² of 300 overflows float16 (max 65504): the mean of squares must be taken in float32, cast back to float16."""
    args = rmsnorm_args(lead, d_model, seed, scale=300.0)
    try:
        check_against_reference(impl, oracle, "run_rmsnorm", args, component="rmsnorm", dtype=torch.float16, device=device, tol=FLOAT16)
    except Mismatch:
        if not _float32_output_is_right(impl, oracle, "run_rmsnorm", "rmsnorm", args):
            return
        raise


def test_rmsnorm_keeps_bfloat16_as_bfloat16(impl, device):
    out = impl.run_rmsnorm(**on(rmsnorm_args((2, 3), 16, 0), torch.bfloat16, device))
    assert out.dtype == torch.bfloat16 and out.shape == (2, 3, 16), f"RMSNorm of bfloat16 inputs returned {out.dtype}"
