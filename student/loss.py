"""Cross-entropy over the last dimension, with ignore_index."""

from __future__ import annotations

from jaxtyping import Float, Int
from torch import Tensor


def cross_entropy(
    logits: Float[Tensor, "... vocab_size"], targets: Int[Tensor, "..."], ignore_index: int | None = None
) -> Float[Tensor, ""]:
    """Mean over the scored targets of −log softmax(logits)[target].

    Shapes: logits (..., vocab_size), targets (...) with the same leading dims (any number:
    (n,), (batch, seq), ...). Returns a 0-dim tensor in logits' dtype.

    Per position:  ℓ = log Σ_v exp(z_v) − z_target. Compute the log-sum-exp stably:
    log Σ exp(z) = m + log Σ exp(z − m) with m the max over vocab, so logits ×1000 still
    give a finite loss. Compute in `torch.promote_types(logits.dtype, torch.float32)` and
    cast the result back. `torch.logsumexp`, `log_softmax` and `F.cross_entropy` are not
    allowed; build it from max, exp, sum, log and gather / indexing.

    ignore_index: positions whose target equals it are not scored (padding, prompt tokens,
    the overlap of perplexity windows). Then
      * the mean divides by the number of SCORED targets, not by the number of positions;
      * the logits at ignored positions do not matter at all, and their gradient is
        exactly 0 (select with torch.where rather than multiplying a NaN/inf by 0);
      * any integer may mark them: −100 (torch's default), or a real class id, 0 included
        (0 is a value, not "off": test `ignore_index is not None`, never `if ignore_index:`);
      * if every target is ignored the result is 0/0 = NaN, as in torch.
    None means every target is scored.

    The shift is the caller's job: for an LM, `cross_entropy(logits[:, :-1], ids[:, 1:])`
    (position i predicts token i+1). This function pairs logits[i] with targets[i].

    The traps:
      * Indexing or gathering with the raw targets: `gather` with −100 fails (on CUDA as a
        device-side assert), and advanced indexing silently wraps it to vocab_size − 100.
        Replace ignored targets by a safe class (e.g. 0) first, then drop their terms.
      * Mean over all positions, ignored ones included (loss too small by the ignored
        fraction).
      * log(softmax(z)) computed directly: softmax underflows to 0 and log 0 = −inf.
      * `.view(-1, vocab_size)` to flatten the leading dims: it fails on inputs whose
        leading dims are permuted or transposed; use `.reshape` (or work on any `...`).
    """
    raise NotImplementedError("cross_entropy")
