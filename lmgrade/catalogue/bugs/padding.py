"""Common bugs of padded batches (attention masks, positions, the cache, generation).

All are caught by comparing each row of a padded batch with the row alone. With RoPE, left
padding only shifts a row's positions by a constant, which attention cannot see, so the position
bugs show where positions jump: right padding followed by more tokens through the cache.
"""

from lmgrade.catalogue.variants import bug

PADDING_MASK = "return (causal & (key_is_real[:, None, :] | itself))[:, None]  # one mask for every head"
POSITIONS = "positions = (real_before + is_real.cumsum(dim=-1) - 1).clamp(min=0)"
REMEMBER = "            kv_cache.key_is_real = torch.cat([cached_is_real, is_real], dim=-1)\n"
LAST_REAL = ("        if attention_mask is not None:  # each row continues from its last real token (right padding: not the last column)\n"
             "            last_real = prompt_length - 1 - attention_mask.flip(-1).int().argmax(dim=-1)\n"
             "            logits = logits[torch.arange(batch, device=prompt.device), last_real][:, None]\n")

BUGS = [
    bug("padding_pads_attended", "padding",
        "a padded batch gets the plain causal mask: the real tokens attend to the pads before them",
        ("attention.py", PADDING_MASK, "return causal[None, None].expand(key_is_real.shape[0], 1, -1, -1)")),
    bug("padding_pad_query_sees_no_key", "padding",
        "a pad's query may see no key at all (its row of scores is all −inf), so its output is NaN, and the NaN "
        "reaches the real tokens through the next layer's values",
        ("attention.py", PADDING_MASK, "return (causal & key_is_real[:, None, :])[:, None]")),
    bug("padding_mask_on_queries_not_keys", "padding",
        "the padding mask hides the pads' queries (rows) instead of the pads as keys (columns)",
        ("attention.py", PADDING_MASK, "return (causal & key_is_real[:, -num_queries:, None])[:, None]")),
    bug("padding_positions_counted_over_pads", "padding",
        "positions count every slot of the padded batch, pads included, instead of the row's real tokens",
        ("model.py", POSITIONS,
         "positions = (cached_is_real.shape[-1] + torch.arange(is_real.shape[-1], device=is_real.device)).expand_as(is_real)")),
    bug("padding_cache_positions_from_padded_width", "padding",
        "after a padded prefill, new tokens continue from the cache's padded width instead of the row's number of real tokens",
        ("model.py", "real_before = cached_is_real.sum(dim=-1, keepdim=True)",
         "real_before = torch.full_like(is_real[:, :1], cached_is_real.shape[-1], dtype=torch.long)")),
    bug("padding_mask_forgotten_by_the_cache", "padding",
        "the KV cache does not remember which cached tokens are pads, so later chunks attend to them (and count them)",
        ("model.py", REMEMBER, "")),
    bug("generate_continues_from_the_last_column", "padding",
        "generation on a right-padded batch takes the next token from the last column (a pad) instead of each row's "
        "last real token",
        ("decoding.py", LAST_REAL, "")),
]
