"""Padded batches: each row of a padded batch behaves exactly as that row alone (SPEC §6).

Reference-free properties: the implementation under test is compared with itself, the padded
batch against each row run alone without pads, so a mistake elsewhere in the model (charged in
its own item) cancels out and only the padding logic is judged here. Both padding sides, rows of
random lengths, always one row without padding and one of length 1.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lmgrade.core.compare import Mismatch
from lmgrade.core.outcomes import ForbiddenCall, NotImplementedInSubmission, SubmissionBroken, SubmissionCrashed

from . import compositions
from .checks import CPU, assert_unchanged, diagnosed, on
from .strategies import LM_CONFIGS, generator, lm_weights, randint, randn, seeds
from .test_generate import expected_with_eos, follow_rules
from .tolerances import tolerance

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "A padding failure is usually a pad that real tokens attend to (the causal mask alone does not hide "
    "pads), positions counted over the pads (with a cache: taken from the padded width instead of the "
    "number of real tokens), a NaN from a pad whose query sees no key at all, or the first new token of a "
    "right-padded row taken from the last column instead of the row's last real token."
    "\n"
    "Ask yourself: for row b, which keys may query i see, and what is the position of its j-th real token "
    "after n cached real tokens, whatever the padded width?"
)

COMPONENT = "padding"
SIDES = ("left", "right")
PAD_ID = 0  # any id: pads are never read
LM_TOL = tolerance("lm", torch.float32)
CACHED = ("attention", "cache")  # what a cached or generating check stands on (see own_parts_are_broken)


def padded_batch(config, lengths: list[int], side: str, seed: int, device: torch.device = CPU
                 ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Rows of these lengths, padded to the longest on `side`: (rows, ids (batch, width), mask), on device."""
    width = max(lengths)
    rows = [randint(config.vocab_size, (n,), seed + 7 * i) for i, n in enumerate(lengths)]
    ids = torch.full((len(rows), width), PAD_ID, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for b, row in enumerate(rows):
        place = slice(width - len(row), width) if side == "left" else slice(0, len(row))
        ids[b, place], mask[b, place] = row, True
    return [row.to(device) for row in rows], ids.to(device), mask.to(device)


def drawn_lengths(width: int, extra_rows: int, seed: int) -> list[int]:
    """One full row (no padding), one row of length 1, and `extra_rows` of random lengths."""
    g = generator(seed)
    return [width, 1, *(int(n) for n in torch.randint(1, width + 1, (extra_rows,), generator=g))]


def model_args(config, seed: int, device: torch.device = CPU) -> dict:
    return on(dict(**config.args(), weights=lm_weights(config, seed)), device=device)


def logits_alone(impl, args: dict, row: torch.Tensor) -> torch.Tensor:
    return impl.run_transformer_lm(**args, in_indices=row[None])[0]


def explain(impl, args: dict, failure: Mismatch) -> None:
    """Name the classic cause, found by probing the implementation: NaN at real tokens, or which side fails."""
    width = 4
    rows = [randint(args["vocab_size"], (n,), 5) for n in (width, 2)]
    causes = []
    for side in SIDES:
        ids = torch.full((2, width), PAD_ID, dtype=torch.long)
        mask = torch.zeros(2, width, dtype=torch.bool)
        ids[0], mask[0] = rows[0], True
        place = slice(2, 4) if side == "left" else slice(0, 2)
        ids[1, place], mask[1, place] = rows[1], True
        try:
            out = impl.run_transformer_lm(**args, in_indices=ids, attention_mask=mask)[1][mask[1]]
        except Exception:  # noqa: BLE001 - a probe: its failure is the original one's business
            return
        if torch.isnan(out).any():
            causes.append(f"NaN at the real tokens of a {side}-padded row: a pad's query row had no key it may see "
                          "(softmax of all −inf), and the NaN reached the real tokens through the next layer; let "
                          "every query see at least itself")
        elif not torch.allclose(out.double(), logits_alone(impl, args, rows[1]).double(), rtol=1e-4, atol=1e-4):
            causes.append(f"a {side}-padded row differs from itself alone in one full forward: the real tokens "
                          "attend to the pads (mask the keys that are pads, not just the future)")
    if causes:
        failure.args = (f"{failure.args[0]}\nLikely cause: " + "; ".join(causes),)


def check_rows(impl, oracle, args: dict, failure_context: str, produce, judge, tol=None, stands_on=("attention",)) -> None:
    """judge(produce(impl)); a failure says where (failure_context), names the likely cause found by
    probing (explain), and the catalogued padding bug whose produce(bug) gives the same. A failure (or
    a crash) is excused where a part it stands on is wrong without any padding (own_parts_are_broken)."""
    try:
        got = produce(impl)
        with diagnosed(oracle, "run_transformer_lm", {}, got, tol, measure=produce, component=COMPONENT):
            judge(got)
    except (NotImplementedInSubmission, ForbiddenCall, SubmissionBroken, SubmissionCrashed):
        raise
    except Exception as failure:
        if own_parts_are_broken(impl, args, stands_on):
            return  # a part this item stands on is wrong without padding: that part's item pays
        if isinstance(failure, Mismatch):
            explain(impl, args, failure)
            failure.args = (f"{failure.args[0]}\n({failure_context})",)
        raise


def own_parts_are_broken(impl, args: dict, stands_on=("attention", "cache", "eos")) -> str | None:
    """Padding can only come out right if the parts it stands on are right without padding: attention
    under a boolean mask that is not causal, the KV cache, and generation's eos rule. Where one of them
    is wrong, its own item pays (SPEC §4.6) and this item does not: the part's name, or None."""
    checks = {"attention": own_attention_is_broken, "cache": own_cache_is_broken, "eos": own_eos_rule_is_broken}
    for part in stands_on:
        broken = checks[part]
        try:
            if broken(impl, args):
                return part
        except Exception:  # noqa: BLE001 - a part that crashes without padding is broken too
            return part
    return None


def own_masked_attention_is_broken(impl, args: dict) -> bool:
    g = generator(17)
    q, k, v = (torch.randn(1, 2, n, 4, generator=g, dtype=torch.float64) for n in (5, 6, 6))
    mask = torch.rand(1, 2, 5, 6, generator=g) < 0.5
    mask[..., 0] = True  # every query sees at least one key
    weights = torch.softmax((q @ k.transpose(-2, -1) / 2.0).masked_fill(~mask, float("-inf")), dim=-1)
    got = impl.run_scaled_dot_product_attention(q.float(), k.float(), v.float(), mask)
    return not torch.allclose(got.double().cpu(), weights @ v, rtol=1e-4, atol=1e-4)


def own_attention_is_broken(impl, args: dict) -> bool:
    """Attention under a boolean mask that is not causal, or the LM's own causal mask (a prefix's logits are
    the first logits of the whole): padding's "row alone" is only defined for a causal model."""
    if own_masked_attention_is_broken(impl, args) or own_rope_attention_with_row_positions_is_broken(impl):
        return True
    ids = randint(args["vocab_size"], (1, 6), 29).to(args["weights"]["lm_head.weight"].device)
    whole = impl.run_transformer_lm(**args, in_indices=ids)[:, :3]
    prefix = impl.run_transformer_lm(**args, in_indices=ids[:, :3])
    return not torch.allclose(whole.double().cpu(), prefix.double().cpu(), rtol=1e-4, atol=1e-4)


def own_rope_attention_with_row_positions_is_broken(impl) -> bool:
    """Padded rows give each row its own positions, (batch, seq), with repeats and jumps (a shift alone is invisible
    to RoPE, which is relative): your attention with RoPE under such positions vs
    the composition of your own Linear, RoPE and attention (a mistake there is the attention item's)."""
    d_model, heads = 16, 2
    weights = [randn((d_model, d_model), 60 + k, d_model**-0.5) for k in range(4)]
    args = on(dict(d_model=d_model, num_heads=heads, max_seq_len=16, theta=10000.0, q_proj_weight=weights[0],
                   k_proj_weight=weights[1], v_proj_weight=weights[2], o_proj_weight=weights[3],
                   in_features=randn((2, 5, d_model), 64), token_positions=torch.tensor([[0, 0, 1, 2, 3], [0, 1, 2, 5, 6]])))  # jumps: RoPE is relative
    got = impl.run_multihead_self_attention_with_rope(**args)
    own = compositions.multihead_self_attention_with_rope(impl, **args)
    return not torch.allclose(got.double().cpu(), own.double().cpu(), rtol=1e-4, atol=1e-5)


def own_cache_is_broken(impl, args: dict) -> bool:
    ids = randint(args["vocab_size"], (2, 8), 19).to(args["weights"]["lm_head.weight"].device)
    chunked = impl.run_transformer_lm_incremental(**args, in_indices=ids, chunk_sizes=[3, 1, 4])
    full = impl.run_transformer_lm(**args, in_indices=ids)
    return not torch.allclose(chunked.double().cpu(), full.double().cpu(), rtol=1e-4, atol=1e-4)


def own_eos_rule_is_broken(impl, args: dict) -> bool:
    prompt = randint(args["vocab_size"], (3, 3), 23).to(args["weights"]["lm_head.weight"].device)
    free = generate(impl, args, prompt, 6)
    eos = int(free[0, 4])  # row 0's second new token
    return not torch.equal(generate(impl, args, prompt, 6, eos=eos).cpu(), expected_with_eos(free.cpu(), 3, eos))


# --- the LM on a padded batch ---------------------------------------------------------------------

@given(config=st.sampled_from(LM_CONFIGS), side=st.sampled_from(SIDES), extra=st.sampled_from([0, 1, 2]), seed=seeds)
def test_padding_real_token_logits_equal_each_row_alone(impl, oracle, device, config, side, extra, seed):
    """The logits at a row's real tokens equal those of the row alone, unpadded (either side)."""
    args = model_args(config, seed, device)
    rows, ids, mask = padded_batch(config, drawn_lengths(config.context_length // 2 + 1, extra, seed), side, seed, device)

    def judge(logits):
        for b, row in enumerate(rows):
            assert_unchanged(logits[b][mask[b]].cpu(), logits_alone(impl, args, row).cpu(),
                             f"row {b} ({len(row)} real tokens, {side}-padded to {ids.shape[1]}) vs the row alone",
                             component="lm")

    check_rows(impl, oracle, args, f"{side} padding, lengths {[len(r) for r in rows]}",
               lambda bound: bound.run_transformer_lm(**args, in_indices=ids, attention_mask=mask), judge, LM_TOL)


@pytest.mark.parametrize("side", SIDES)
def test_padding_loss_with_pads_ignored_equals_the_token_weighted_loss_of_the_rows_alone(impl, oracle, side):
    """Training on a padded batch, targets at pads set to −100 and ignored: the mean loss over the batch
    equals the mean over every real target of every row alone (token-weighted, not a mean of row means)."""
    config = LM_CONFIGS[1]
    args = model_args(config, 3)
    rows, ids, mask = padded_batch(config, [9, 2, 5], side, 3)
    # Position i predicts token i+1 of the same row: a target is scored if both are real.
    targets = torch.where(mask[:, 1:] & mask[:, :-1], ids[:, 1:], -100)

    def judge(logits):
        logits = logits.double()
        padded = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), targets.flatten(), ignore_index=-100)
        alone_nll = [torch.nn.functional.cross_entropy(logits_alone(impl, args, row).double()[:-1], row[1:],
                                                       reduction="sum") for row in rows]
        token_weighted = sum(alone_nll) / sum(len(row) - 1 for row in rows)
        assert_unchanged(padded.reshape(1), token_weighted.reshape(1),
                         "padded-batch loss vs the token-weighted loss of the rows alone", component="cross_entropy")

    check_rows(impl, oracle, args, f"{side} padding",
               lambda bound: bound.run_transformer_lm(**args, in_indices=ids, attention_mask=mask), judge, LM_TOL)


# --- the KV cache on a padded batch ---------------------------------------------------------------

@given(config=st.sampled_from(LM_CONFIGS), side=st.sampled_from(SIDES), split=st.integers(1, 5), seed=seeds)
def test_padding_cached_chunks_equal_the_full_padded_forward(impl, oracle, config, side, split, seed):
    """A padded batch fed in two chunks (the mask split with it) gives the full padded forward's logits."""
    args = model_args(config, seed)
    rows, ids, mask = padded_batch(config, drawn_lengths(config.context_length // 2 + 1, 1, seed), side, seed)
    chunks = [min(split, ids.shape[1] - 1), ids.shape[1] - min(split, ids.shape[1] - 1)]

    def judge(chunked):
        full = impl.run_transformer_lm(**args, in_indices=ids, attention_mask=mask)
        assert_unchanged(chunked[mask].cpu(), full[mask].cpu(), f"padded batch in chunks {chunks} vs the full padded forward",
                         component="kv_cache")

    check_rows(impl, oracle, args, f"{side} padding, chunks {chunks}", lambda bound: bound.run_transformer_lm_incremental(
        **args, in_indices=ids, chunk_sizes=chunks, attention_mask=mask), judge, LM_TOL, CACHED)


@pytest.mark.parametrize("side", SIDES)
def test_padding_tokens_after_a_padded_prefill_continue_each_row(impl, oracle, side):
    """After a padded prefill, more tokens (all real, no mask) continue every row exactly as the row alone
    would continue: their positions follow the row's real tokens, and the cached pads stay hidden."""
    config = LM_CONFIGS[2]
    args = model_args(config, 4)
    rows, ids, mask = padded_batch(config, [8, 1, 5], side, 4)
    more = randint(config.vocab_size, (3, 4), 40)
    whole = torch.cat([ids, more], dim=1)
    whole_mask = torch.cat([mask, torch.ones_like(more, dtype=torch.bool)], dim=1)
    chunks = [ids.shape[1], more.shape[1]]

    def judge(logits):
        for b, row in enumerate(rows):
            alone = logits_alone(impl, args, torch.cat([row, more[b]]))[len(row):]
            assert_unchanged(logits[b, ids.shape[1]:].cpu(), alone.cpu(),
                             f"row {b}: the {more.shape[1]} tokens after its {side}-padded prefill vs the row alone",
                             component="kv_cache")

    check_rows(impl, oracle, args, f"{side} padding, a prefill of width {ids.shape[1]} with {[len(r) for r in rows]} "
               "real tokens, then 4 tokens", lambda bound: bound.run_transformer_lm_incremental(
                   **args, in_indices=whole, chunk_sizes=chunks, attention_mask=whole_mask), judge, LM_TOL, CACHED)


# --- generation ---------------------------------------------------------------------------------

def generate(impl, args: dict, prompt, max_new_tokens: int, mask=None, eos=None, temperature: float = 0.0,
             seed: int = 0) -> torch.Tensor:
    return impl.run_generate(**args, prompt=prompt, max_new_tokens=max_new_tokens, temperature=temperature,
                             eos_token_id=eos, seed=seed, attention_mask=mask)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("config_index", [0, 2])
def test_padding_greedy_generation_of_a_padded_batch_gives_each_prompt_its_own_tokens(impl, oracle, device, side,
                                                                                       config_index):
    """Greedy decoding of a padded batch of prompts: row by row, exactly the new tokens of that prompt alone."""
    config = LM_CONFIGS[config_index]
    args = model_args(config, 5 + config_index, device)
    rows, ids, mask = padded_batch(config, [6, 1, 3], side, 5 + config_index, device)
    new = config.context_length - ids.shape[1]

    def judge(out):
        assert out.shape == (3, ids.shape[1] + new), f"expected shape {(3, ids.shape[1] + new)}, got {tuple(out.shape)}"
        assert torch.equal(out[:, : ids.shape[1]].cpu(), ids.cpu()), "the padded prompt must come back unchanged"
        for b, row in enumerate(rows):
            alone = generate(impl, args, row[None], new)[0, len(row):]
            got = out[b, ids.shape[1]:]
            if not torch.equal(got.cpu(), alone.cpu()):
                raise Mismatch(f"row {b} ({len(row)} real tokens, {side}-padded to {ids.shape[1]}) generated {got.tolist()}, "
                               f"but alone it generates {alone.tolist()}"
                               + ("; the first new token follows the row's LAST REAL token, not the last column"
                                  if side == "right" and got[0] != alone[0] else ""))

    check_rows(impl, oracle, args, f"greedy generation, {side} padding", lambda bound: generate(bound, args, ids, new, mask),
               judge, stands_on=CACHED)


def test_padding_rows_stop_at_eos_on_their_own_and_are_filled_with_it(impl, oracle):
    """With eos, a row of a left-padded batch that generates eos is finished (eos from then on) while the
    others go on exactly as alone; generation stops when every row is finished."""
    config = LM_CONFIGS[0]
    args = model_args(config, 8)
    rows, ids, mask = padded_batch(config, [5, 2, 4], "left", 8)
    new = 6
    try:
        free = generate(impl, args, rows[0][None], new)[0, len(rows[0]):]
    except Exception:
        if own_parts_are_broken(impl, args, ("attention", "cache", "eos")):
            return  # generation fails without padding: charged where it does
        raise
    eos = int(free[1])  # the second token row 0 generates alone: it stops there

    def judge(out):
        for b, row in enumerate(rows):
            alone = generate(impl, args, row[None], new, eos=eos)[0, len(row):]
            got = out[b, ids.shape[1]:]
            n = min(len(alone), len(got))
            assert torch.equal(got[:n].cpu(), alone[:n].cpu()), (
                f"row {b} generated {got.tolist()} in the padded batch but {alone.tolist()} alone (eos {eos})")
            assert (got[n:] == eos).all(), f"row {b} finished with eos {eos} but continued with {got[n:].tolist()}"
        if all((out[b, ids.shape[1]:] == eos).any() for b in range(3)):
            assert (out[:, -1] == eos).all(), "generation went on after every row had finished"

    check_rows(impl, oracle, args, "eos in a left-padded batch", lambda bound: generate(bound, args, ids, new, mask, eos), judge,
               stands_on=("attention", "cache", "eos"))


def test_padding_sampling_draws_one_multinomial_per_step_from_each_rows_own_distribution(impl, oracle):
    """Sampling a left-padded batch (temperature 0.8, seed 3): every step is ONE seeded multinomial for the
    whole batch, and row b's probabilities at step s are those of row b alone after the tokens it has so
    far (your own LM and next_token_distribution on the unpadded row), so pads change nothing."""
    config = LM_CONFIGS[2]
    args = model_args(config, 9)
    rows, ids, mask = padded_batch(config, [5, 2, 4], "left", 9)
    new, temperature, seed = 5, 0.8, 3
    width = ids.shape[1]

    def judge(out):
        assert out.shape == (3, width + new), f"expected shape {(3, width + new)}, got {tuple(out.shape)}"
        problem = sampling_problem(out, ids, rows)
        if problem:
            raise Mismatch(f"sampling a left-padded batch: {problem}")

    def sampled_rule_broken(prompt) -> str | None:
        out = generate(impl, args, prompt, new, temperature=temperature, seed=seed)
        return sampling_problem(out, prompt, [row for row in prompt])

    def sampling_problem(out, prompt, real_rows) -> str | None:
        step_logits = torch.stack([
            torch.stack([logits_alone(impl, args, torch.cat([row, out[b, width:width + step].to(row.device)]))[-1]
                         for step in range(new)]) for b, row in enumerate(real_rows)])  # (batch, steps, vocab)
        rules = dict(prompt=prompt, eos_token_id=None, temperature=temperature, seed=seed, max_new_tokens=new)
        return follow_rules(rules, out.cpu(), step_logits.cpu(),
                            lambda logits: impl.run_next_token_distribution(logits, temperature).cpu(), own=True)

    try:
        check_rows(impl, oracle, args, "sampling, left padding",
                   lambda bound: generate(bound, args, ids, new, mask, temperature=temperature, seed=seed), judge,
                   stands_on=CACHED)
    except Mismatch:
        # Your sampling breaks the rule without any padding too: the generate item pays for that.
        unpadded = torch.stack([torch.cat([row, row, row, row, row])[:width] for row in rows])
        try:
            broken = sampled_rule_broken(unpadded)
        except Exception:  # noqa: BLE001 - unpadded sampling that crashes is broken too
            broken = "it crashes"
        if not broken:
            raise
