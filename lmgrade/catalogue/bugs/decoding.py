"""Common bugs in the loss and in decoding: cross-entropy, the next-token distribution, generation with
the KV cache, perplexity. (Cross-entropy's bugs live here too, so the catalogue needs no new module.)"""

from lmgrade.catalogue.variants import bug

SAMPLE = "next_token = torch.multinomial(probs, 1, generator=generator)"
CACHED_STEP = "logits = model(next_token, kv_cache=kv_cache)  # one new token; the cache holds the rest"

BUGS = [
    # --- cross-entropy ---------------------------------------------------------------------------
    bug("cross_entropy_ignore_index_zero_read_as_none", "cross_entropy",
        "ignore_index=0 is read as \"no ignore_index\" (`if ignore_index:`), so targets equal to 0 are scored",
        ("loss.py", "if ignore_index is None else targets != ignore_index", "if not ignore_index else targets != ignore_index")),
    bug("cross_entropy_view_fails_on_permuted_inputs", "cross_entropy",
        "the leading dims are flattened with .view(-1, vocab_size), which fails on permuted or transposed inputs (use .reshape)",
        ("loss.py", "    scored = torch.ones_like(",
         "    logits, targets = logits.view(-1, logits.shape[-1]), targets.view(-1)\n    scored = torch.ones_like(")),
    # --- the next-token distribution -------------------------------------------------------------
    bug("decoding_temperature_after_softmax", "decoding", "temperature divides the probabilities instead of the logits (renormalising cancels it)",
        ("decoding.py", "probs = softmax(logits / temperature, dim=-1)", "probs = softmax(logits, dim=-1) / temperature")),
    bug("decoding_top_p_drops_the_top_token", "decoding", "top-p keeps the top token only if its own mass is below p, so a dominant token leaves nothing (NaN)",
        ("decoding.py", "mass_before[..., 0] = 0.0", "mass_before[..., 0] = kept[..., 0]"),
        ("decoding.py", "keep_sorted &= (mass_before < top_p) | (rank == 0)", "keep_sorted &= mass_before < top_p")),
    bug("decoding_top_p_zero_read_as_none", "decoding",
        "top_p=0.0 is read as \"no top-p\" (`if top_p:`), so every token stays instead of the top token alone",
        ("decoding.py", "if top_p is not None and top_p < 1.0:", "if top_p and top_p < 1.0:")),
    bug("decoding_top_p_boundary_keeps_one_more", "decoding",
        "top-p keeps a token while the mass above it is ≤ p instead of < p, so a mass that reaches p exactly keeps one token too many",
        ("decoding.py", "keep_sorted &= (mass_before < top_p) | (rank == 0)", "keep_sorted &= (mass_before <= top_p) | (rank == 0)")),
    bug("decoding_temperature_zero_read_as_default", "decoding",
        "temperature=0.0 is read as \"not given\" (`temperature or 1.0`), so it samples at temperature 1 instead of greedy",
        ("decoding.py", "    in_dtype = logits.dtype\n    logits = logits.to(torch.promote_types(in_dtype, torch.float32))\n    vocab_size",
         "    temperature = temperature or 1.0\n    in_dtype = logits.dtype\n    logits = logits.to(torch.promote_types(in_dtype, torch.float32))\n    vocab_size")),
    bug("decoding_top_p_before_top_k", "decoding", "top-p is measured on the full distribution, not on what top-k kept (top-k applied after top-p)",
        ("decoding.py", "kept = torch.where(keep_sorted, sorted_probs, 0.0)", "kept = sorted_probs.clone()")),
    bug("decoding_ties_to_the_higher_id", "decoding", "equal probabilities are ranked higher token id first, so top-k/top-p keep the wrong one of a tie",
        ("decoding.py", "sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)",
         "sorted_probs, order = torch.sort(probs.flip(-1), dim=-1, descending=True, stable=True)\n"
         "    order = vocab_size - 1 - order")),
    # --- generation ------------------------------------------------------------------------------
    bug("generate_sampling_with_the_global_rng", "generate", "tokens are sampled with the global torch RNG instead of the seeded generator",
        ("decoding.py", SAMPLE, "next_token = torch.multinomial(probs, 1)")),
    bug("generate_reseeds_every_step", "generate", "a fresh generator seeded with `seed` at every step, so every step reuses the same random numbers",
        ("decoding.py", SAMPLE, "next_token = torch.multinomial(probs, 1, generator=torch.Generator(prompt.device).manual_seed(seed))")),
    bug("generate_refeeds_the_whole_sequence", "generate", "every step re-runs the whole sequence without the cache: right tokens, O(n²) work",
        ("decoding.py", CACHED_STEP,
         "sequence = torch.cat(tokens, dim=1)\n"
         "            logits = model(sequence, attention_mask=None if attention_mask is None else torch.cat(\n"
         "                [attention_mask, torch.ones_like(sequence[:, prompt_length:], dtype=torch.bool)], dim=1))")),
    bug("generate_finished_rows_not_filled_with_eos", "generate", "a row that produced eos keeps generating instead of holding eos",
        ("decoding.py", "next_token = torch.where(finished[:, None], eos_token_id, next_token)\n", "")),
    bug("generate_stops_at_the_first_eos", "generate", "generation stops as soon as ANY row has produced eos, not when every row has",
        ("decoding.py", "bool(finished.all())", "bool(finished.any())")),
    bug("generate_eos_zero_read_as_none", "generate",
        "eos_token_id=0 is read as \"no eos\" (`if eos_token_id:`), so rows never finish on token 0",
        ("decoding.py", "if eos_token_id is not None:", "if eos_token_id:")),
    bug("generate_seed_zero_read_as_none", "generate",
        "seed=0 is read as \"no seed\" (`if seed:`), so the generator keeps its default seed and seed 0 samples other tokens",
        ("decoding.py", "generator = torch.Generator(device=prompt.device).manual_seed(seed)",
         "generator = torch.Generator(device=prompt.device)\n    if seed:\n        generator.manual_seed(seed)")),
    bug("generate_no_length_check", "generate", "prompt_length + max_new_tokens > context_length is not rejected up front",
        ("decoding.py", "if prompt_length + max_new_tokens > context_length:", "if prompt_length > context_length:")),
    # --- perplexity ------------------------------------------------------------------------------
    bug("perplexity_mean_of_window_means", "perplexity", "perplexity averages the windows' mean NLLs instead of the NLL of every scored token",
        ("decoding.py", "total_nll += nll.sum().item()", "total_nll += nll.mean().item()"),
        ("decoding.py", "scored += nll.numel()", "scored += 1")),
    bug("perplexity_scores_the_overlap_again", "perplexity", "every window scores all its targets, so tokens in the overlap of windows count several times",
        ("decoding.py", "new = slice(last_target - start, None)", "new = slice(0, None)")),
]
