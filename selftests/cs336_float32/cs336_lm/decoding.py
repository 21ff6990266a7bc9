"""Sampling distribution, generation with the KV cache, and sliding-window perplexity."""

import math

import torch
from torch import Tensor

from .losses import cross_entropy
from .model import TransformerLM


def next_token_distribution(logits: Tensor, temperature: float, top_k: int | None = None,
                            top_p: float | None = None) -> Tensor:
    """temperature -> top-k -> top-p -> renormalise. Ties rank the lower token id first."""
    # logits: (..., vocab) -> probs (..., vocab)
    if temperature < 0:
        raise ValueError("temperature must be >= 0")
    if temperature == 0:
        first_argmax = logits.argmax(dim=-1, keepdim=True)  # (..., 1)
        return torch.zeros_like(logits).scatter_(-1, first_argmax, 1.0)
    probs = torch.softmax(logits / temperature, dim=-1)  # (..., vocab)
    vocab = logits.shape[-1]
    # rank by logit, descending; a stable sort keeps lower ids first among ties
    order = torch.sort(logits, dim=-1, descending=True, stable=True).indices  # (..., vocab)
    sorted_probs = probs.gather(-1, order)
    keep_sorted = torch.ones_like(sorted_probs, dtype=torch.bool)
    if top_k is not None:
        if top_k < 1:
            raise ValueError("top_k must be >= 1")
        keep_sorted &= torch.arange(vocab, device=logits.device) < top_k
        sorted_probs = sorted_probs.masked_fill(~keep_sorted, 0.0)
    if top_p is not None and top_p < 1.0:
        sorted_probs = sorted_probs / sorted_probs.sum(dim=-1, keepdim=True)
        cumulative = torch.cumsum(sorted_probs, dim=-1)  # (..., vocab)
        mass_before = torch.cat((torch.zeros_like(cumulative[..., :1]), cumulative[..., :-1]), dim=-1)
        # keep a token while the better ones have not yet reached p (reaching p exactly stops there)
        keep_sorted &= mass_before < top_p
    keep_sorted[..., 0] = True  # the top token always stays
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)  # back to vocab order
    out = probs.masked_fill(~keep, 0.0)
    return out / out.sum(dim=-1, keepdim=True)


@torch.no_grad()
def generate(model: TransformerLM, prompt: Tensor, max_new_tokens: int, temperature: float = 0.0,
             top_k: int | None = None, top_p: float | None = None, eos_token_id: int | None = None,
             seed: int = 0) -> Tensor:
    """prompt: (batch, prompt_len) -> (batch, prompt_len + generated)."""
    if prompt.shape[-1] + max_new_tokens > model.context_length:
        raise ValueError("prompt_length + max_new_tokens exceeds context_length")
    g = torch.Generator(prompt.device).manual_seed(seed)
    cache = model.new_cache()
    tokens = prompt
    finished = torch.zeros(prompt.shape[0], dtype=torch.bool, device=prompt.device)  # (batch,)
    next_input = prompt
    for _ in range(max_new_tokens):
        logits = model(next_input, kv_cache=cache)[:, -1, :]  # (batch, vocab)
        probs = next_token_distribution(logits, temperature, top_k, top_p)
        new = torch.multinomial(probs, 1, generator=g)  # (batch, 1)
        if eos_token_id is not None:
            new = new.masked_fill(finished[:, None], eos_token_id)
            finished |= new[:, 0] == eos_token_id
        tokens = torch.cat((tokens, new), dim=-1)
        next_input = new
        if eos_token_id is not None and bool(finished.all()):
            break
    return tokens


@torch.no_grad()
def perplexity(model: TransformerLM, token_ids: Tensor, stride: int) -> float:
    """Windows of context_length input tokens at 0, stride, 2*stride, ...; each window predicts the token
    after each of its inputs. The last window stops at the sequence end. Every token after the first is
    scored once, by the first window that has it as a target."""
    # token_ids: (n,)
    n, ctx = token_ids.shape[0], model.context_length
    if n < 2:
        raise ValueError("perplexity needs at least 2 tokens")
    if not 1 <= stride <= ctx:
        raise ValueError("stride must be in [1, context_length]")
    total_nll, scored, scored_up_to = 0.0, 0, 0  # targets 1 ... scored_up_to are done
    for begin in range(0, n - 1, stride):
        end = min(begin + ctx, n - 1)  # inputs token_ids[begin:end], targets token_ids[begin+1:end+1]
        logits = model(token_ids[None, begin:end])[0]  # (w, vocab)
        targets = token_ids[begin + 1:end + 1].clone()  # (w,)
        target_pos = torch.arange(begin + 1, end + 1, device=token_ids.device)
        targets[target_pos <= scored_up_to] = -100  # already scored by an earlier window
        count = int((targets != -100).sum())
        total_nll += cross_entropy(logits, targets, ignore_index=-100).item() * count
        scored += count
        scored_up_to = end
        if end == n - 1:
            break
    return math.exp(total_nll / scored)
