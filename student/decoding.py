"""Decoding with a trained TransformerLM: the next-token distribution, generation, perplexity.

    logits (..., vocab) ──next_token_distribution──▶ probs (..., vocab)
    model + prompt      ──generate──────────────────▶ prompt + new tokens   (uses the KV cache)
    model + token ids   ──perplexity────────────────▶ exp(mean NLL per token)

You may use torch.softmax / log_softmax / sort / cumsum / multinomial here (and
F.cross_entropy in perplexity): the building blocks were the exercise, this file is about
getting the conventions exactly right.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jaxtyping import Bool, Float, Int
from torch import Tensor

if TYPE_CHECKING:
    from .model import TransformerLM


def next_token_distribution(
    logits: Float[Tensor, "... vocab_size"],
    temperature: float,
    top_k: int | None = None,
    top_p: float | None = None,
) -> Float[Tensor, "... vocab_size"]:
    """Probabilities of the next token, from its unnormalised logits.

    Shapes: logits (..., vocab_size), any leading dims (often (batch, vocab_size) =
    `model(ids)[:, -1]`); every row is handled on its own. Returns probabilities of the
    same shape and dtype (do the arithmetic in at least float32), each row summing to 1.

    In this order:
      1. temperature: p = softmax(logits / temperature). T < 1 sharpens, T > 1 flattens.
         temperature == 0 is greedy decoding: return one-hot on the FIRST argmax (the
         lowest token id among equal maxima); top_k / top_p then change nothing.
      2. top_k (None = off): keep the k most probable tokens (k ≥ vocab_size keeps all).
      3. top_p (None = off, 0 ≤ p ≤ 1; 1 keeps all): among what top-k kept, renormalised,
         keep the SMALLEST set of most probable tokens whose total mass reaches p: walking
         down from the most probable, a token stays while the mass of the tokens ranked
         above it is still below p (a mass that reaches p exactly stops there). The top
         token always stays, so top_p = 0 keeps only the top token (0.0 is a value, not
         "off": test `top_p is not None`, never `if top_p:`).
      4. zero every dropped token and renormalise what is left.

    Ranking ties go to the lower token id: sort with `torch.sort(..., descending=True,
    stable=True)`, which keeps equal values in index order. Example, probs [.1, .3, .3, .3]
    with top_k = 2 keeps tokens 1 and 2; with top_p = .5 it keeps tokens 1 and 2 as well
    (.3 < .5, then .3 + .3 ≥ .5).

    Invalid arguments (temperature < 0, top_k < 1, top_p outside [0, 1]) raise ValueError.

    The traps:
      * Temperature applied to the probabilities (softmax(z) / T): the renormalisation
        cancels it, so T has no effect at all. Divide the LOGITS.
      * Dropping the top token when it alone has more mass than p ("keep while the
        cumulative mass ≤ p" keeps nothing then): the top token always survives top-p.
      * Top-p measured on the full distribution, or applied before top-k: top-p works on
        the distribution top-k left, renormalised.
      * An unstable sort or argsort of the negated values: ties may go to either token.
    """
    raise NotImplementedError("next_token_distribution")


def generate(
    model: "TransformerLM",
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
    """The prompt followed by up to max_new_tokens generated tokens: (batch, total_length).

    Padded prompts (do this last): attention_mask (batch, prompt_length), True at real tokens,
    for a batch of prompts of different lengths padded on the left (usual for generation) or
    the right. Pass it to the prefill; the first new token of a row follows ITS last real token
    (with right padding that is not the last column); new tokens are appended after the padded
    prompt and are real. Every row must get exactly the tokens it gets when generated alone.
    Raise ValueError if the mask's shape is not the prompt's or a row has no real token.

    prompt: (batch, prompt_length) token ids, prompt_length ≥ 1, on the model's device.
    Decode under `torch.no_grad()`.

    Checks first, before any work: raise ValueError if max_new_tokens < 0 or
    prompt_length + max_new_tokens > model.config.context_length (generating exactly up
    to context_length is fine). max_new_tokens == 0 returns the prompt.

    The loop, with one KV cache (`model.make_kv_cache()`):
      * prefill: `logits = model(prompt, kv_cache=cache)`, the whole prompt once;
      * each step: probs = next_token_distribution(logits[:, -1], temperature, top_k,
        top_p); greedy (temperature == 0) takes the argmax, otherwise
        `torch.multinomial(probs, 1, generator=g)`, ONE call per step for the whole batch,
        with `g = torch.Generator(prompt.device).manual_seed(seed)` made once per call;
      * then feed ONLY the new token: `logits = model(next_token, kv_cache=cache)`. The
        model continues the positions from the cache length (prompt_length, then
        prompt_length + 1, …), so the result equals re-running the whole sequence.
    There is no need to run the model after the last token has been chosen.

    eos_token_id (None = never stop early): once a row has GENERATED eos (an eos in the
    prompt does not count) it is finished: from then on its new tokens are eos, whatever
    the model says (still one multinomial call for the whole batch). Stop as soon as every
    row is finished: the result is then shorter than prompt_length + max_new_tokens, and
    its last column is all eos.

    The traps:
      * The global RNG (`torch.multinomial(probs, 1)` or `torch.manual_seed`): the same
        seed must give the same tokens, and generating must not disturb other code's
        random numbers. Use the seeded generator only.
      * Re-feeding the whole sequence at every step (with or without the cache): correct
        tokens at O(n²) cost, or the cache double-counting the prefix. Feed one token.
      * Positions restarting at 0 for the fed token (see TransformerLM.forward).
      * A generator created (re-seeded) inside the loop: every step then reuses the same
        random numbers. Make it once, before the first step.
    """
    raise NotImplementedError("generate")


def perplexity(model: "TransformerLM", token_ids: Int[Tensor, "n"], stride: int) -> float:
    """exp(total NLL / number of scored tokens) of a 1-D sequence, over sliding windows.

    C = model.config.context_length. A window starting at s FEEDS tokens s … s+C−1 and so
    PREDICTS tokens s+1 … s+C (logits at i score token i+1). Windows start at 0, stride,
    2·stride, … (1 ≤ stride ≤ C, else ValueError); the last is the first window that
    reaches the end of the sequence, cut off there (it may feed fewer than C tokens).

    Every token after the first is scored exactly once, by the FIRST window that predicts
    it, with the context that window gives: a window scores only its targets after the last
    target of the window before it. With stride = C the windows are disjoint and a target
    sees 1 to C tokens of context; with stride = 1 every token after the first C sees C
    tokens of context. A sequence of at most C + 1 tokens is a single window: the
    plain next-token loss of the whole sequence. Fewer than 2 tokens raise ValueError.

    The NLL of a target is −log softmax(logits)[target], computed in at least float32
    (`torch.promote_types(logits.dtype, torch.float32)`; float64 stays float64). Return a
    Python float. Decode under `torch.no_grad()`.

    Example, C = 4, stride = 2, tokens t0 … t8:
        window at 0: feeds t0..t3, scores t1 t2 t3 t4
        window at 2: feeds t2..t5, scores t5 t6        (t3, t4 were scored already)
        window at 4: feeds t4..t7, scores t7 t8        (reaches the end: the last window)
        ppl = exp((nll(t1) + … + nll(t8)) / 8)

    The traps:
      * A mean of the windows' mean NLLs: windows score different numbers of tokens, so
        the mean must be over TOKENS: sum every NLL, divide by how many were scored.
      * Scoring the overlap again in every window (tokens counted twice or more).
      * Windows of C tokens that score only C−1 targets, so that the first token of each
        window is never a target (with stride = C, one token per window is never scored).
    """
    raise NotImplementedError("perplexity")
