"""Common bugs in decoding: the next-token distribution, generation with the KV cache, perplexity."""

from ..variants import bug

SAMPLE = "next_token = torch.multinomial(probs, 1, generator=generator)"
CACHED_STEP = "logits = model(next_token, kv_cache=kv_cache)  # one new token; the cache holds the rest"

BUGS = [
    # --- the next-token distribution -------------------------------------------------------------
    bug("decoding_temperature_after_softmax", "decoding", "temperature divides the probabilities instead of the logits (renormalising cancels it)",
        ("decoding.py", "probs = softmax(logits / temperature, dim=-1)", "probs = softmax(logits, dim=-1) / temperature")),
    bug("decoding_top_p_drops_the_top_token", "decoding", "top-p keeps the top token only if its own mass is below p, so a dominant token leaves nothing (NaN)",
        ("decoding.py", "mass_before[..., 0] = 0.0", "mass_before[..., 0] = kept[..., 0]")),
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
        ("decoding.py", CACHED_STEP, "logits = model(torch.cat(tokens, dim=1))")),
    bug("generate_positions_restart_at_zero", "generate", "the tokens fed through the cache get RoPE positions from 0 again instead of continuing",
        ("model.py", "positions = torch.arange(past, past + seq, device=in_indices.device)",
         "positions = torch.arange(seq, device=in_indices.device)")),
    bug("generate_finished_rows_not_filled_with_eos", "generate", "a row that produced eos keeps generating instead of holding eos",
        ("decoding.py", "next_token = torch.where(finished[:, None], eos_token_id, next_token)\n", "")),
    bug("generate_stops_at_the_first_eos", "generate", "generation stops as soon as ANY row has produced eos, not when every row has",
        ("decoding.py", "bool(finished.all())", "bool(finished.any())")),
    bug("generate_no_length_check", "generate", "prompt_length + max_new_tokens > context_length is not rejected up front",
        ("decoding.py", "if prompt_length + max_new_tokens > context_length:", "if prompt_length > context_length:")),
    # --- perplexity ------------------------------------------------------------------------------
    bug("perplexity_mean_of_window_means", "perplexity", "perplexity averages the windows' mean NLLs instead of the NLL of every scored token",
        ("decoding.py", "total_nll += nll.sum().item()", "total_nll += nll.mean().item()"),
        ("decoding.py", "scored += nll.numel()", "scored += 1")),
    bug("perplexity_scores_the_overlap_again", "perplexity", "every window scores all its targets, so tokens in the overlap of windows count several times",
        ("decoding.py", "new = slice(last_target - start, None)", "new = slice(0, None)")),
]
