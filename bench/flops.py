"""Part (3): matmul FLOPs per cached decode step, counted against the analytical count

    2·(L·(4·d² + 3·d·d_ff) + d·V) + 2·L·2·keys·d      per token

(q, k, v, o projections; the three SwiGLU matrices; the lm_head; QKᵀ and weights·V over the
`keys` cached positions, the new one included). torch.utils.flop_counter.FlopCounterMode
counts matmul-like ops only: norms, RoPE, softmax, SiLU and the embedding lookup are counted
on neither side.
"""

from __future__ import annotations

import torch
from lmgrade.core.no_dynamo import flop_counter_mode

FLOPS_TOLERANCE = 0.02  # the target: counted within 2 % of the analytical count


def analytical_step_flops(spec: dict, batch: int, keys: int) -> int:
    L, d, d_ff, V = spec["num_layers"], spec["d_model"], spec["d_ff"], spec["vocab_size"]
    return batch * (2 * (L * (4 * d * d + 3 * d * d_ff) + d * V) + 2 * L * 2 * keys * d)


@torch.no_grad()
def count_decode_flops(model, prompt, new_tokens: int, hf: bool) -> list[int]:
    """FLOPs of each cached decode step (the prefill excluded), by FlopCounterMode."""
    if hf:
        out = model(input_ids=prompt, use_cache=True)
        logits, cache = out.logits, out.past_key_values
    else:
        cache = model.make_kv_cache()
        logits = model(prompt, kv_cache=cache)
    per_step = []
    for _ in range(new_tokens - 1):
        token = logits[:, -1].argmax(dim=-1, keepdim=True)
        with flop_counter_mode() as counter:
            if hf:
                out = model(input_ids=token, past_key_values=cache, use_cache=True)
                logits, cache = out.logits, out.past_key_values
            else:
                logits = model(token, kv_cache=cache)
        per_step.append(counter.get_total_flops())
    return per_step


@torch.no_grad()
def count_uncached_flops(model, batch: int, length: int) -> int:
    """FLOPs of a forward over `length` tokens without the cache: the last step recomputed from scratch."""
    with flop_counter_mode() as counter:
        model(torch.zeros(batch, length, dtype=torch.long))
    return counter.get_total_flops()


def within_tolerance(ratio: float) -> bool:
    return abs(ratio - 1.0) <= FLOPS_TOLERANCE
