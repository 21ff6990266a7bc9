"""Part (2): the reference TransformerLM against transformers' LlamaForCausalLM, same weights.

Both models run float32 on the CPU, eager (transformers' `attn_implementation="eager"`), with
the weights of the reference converted by `interop.spec_to_llama`. Timings alternate between
the two (ABBA) in this process; a ratio is ours ÷ theirs in tokens/s, so > 1 means the
reference is faster.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

import reference
from interop import config_from_llama, spec_to_llama

from .flops import analytical_step_flops, count_decode_flops, count_uncached_flops

# Model sizes for forward+backward: (config, batch, seq).
FWD_BWD_SIZES = {
    "tiny": (dict(vocab_size=512, context_length=256, d_model=64, num_layers=2, num_heads=4, d_ff=192), 8, 64),
    "small": (dict(vocab_size=2048, context_length=256, d_model=256, num_layers=4, num_heads=8, d_ff=704), 4, 128),
    "medium": (dict(vocab_size=8192, context_length=512, d_model=512, num_layers=6, num_heads=8, d_ff=1376), 2, 256),
}
# Sizes for cached greedy decoding: (config, batch, prompt length, new tokens full, new tokens quick).
DECODE_SIZES = {
    "tiny": (FWD_BWD_SIZES["tiny"][0], 1, 16, 128, 32),
    "small": (FWD_BWD_SIZES["small"][0], 1, 16, 128, 32),
}
QUICK_FWD_BWD, QUICK_DECODE = ("tiny", "small"), ("tiny", "small")
# The sizes the speed targets are judged on (medium is reported, for scale).
TARGET_SIZES = ("tiny", "small")


def build_pair(spec: dict, seed: int = 0):
    """The reference TransformerLM and a transformers LlamaForCausalLM holding the same weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    ours = reference.TransformerLM(reference.TransformerConfig(**spec))
    hf_config = LlamaConfig(
        vocab_size=spec["vocab_size"],
        hidden_size=spec["d_model"],
        intermediate_size=spec["d_ff"],
        num_hidden_layers=spec["num_layers"],
        num_attention_heads=spec["num_heads"],
        num_key_value_heads=spec["num_heads"],
        max_position_embeddings=spec["context_length"],
        rms_norm_eps=1e-5,
        rope_theta=spec.get("rope_theta", 10000.0),
        tie_word_embeddings=False,
        attn_implementation="eager",
        bos_token_id=None,
        eos_token_id=None,  # generate() never stops early
        pad_token_id=None,
    )
    expected = dict(spec, rope_theta=float(spec.get("rope_theta", 10000.0)))
    if config_from_llama(hf_config) != expected:
        raise RuntimeError(f"the Llama config does not describe the same model: {config_from_llama(hf_config)} != {expected}")
    theirs = LlamaForCausalLM(hf_config)
    theirs.load_state_dict(spec_to_llama(ours.state_dict(), spec["num_heads"]), strict=True)
    return ours.float(), theirs.float()


def timed(fn, clock=time.perf_counter) -> float:
    start = clock()
    fn()
    return clock() - start


def time_interleaved(fns: dict, repeats: int, warmup: int) -> tuple[dict, dict, dict, dict]:
    """(first-call, best, median, best CPU) seconds per function.

    The functions alternate, ABBA, so that drift hits both. The best of the repeats is what the
    ratios use: other processes only ever add time, so the minimum is the least disturbed figure.
    The CPU time (time.process_time, this process only) is the cross-check when the machine is
    shared: with one torch thread it is barely inflated by other processes taking turns.
    """
    first = {name: timed(fn) for name, fn in fns.items()}
    for _ in range(warmup - 1):
        for fn in fns.values():
            fn()
    samples = {name: [] for name in fns}
    cpu = {name: [] for name in fns}
    for r in range(repeats):
        for name in list(fns) if r % 2 == 0 else reversed(list(fns)):
            cpu_start = time.process_time()
            samples[name].append(timed(fns[name]))
            cpu[name].append(time.process_time() - cpu_start)
    best = {name: min(s) for name, s in samples.items()}
    best_cpu = {name: min(s) for name, s in cpu.items()}
    return first, best, {name: statistics.median(s) for name, s in samples.items()}, best_cpu


# ----------------------------------------------------------------------------- forward + backward


def bench_fwd_bwd(name: str, repeats: int) -> dict:
    spec, batch, seq = FWD_BWD_SIZES[name]
    ours, theirs = build_pair(spec)
    ours.train(), theirs.train()
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, spec["vocab_size"], (batch, seq), generator=gen)
    y = torch.randint(0, spec["vocab_size"], (batch, seq), generator=gen)

    with torch.no_grad():  # the first forward at this shape
        start = time.perf_counter()
        ours_logits = ours(x)
        ours_first = time.perf_counter() - start
        start = time.perf_counter()
        hf_logits = theirs(input_ids=x, use_cache=False).logits
        hf_first = time.perf_counter() - start
    max_diff = (ours_logits - hf_logits).abs().max().item()

    def step_ours():
        ours.zero_grad(set_to_none=True)
        F.cross_entropy(ours(x).flatten(0, 1), y.flatten()).backward()

    def step_theirs():
        theirs.zero_grad(set_to_none=True)
        F.cross_entropy(theirs(input_ids=x, use_cache=False).logits.flatten(0, 1), y.flatten()).backward()

    _, best, median, cpu = time_interleaved({"ours": step_ours, "hf": step_theirs}, repeats=repeats, warmup=2)
    tokens = batch * seq
    return dict(
        size=name, **spec, batch=batch, seq=seq, max_abs_logit_diff=max_diff,
        ours_tokens_per_s=tokens / best["ours"], hf_tokens_per_s=tokens / best["hf"],
        ratio=best["hf"] / best["ours"], ratio_of_medians=median["hf"] / median["ours"], cpu_ratio=cpu["hf"] / cpu["ours"],
        ours_first_forward_s=ours_first, hf_first_forward_s=hf_first,
        ours_best_s=best["ours"], hf_best_s=best["hf"], ours_median_s=median["ours"], hf_median_s=median["hf"],
    )


# ----------------------------------------------------------------------------- decoding


def ours_generate(model, prompt, new_tokens):
    return reference.generate(model, prompt, new_tokens, temperature=0.0)


@torch.inference_mode()
def ours_greedy_loop(model, prompt, new_tokens):
    """Cached greedy decoding, the model only: prefill once, then one token per step."""
    cache = model.make_kv_cache()
    logits = model(prompt, kv_cache=cache)
    tokens = [prompt]
    for step in range(new_tokens):
        tokens.append(logits[:, -1].argmax(dim=-1, keepdim=True))
        if step < new_tokens - 1:
            logits = model(tokens[-1], kv_cache=cache)
    return torch.cat(tokens, dim=1)


@torch.no_grad()
def hf_generate(model, prompt, new_tokens):
    return model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens, do_sample=False)


@torch.inference_mode()
def hf_greedy_loop(model, prompt, new_tokens):
    """The same loop for transformers' model: its DynamicCache, no generate() machinery."""
    out = model(input_ids=prompt, use_cache=True)
    tokens = [prompt]
    for step in range(new_tokens):
        tokens.append(out.logits[:, -1].argmax(dim=-1, keepdim=True))
        if step < new_tokens - 1:
            out = model(input_ids=tokens[-1], past_key_values=out.past_key_values, use_cache=True)
    return torch.cat(tokens, dim=1)


def bench_decode(name: str, quick: bool, repeats: int) -> dict:
    spec, batch, prompt_len, new_full, new_quick = DECODE_SIZES[name]
    new_tokens = new_quick if quick else new_full
    ours, theirs = build_pair(spec)
    ours.eval(), theirs.eval()
    prompt = torch.randint(0, spec["vocab_size"], (batch, prompt_len), generator=torch.Generator().manual_seed(2))

    fns = {
        "ours": lambda: ours_generate(ours, prompt, new_tokens),
        "hf": lambda: hf_generate(theirs, prompt, new_tokens),
        "ours_loop": lambda: ours_greedy_loop(ours, prompt, new_tokens),
        "hf_loop": lambda: hf_greedy_loop(theirs, prompt, new_tokens),
    }
    first, best, median, cpu = time_interleaved(fns, repeats=repeats, warmup=1)
    same_tokens = torch.equal(ours_generate(ours, prompt, new_tokens), hf_generate(theirs, prompt, new_tokens))

    ours_flops = count_decode_flops(ours, prompt, new_tokens, hf=False)
    hf_flops = count_decode_flops(theirs, prompt, new_tokens, hf=True)
    analytical = [analytical_step_flops(spec, batch, prompt_len + 1 + j) for j in range(new_tokens - 1)]
    uncached = count_uncached_flops(ours, batch, prompt_len + new_tokens - 1)
    tokens = batch * new_tokens
    return dict(
        size=name, **spec, batch=batch, prompt_length=prompt_len, new_tokens=new_tokens, same_tokens=same_tokens,
        ours_tokens_per_s=tokens / best["ours"], hf_tokens_per_s=tokens / best["hf"],
        ratio=best["hf"] / best["ours"], ratio_of_medians=median["hf"] / median["ours"], cpu_ratio=cpu["hf"] / cpu["ours"],
        ours_loop_tokens_per_s=tokens / best["ours_loop"], hf_loop_tokens_per_s=tokens / best["hf_loop"],
        loop_ratio=best["hf_loop"] / best["ours_loop"], loop_cpu_ratio=cpu["hf_loop"] / cpu["ours_loop"],
        ours_first_call_s=first["ours"], hf_first_call_s=first["hf"],
        ours_best_s=best["ours"], hf_best_s=best["hf"], ours_median_s=median["ours"], hf_median_s=median["hf"],
        ours_flops_per_token=sum(ours_flops) / len(ours_flops) / batch,
        hf_flops_per_token=sum(hf_flops) / len(hf_flops) / batch,
        analytical_flops_per_token=sum(analytical) / len(analytical) / batch,
        flops_ratio=sum(ours_flops) / sum(analytical),
        hf_flops_ratio=sum(hf_flops) / sum(analytical),
        uncached_last_step_flops_ratio=uncached / analytical[-1],
    )
