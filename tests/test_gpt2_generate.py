"""Your generate, run on your GPT-2 model: the model-agnostic decoding code must take GPT2LM as it takes
TransformerLM (config.context_length, make_kv_cache, a forward that continues from the cache).

A composite (SPEC §4.6): tokens pass when they equal the reference's, or what the reference rules pick from
your own GPT-2 logits (own cache or own full forward). Where your decoding is wrong on the Llama-style
model too, that is charged in the generate item, not here.
"""

import pytest
import torch

from lmgrade.core.compare import Mismatch
from lmgrade.catalogue.diagnosis import diagnose_measurement, explained

from .checks import ground_truth, on
from .strategies import GPT2Config, gpt2_weights, randint
from .test_generate import GEN_BATCH, GEN_CONFIG, assert_same_tokens, gen_args, is_value_error, own_logits_verdict, same_tokens

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "A GPT-2 generation failure, when the GPT-2 LM and its cache pass, is usually the model's "
    "interface: config.context_length, make_kv_cache(), or a forward that does not continue the positions "
    "(wpe rows) from the cache; or running past the last row of wpe."
    "\n"
    "Ask yourself: does your generate call the model only through what TransformerLM and GPT2LM share?"
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
    with pytest.raises(Exception) as raised:
        impl.run_gpt2_generate(**args)
    if not is_value_error(raised.value):
        raise raised.value


def gpt2_padded_prompts(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts of different lengths, padded on the LEFT (pad id 0), and their attention mask."""
    width = max(len(row) for row in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for b, row in enumerate(rows):
        ids[b, width - len(row):], mask[b, width - len(row):] = row, True
    return ids, mask


def own_llama_padded_generation_is_wrong(impl) -> bool:
    """Your padded generation on the Llama-style model (charged in the padding item where it is wrong)."""
    args = on(gen_args(GEN_CONFIG, 2, 4, 3, seed=9))
    lm = {k: v for k, v in args.items() if k in ("vocab_size", "context_length", "d_model", "num_layers", "num_heads", "d_ff",
                                                 "rope_theta", "weights")}
    rows = [args["prompt"][0], args["prompt"][1, :2]]
    ids, mask = gpt2_padded_prompts(rows)
    try:
        out = impl.run_generate(**lm, prompt=ids, max_new_tokens=3, attention_mask=mask)
        return any(not torch.equal(out[b, ids.shape[1]:].cpu(), impl.run_generate(**lm, prompt=row[None], max_new_tokens=3)[0, len(row):].cpu())
                   for b, row in enumerate(rows))
    except Exception:  # noqa: BLE001 - it crashes there too (or has no padding)
        return True


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
        if own_llama_padded_generation_is_wrong(impl) or own_gpt2_cache_is_wrong(impl, lm):
            return  # padded generation is wrong on the Llama-style model too, or your GPT-2 cache is: charged there
        raise explained(
            Mismatch(f"row {b} ({len(row)} real tokens, left-padded to {ids.shape[1]}) generated {got.tolist()}, but alone it "
                     f"generates {alone.tolist()}: do the positions (rows of wpe) count the real tokens only?"),
            lambda: diagnose_measurement(oracle, "run_gpt2_generate",
                                         lambda bound: bound.run_gpt2_generate(**lm, prompt=ids, max_new_tokens=new,
                                                                               attention_mask=mask), out, same_tokens))


# A crash that the submission's own GPT-2 LM also raises is charged to that LM, not here (SPEC §4.6).
from .checks import excuse_crashes_of_the_own_lm  # noqa: E402

excuse_crashes_of_the_own_lm(globals(), model="gpt2")
