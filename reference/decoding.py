"""Decoding with a trained TransformerLM: the next-token distribution, generation, perplexity."""

from __future__ import annotations

import math

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from .layers import softmax
from .model import TransformerLM


def next_token_distribution(
    logits: Float[Tensor, "... vocab_size"],
    temperature: float,
    top_k: int | None = None,
    top_p: float | None = None,
) -> Float[Tensor, "... vocab_size"]:
    """Probabilities of the next token: temperature, then top-k, then top-p, renormalised.

    Every row of `logits` (the last dimension is the vocabulary) is handled on its own.
    Ranking ties go to the lower token id. temperature == 0 is greedy decoding: one-hot on
    the first argmax (top_k and top_p cannot change that, since the top token always stays).
    The result has the dtype of `logits`; the arithmetic is done in at least float32.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be ≥ 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be ≥ 1 (or None), got {top_k}")
    if top_p is not None and not 0.0 <= top_p <= 1.0:
        raise ValueError(f"top_p must be in [0, 1] (or None), got {top_p}")
    in_dtype = logits.dtype
    logits = logits.to(torch.promote_types(in_dtype, torch.float32))
    vocab_size = logits.shape[-1]

    if temperature == 0:
        # argmax returns the first maximal index: the tie rule for free.
        first_argmax = logits.argmax(dim=-1, keepdim=True)
        return torch.zeros_like(logits).scatter_(-1, first_argmax, 1.0).to(in_dtype)

    # Temperature divides the LOGITS: probabilities ∝ exp(z / T). Dividing the
    # probabilities instead would cancel out on renormalisation.
    probs = softmax(logits / temperature, dim=-1)

    # Rank every row once, most probable first. A stable sort keeps equal probabilities in
    # token-id order, so ties go to the lower id.
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)
    rank = torch.arange(vocab_size, device=logits.device)
    keep_sorted = torch.ones_like(sorted_probs, dtype=torch.bool)

    if top_k is not None:
        keep_sorted &= rank < top_k  # top_k ≥ vocab_size keeps everything
    if top_p is not None and top_p < 1.0:  # top_p = 1 keeps everything, even mass lost to rounding
        # top-p works on the distribution that top-k left, renormalised.
        kept = torch.where(keep_sorted, sorted_probs, 0.0)
        kept = kept / kept.sum(dim=-1, keepdim=True)
        # Keep a token while the mass of the tokens ranked above it is still below p: that
        # is the smallest prefix whose mass reaches p (reaching p exactly stops there). The
        # top token always stays, even when it alone exceeds p, and for p = 0.
        mass_before = torch.cumsum(kept, dim=-1).roll(1, dims=-1)
        mass_before[..., 0] = 0.0
        keep_sorted &= (mass_before < top_p) | (rank == 0)

    # Back from rank order to token order, then drop the rest and renormalise.
    keep = torch.zeros_like(keep_sorted).scatter_(-1, order, keep_sorted)
    probs = torch.where(keep, probs, 0.0)
    return (probs / probs.sum(dim=-1, keepdim=True)).to(in_dtype)


@torch.no_grad()
def generate(
    model: TransformerLM,
    prompt: Int[Tensor, "batch prompt_length"],
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_token_id: int | None = None,
    seed: int = 0,
    attention_mask: Bool[Tensor, "batch prompt_length"] | None = None,
) -> Int[Tensor, "batch total_length"]:
    """The prompt followed by up to max_new_tokens generated tokens, decoded with the KV cache.

    The prompt is fed once (the prefill); after that each step feeds only the token just
    chosen, and the cache supplies the keys and values of everything before it (the model
    continues the positions from the cache length). Sampling uses a private generator, so
    the same seed gives the same tokens and the global torch RNG is left alone.

    With eos_token_id, a row that has produced eos is finished: its later tokens are eos,
    and generation stops early once every row is finished (the result is then shorter than
    prompt_length + max_new_tokens).

    A batch of prompts of different lengths comes padded, with attention_mask (True = real
    token), on either side: each row then gets exactly the tokens it would get alone. The first
    new token follows each row's last real token; new tokens are appended after the whole padded
    prompt (pads in between stay pads: masked, and not counted in the positions).
    """
    batch, prompt_length = prompt.shape
    context_length = model.config.context_length
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be ≥ 0, got {max_new_tokens}")
    if prompt_length < 1:
        raise ValueError("the prompt needs at least one token")
    if prompt_length + max_new_tokens > context_length:
        raise ValueError(
            f"prompt of {prompt_length} tokens + {max_new_tokens} new tokens exceed context_length={context_length}"
        )
    if attention_mask is not None and (attention_mask.shape != prompt.shape or not attention_mask.any(dim=-1).all()):
        raise ValueError(f"attention_mask must have the prompt's shape {tuple(prompt.shape)} and a real token in "
                         f"every row, got shape {tuple(attention_mask.shape)}")
    if max_new_tokens == 0:
        return prompt.clone()

    tokens = [prompt]
    generator = torch.Generator(device=prompt.device).manual_seed(seed)
    finished = torch.zeros(batch, dtype=torch.bool, device=prompt.device)
    kv_cache = model.make_kv_cache()
    # inference_mode rather than no_grad: no graph, and no version counters or view tracking
    # either, which is about 15 % of a decoding step on the CPU, where a step is mostly overhead.
    with torch.inference_mode():
        logits = model(prompt, kv_cache=kv_cache, attention_mask=attention_mask)  # the prefill: every prompt token, once
        if attention_mask is not None:  # each row continues from its last real token (right padding: not the last column)
            last_real = prompt_length - 1 - attention_mask.flip(-1).int().argmax(dim=-1)
            logits = logits[torch.arange(batch, device=prompt.device), last_real][:, None]

        for step in range(max_new_tokens):
            if temperature == 0:
                # Greedy: the first argmax, the token next_token_distribution's one-hot puts its mass
                # on, without building the one-hot. No randomness needed.
                next_token = logits[:, -1].argmax(dim=-1, keepdim=True)
            else:
                probs = next_token_distribution(logits[:, -1], temperature, top_k, top_p)
                # One draw for the whole batch per step, from the seeded generator only.
                next_token = torch.multinomial(probs, 1, generator=generator)
            if eos_token_id is not None:
                next_token = torch.where(finished[:, None], eos_token_id, next_token)
                finished |= next_token[:, 0] == eos_token_id
            tokens.append(next_token)
            # Without eos no row ever finishes: skip the check (a device sync at every step).
            if step == max_new_tokens - 1 or (eos_token_id is not None and bool(finished.all())):
                break
            logits = model(next_token, kv_cache=kv_cache)  # one new token; the cache holds the rest

    return torch.cat(tokens, dim=1)  # outside inference mode: an ordinary tensor, which callers may modify in place


@torch.no_grad()
def perplexity(model: TransformerLM, token_ids: Int[Tensor, "n"], stride: int) -> float:
    """exp(mean negative log-likelihood per token) of token_ids, over sliding windows.

    A window starting at s feeds tokens s … s+C−1 (C = context_length) and so predicts
    tokens s+1 … s+C. Windows start at 0, stride, 2·stride, …; the last one is the first
    that reaches the end of the sequence, truncated there (it may feed fewer than C tokens).
    Each token after the first is scored once, by the first window that predicts it, so a
    window scores only the targets past those of the window before it: with stride = C the
    windows are disjoint; with stride = 1 every token after the first C has C tokens of
    context. A sequence of at most C + 1 tokens is a single window: the plain next-token
    loss of the whole sequence.

    The mean is over tokens (total NLL / number of scored tokens), not over windows. The
    log-probabilities are computed in at least float32 (float64 stays float64).
    """
    n = token_ids.shape[0]
    context_length = model.config.context_length
    if n < 2:
        raise ValueError(f"perplexity needs at least 2 tokens (one to condition on, one to score), got {n}")
    if not 1 <= stride <= context_length:
        raise ValueError(f"stride must be in [1, context_length={context_length}], got {stride}")

    total_nll, scored = 0.0, 0
    last_target = 0  # tokens 1 … last_target have been scored
    for start in range(0, n - 1, stride):
        end = min(start + context_length, n - 1)  # inputs start … end−1 predict targets start+1 … end
        logits = model(token_ids[None, start:end])[0]
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        log_probs = torch.log_softmax(logits, dim=-1)
        targets = token_ids[start + 1 : end + 1]
        # Only the targets no earlier window has scored: positions last_target+1 … end.
        new = slice(last_target - start, None)
        nll = -log_probs[new].gather(-1, targets[new, None]).squeeze(-1)
        total_nll += nll.sum().item()  # a Python float is float64: the sum stays exact enough
        scored += nll.numel()
        last_target = end
        if end == n - 1:
            break
    return math.exp(total_nll / scored)
