"""Cross-entropy over the last dimension with ignore_index."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor


def cross_entropy(
    logits: Float[Tensor, "... vocab_size"], targets: Int[Tensor, "..."], ignore_index: int | None = None
) -> Float[Tensor, ""]:
    """Mean of -log softmax(logits)[target] over the targets that are not ignore_index.

    Targets at ignored positions may hold anything (often -100), so they are never used as
    an index. If every target is ignored the mean is 0/0 = NaN, as in torch.
    """
    in_dtype = logits.dtype
    logits = logits.to(torch.promote_types(in_dtype, torch.float32))
    scored = torch.ones_like(targets, dtype=torch.bool) if ignore_index is None else targets != ignore_index
    safe_targets = torch.where(scored, targets, 0)

    # log Σ exp(z) = m + log Σ exp(z - m): stable for logits in the thousands.
    peak = logits.amax(dim=-1, keepdim=True)
    log_normaliser = peak.squeeze(-1) + torch.log(torch.exp(logits - peak).sum(dim=-1))
    target_logit = logits.gather(-1, safe_targets.unsqueeze(-1)).squeeze(-1)
    nll = torch.where(scored, log_normaliser - target_logit, 0.0)
    return (nll.sum() / scored.sum()).to(in_dtype)
