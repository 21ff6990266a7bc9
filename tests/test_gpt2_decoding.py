"""Your generate and perplexity, run on your GPT-2 model: the model-agnostic decoding and evaluation code
must take GPT2LM as it takes TransformerLM (config.context_length, make_kv_cache, a forward that continues
from the cache), and left-padded prompts must keep each row's positions (rows of wpe).

Composites (SPEC §4.6): tokens pass when they equal the reference's, or what the reference rules pick from
your own GPT-2 logits (own cache or own full forward); a perplexity passes when it equals the reference's,
or the SPEC windows scored with your own run_gpt2_lm. Where your decoding, padding or windowing is wrong on
the Llama-style model too, that is charged in the generate, padding and perplexity items, not here.
"""

import math


import pytest
import torch

from lmgrade.core.compare import Mismatch
from lmgrade.catalogue.diagnosis import diagnose_measurement, explained

from .checks import ground_truth, on
from .strategies import GPT2Config, gpt2_weights, randint
from .test_generate import GEN_BATCH, GEN_CONFIG, assert_same_tokens, gen_args, is_value_error, own_logits_verdict, same_tokens
from .test_perplexity import PPL, assert_ppl_close, own_ppl, ppl_args, token_weighted_ppl, window_nlls

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "A GPT-2 generation or perplexity failure, when the GPT-2 LM and its cache pass, is usually the "
    "positions of a left-padded row (rows of wpe counted over its real tokens), or the model's interface: "
    "config.context_length, make_kv_cache(), a forward on a (1, window) batch."
    "\n"
    "Ask yourself: which rows of wpe does a left-padded prompt's first real token read, and does your "
    "generate (and perplexity) call the model only through what TransformerLM and GPT2LM share?"
)

GPT2_GEN_CONFIG = GPT2Config(vocab_size=37, context_length=10, d_model=16, num_layers=2, num_heads=2, d_ff=64)
GPT2_KEYS = ("vocab_size", "context_length", "d_model", "num_layers", "num_heads", "d_ff", "weights")


def gpt2_gen_args(prompt_length, max_new_tokens, seed, temperature=0.0, top_k=None, top_p=None, sample_seed=0):
    config = GPT2_GEN_CONFIG
    return dict(**config.args(), weights=gpt2_weights(config, seed),
                prompt=randint(config.vocab_size, (GEN_BATCH, prompt_length), seed + 100), max_new_tokens=max_new_tokens,
                temperature=temperature, top_k=top_k, top_p=top_p, eos_token_id=None, seed=sample_seed)


def own_llama_generation_is_wrong(impl, sampling) -> bool:
    """Your generate's own rules, checked on the Llama-style model with the same decoding settings."""
    args = on(gen_args(GEN_CONFIG, GEN_BATCH, 4, 5, seed=3, temperature=sampling[0], top_k=sampling[1], top_p=sampling[2]))
    try:
        return own_logits_verdict(impl, args, impl.run_generate(**args)) is not None
    except Exception:  # noqa: BLE001 - it crashes there too
        return True


def check_gpt2_tokens(impl, oracle, device, args):
    got = impl.run_gpt2_generate(**on(args, device=device))
    try:
        assert_same_tokens(got, oracle.expected("run_gpt2_generate", ground_truth(args))["output"],
                           f"GPT-2 generated tokens vs the reference (prompt {tuple(args['prompt'].shape)}, "
                           f"max_new_tokens={args['max_new_tokens']}, temperature={args['temperature']}, top_k={args['top_k']})")
    except Mismatch as error:
        own = own_logits_verdict(impl, on(args, device=device), got, GPT2_KEYS, "run_gpt2_lm", "run_gpt2_lm_incremental")
        if own is None or own_llama_generation_is_wrong(impl, (args["temperature"], args["top_k"], args["top_p"])):
            return  # the rules on your own GPT-2 logits, or your decoding is wrong everywhere: charged elsewhere
        error.args = (f"{error.args[0]}\nand vs the reference decoding rules applied to your own GPT-2 logits: {own}",)
        raise explained(error, lambda: diagnose_measurement(
            oracle, "run_gpt2_generate", lambda bound: bound.run_gpt2_generate(**on(args, device=device)), got, same_tokens))


# (prompt_length, max_new_tokens, temperature, top_k): up to the last row of wpe, and sampled through top-k.
CASES = [(1, 9, 0.0, None), (4, 6, 0.0, None), (4, 3, 0.0, None), (2, 8, 1.0, 5), (4, 6, 0.8, None)]


@pytest.mark.parametrize("prompt_length, max_new_tokens, temperature, top_k", CASES)
def test_gpt2_generation_matches_reference_or_the_rules_on_your_own_logits(impl, oracle, device, prompt_length,
                                                                           max_new_tokens, temperature, top_k):
    """prompt_length + max_new_tokens = 10 = context_length in three cases: the last token uses wpe's last row."""
    check_gpt2_tokens(impl, oracle, device, gpt2_gen_args(prompt_length, max_new_tokens, seed=prompt_length + max_new_tokens,
                                                          temperature=temperature, top_k=top_k, sample_seed=7))


def test_gpt2_generation_past_the_position_table_raises_value_error(impl):
    """wpe has context_length rows: prompt_length + max_new_tokens > context_length raises ValueError, not an IndexError."""
    args = on(gpt2_gen_args(4, GPT2_GEN_CONFIG.context_length - 3, seed=1))
    try:
        impl.run_gpt2_generate(**args)
        error = None
    except Exception as raised:  # noqa: BLE001 - judged below
        error = raised
    if error is not None and is_value_error(error):
        return
    if own_llama_generation_misses_the_length_check(impl):
        return  # your generate has no length check on the Llama-style model either: charged in the generate item
    if error is not None:
        raise error
    raise Mismatch("prompt_length + max_new_tokens = 11 > context_length = 10 must raise ValueError, but it returned tokens")


def own_llama_generation_misses_the_length_check(impl) -> bool:
    args = on(gen_args(GEN_CONFIG, GEN_BATCH, 4, GEN_CONFIG.context_length - 3, seed=1))
    try:
        impl.run_generate(**args)
    except Exception as error:  # noqa: BLE001
        return not is_value_error(error)
    return True


def gpt2_padded_prompts(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts of different lengths, padded on the LEFT (pad id 0), and their attention mask."""
    width = max(len(row) for row in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for b, row in enumerate(rows):
        ids[b, width - len(row):], mask[b, width - len(row):] = row, True
    return ids, mask


def own_llama_padding_is_wrong(impl) -> bool:
    """Your padding on the Llama-style model against each row alone: greedy generation of a left-padded batch,
    and a right-padded prefill continued through the cache (where RoPE shows positions counted over the pads).
    Charged in the padding item where it is wrong; a crash, or no padding at all, is no excuse."""
    args = on(gen_args(GEN_CONFIG, 2, 4, 3, seed=9))
    lm = {k: v for k, v in args.items() if k in ("vocab_size", "context_length", "d_model", "num_layers", "num_heads", "d_ff",
                                                 "rope_theta", "weights")}
    rows = [args["prompt"][0], args["prompt"][1, :2]]
    extra = randint(GEN_CONFIG.vocab_size, (2, 2), 41)
    try:
        ids, mask = gpt2_padded_prompts(rows)
        out = impl.run_generate(**lm, prompt=ids, max_new_tokens=3, attention_mask=mask)
        for b, row in enumerate(rows):
            if not torch.equal(out[b, ids.shape[1]:].cpu(), impl.run_generate(**lm, prompt=row[None], max_new_tokens=3)[0, len(row):].cpu()):
                return True
        right_ids = torch.cat([ids.flip(-1), extra], dim=1)  # rows are palindromes of no interest: only lengths matter
        right_mask = torch.cat([mask.flip(-1), torch.ones_like(extra, dtype=torch.bool)], dim=1)
        right_ids = torch.where(right_mask, right_ids, 0)
        later = impl.run_transformer_lm_incremental(**lm, in_indices=right_ids, chunk_sizes=[ids.shape[1], 2],
                                                    attention_mask=right_mask)[:, ids.shape[1]:]
        for b in range(len(rows)):
            alone_ids = torch.cat([right_ids[b][right_mask[b]]])[None]
            alone = impl.run_transformer_lm(**lm, in_indices=alone_ids)[0, -2:]
            if not torch.allclose(later[b].double().cpu(), alone.double().cpu(), rtol=1e-4, atol=1e-4):
                return True
    except Exception:  # noqa: BLE001
        return False
    return False


def own_gpt2_cache_is_wrong(impl, lm: dict) -> bool:
    """Your GPT-2 KV cache without padding: a prefill then single tokens vs your own full forward."""
    ids = randint(lm["vocab_size"], (2, 6), 31).to(lm["weights"]["transformer.wte.weight"].device)
    try:
        chunked = impl.run_gpt2_lm_incremental(**lm, in_indices=ids, chunk_sizes=[3, 1, 1, 1])
        return not torch.allclose(chunked.double().cpu(), impl.run_gpt2_lm(**lm, in_indices=ids).double().cpu(), rtol=1e-4, atol=1e-4)
    except Exception:  # noqa: BLE001 - it crashes there too
        return True


def test_gpt2_greedy_generation_of_a_left_padded_batch_gives_each_prompt_its_own_tokens(impl, oracle, device):
    """With learned positions, left padding moves a row's tokens to other rows of wpe unless positions count
    the real tokens only (RoPE hides a constant shift; wpe does not): each row must get the tokens it gets alone."""
    args = on(gpt2_gen_args(5, 1, seed=21), device=device)
    lm = {k: args[k] for k in GPT2_KEYS}
    rows = [args["prompt"][0], args["prompt"][1, :2]]
    ids, mask = (t.to(device) for t in gpt2_padded_prompts(rows))
    new = GPT2_GEN_CONFIG.context_length - ids.shape[1]
    out = impl.run_gpt2_generate(**lm, prompt=ids, max_new_tokens=new, attention_mask=mask)
    for b, row in enumerate(rows):
        alone = impl.run_gpt2_generate(**lm, prompt=row[None], max_new_tokens=new)[0, len(row):]
        got = out[b, ids.shape[1]:]
        if torch.equal(got.cpu(), alone.cpu()):
            continue
        if own_llama_padding_is_wrong(impl) or own_gpt2_cache_is_wrong(impl, lm):
            return  # padded generation is wrong on the Llama-style model too, or your GPT-2 cache is: charged there
        raise explained(
            Mismatch(f"row {b} ({len(row)} real tokens, left-padded to {ids.shape[1]}) generated {got.tolist()}, but alone it "
                     f"generates {alone.tolist()}: do the positions (rows of wpe) count the real tokens only?"),
            lambda: diagnose_measurement(oracle, "run_gpt2_generate",
                                         lambda bound: bound.run_gpt2_generate(**lm, prompt=ids, max_new_tokens=new,
                                                                               attention_mask=mask), out, same_tokens))


# --- perplexity -----------------------------------------------------------------------------------

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
