"""Your perplexity, run on your GPT-2 model (the seed notes' experiment: GPT-2, sliding windows).

A composite (SPEC §4.6): it passes when it equals the reference's, or the SPEC windows scored with your own
run_gpt2_lm's logits. Where your windowing is wrong on the Llama-style model too, that is charged in the
perplexity item, not here.
"""

import math

import pytest

from lmgrade.core.compare import Mismatch
from lmgrade.catalogue.diagnosis import diagnose_measurement, explained

from .checks import ground_truth, on
from .strategies import gpt2_weights, randint
from .test_generate import GEN_CONFIG
from .test_gpt2_generate import GPT2_GEN_CONFIG, GPT2_KEYS
from .test_perplexity import PPL, assert_ppl_close, own_ppl, ppl_args, token_weighted_ppl, window_nlls

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "A GPT-2 perplexity failure, when the GPT-2 LM and the Llama-style perplexity pass, is usually the model's "
    "interface (config.context_length, a forward on a (1, window) batch) or windows longer than the position "
    "table."
    "\n"
    "Ask yourself: does your perplexity read the window length from model.config.context_length?"
)

C = GPT2_GEN_CONFIG.context_length


def gpt2_ppl_args(n, stride, seed):
    config = GPT2_GEN_CONFIG
    return dict(**config.args(), weights=gpt2_weights(config, seed), token_ids=randint(config.vocab_size, (n,), seed + 100),
                stride=stride)


def own_llama_windows_are_wrong(impl, n, stride) -> bool:
    """Your perplexity's windowing, checked on the Llama-style model with the same length and stride."""
    args = on(ppl_args(GEN_CONFIG, n, stride, seed=4))
    try:
        assert_ppl_close(impl.run_perplexity(**args), own_ppl(impl, args), PPL, "")
        return False
    except Exception:  # noqa: BLE001 - a mismatch or a crash there too
        return True


FIXED_PPL = [(2, 1, 0), (C + 1, C, 1), (19, C, 2), (19, 4, 3), (16, 1, 4)]


@pytest.mark.parametrize("n, stride, seed", FIXED_PPL)
def test_gpt2_perplexity_matches_reference_or_your_own_logits_scored_by_the_spec_windows(impl, oracle, device, n, stride, seed):
    args = gpt2_ppl_args(n, stride, seed)
    truth = ground_truth(args)
    reference_lm = {k: truth[k] for k in GPT2_KEYS}
    expected = token_weighted_ppl(window_nlls(
        lambda window: oracle.expected("run_gpt2_lm", dict(reference_lm, in_indices=window))["output"],
        truth["token_ids"], C, stride))
    impl_args = on(args, device=device)
    got = impl.run_gpt2_perplexity(**impl_args)
    try:
        assert_ppl_close(got, expected, PPL, f"GPT-2 perplexity (n={n}, stride={stride}) vs the reference")
    except Mismatch as error:
        own_lm = {k: impl_args[k] for k in GPT2_KEYS}
        try:
            own = token_weighted_ppl(window_nlls(lambda window: impl.run_gpt2_lm(**own_lm, in_indices=window),
                                                 impl_args["token_ids"].cpu(), C, stride))
            if math.isfinite(own) and math.isclose(got, own, rel_tol=PPL.rtol * 10):
                return  # the SPEC windows over your own GPT-2 logits: a wrong GPT-2 LM is charged in its item
        except Exception:  # noqa: BLE001 - no own GPT-2 LM to excuse it
            pass
        if own_llama_windows_are_wrong(impl, n, stride):
            return  # the windowing is wrong on the Llama-style model too: charged in the perplexity item
        raise explained(error, lambda: diagnose_measurement(
            oracle, "run_gpt2_perplexity", lambda bound: bound.run_gpt2_perplexity(**on(args, device=device)), got,
            lambda a, b: math.isclose(a, b, rel_tol=1e-6)))


# A crash that the submission's own GPT-2 LM also raises is charged to that LM, not here (SPEC §4.6).
from .checks import excuse_crashes_of_the_own_lm  # noqa: E402

excuse_crashes_of_the_own_lm(globals(), model="gpt2")
