"""Generation: prefill the prompt, then one token per step through the KV cache; seeded sampling; eos.

float32 weights throughout (SPEC §4.1). Generation is a composite (SPEC §4.6): its tokens pass
when they equal the reference's, OR the tokens that the reference decoding rules (first argmax;
the SPEC next-token distribution sampled with `torch.multinomial(probs, 1, generator=g)`, one
call per step for the batch; eos bookkeeping) pick from the submission's OWN logits, from its
own KV cache or its own full forward. A wrong LM, softmax or cache is then charged to its own
item, not to generation.
"""

import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from lmgrade.core.compare import Mismatch
from lmgrade.catalogue.diagnosis import diagnose_measurement, explained

from .checks import count_flops, ground_truth, on
from .strategies import LMConfig, lm_weights, randint, seeds
from .test_decoding import expected_distribution

# (temperature, top_k, top_p): greedy, plain sampling, and sampling through each filter.
SAMPLINGS = [(0.0, None, None), (1.0, None, None), (0.7, 5, None), (1.5, None, 0.9), (1.0, 8, 0.6)]
samplings = st.sampled_from(SAMPLINGS)
# Where attention is written with einx, every cached step at a new length is a new shape that einx
# traces once (tens of ms): the drawn cases share one model shape (two layers, a short context) and
# one batch size, and differ in weights, prompts and decoding settings.
GEN_CONFIG = LMConfig(vocab_size=37, context_length=10, d_model=16, num_layers=2, num_heads=2, d_ff=24, rope_theta=10000.0)
GEN_BATCH = 2
PROMPT_LENGTHS = st.sampled_from([1, 4])
LM_KEYS = ("vocab_size", "context_length", "d_model", "num_layers", "num_heads", "d_ff", "rope_theta", "weights")
# A token counts as the reference rule's choice on the submission's own logits when float32 could
# have picked it: its logit within this fraction of max|logits| of the top one (greedy), or its
# multinomial score p/q within this fraction of the best (sampling). The LM's tolerance row is
# 1e-4 relative; cached and full forwards differ by about as much.
NEAR_TIE = 1e-3
# Each example runs the model many times: shrinking a failure (hundreds of runs) would take minutes,
# and the examples are already short descriptions (a seed and a few choices), so failures are
# reported as found.
no_shrinking = settings(phases=[Phase.explicit, Phase.reuse, Phase.generate])


def gen_args(config, batch, prompt_length, max_new_tokens, seed, temperature=0.0, top_k=None, top_p=None,
             eos_token_id=None, sample_seed=0):
    """Keyword arguments of run_generate: float64 CPU weights, a random prompt, the decoding settings."""
    return dict(
        **config.args(), weights=lm_weights(config, seed), prompt=randint(config.vocab_size, (batch, prompt_length), seed + 100),
        max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, eos_token_id=eos_token_id,
        seed=sample_seed,
    )


@st.composite
def generate_cases(draw, sampling=samplings):
    """run_generate arguments from a small description: config, batch, prompt length, how many new tokens, sampling."""
    config, batch, prompt_length = GEN_CONFIG, GEN_BATCH, draw(PROMPT_LENGTHS)
    room = config.context_length - prompt_length
    max_new_tokens = draw(st.sampled_from([1, 4, room]))  # `room` generates right up to the context length
    temperature, top_k, top_p = draw(sampling)
    return gen_args(config, batch, prompt_length, max_new_tokens, draw(seeds), temperature, top_k, top_p,
                    sample_seed=draw(seeds))


def describe(args: dict) -> str:
    settings = {k: args[k] for k in ("max_new_tokens", "temperature", "top_k", "top_p", "eos_token_id", "seed")}
    return f"prompt {tuple(args['prompt'].shape)}, " + ", ".join(f"{k}={v}" for k, v in settings.items())


def same_tokens(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a.cpu(), b.cpu())


def assert_same_tokens(got: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    got, expected = got.cpu(), expected.cpu()
    if got.shape != expected.shape:
        raise Mismatch(f"{what}: shape {tuple(got.shape)}, expected {tuple(expected.shape)}\n"
                       f"got:\n{got.tolist()}\nexpected:\n{expected.tolist()}")
    if not torch.equal(got, expected):
        row, position = (int(i) for i in (got != expected).nonzero()[0])
        raise Mismatch(f"{what}: first difference at row {row}, position {position}: got {int(got[row, position])}, "
                       f"expected {int(expected[row, position])}\ngot row:      {got[row].tolist()}\n"
                       f"expected row: {expected[row].tolist()}")


def generated(bound, args: dict, device: torch.device = torch.device("cpu")) -> torch.Tensor:
    """bound's tokens for the float64 description args, given float32 weights on device."""
    return bound.run_generate(**on(args, device=device))


def check_tokens_against_reference(impl, oracle, args: dict, device: torch.device) -> None:
    """impl's tokens equal the reference's, or the reference rules' choices on impl's own logits.

    A mismatch with both names the catalogued bug it matches.
    """
    got = generated(impl, args, device)
    try:
        assert_same_tokens(got, reference_tokens(oracle, args, device), f"generated tokens vs the reference ({describe(args)})")
    except Mismatch as error:
        own = own_logits_verdict(impl, on(args, device=device), got)
        if own is None:
            return  # the reference rules on its own logits: a wrong LM or cache is charged in its own item
        error.args = (f"{error.args[0]}\nand vs the reference decoding rules applied to your own parts: {own}",)
        raise explained(error, lambda: diagnose_measurement(oracle, "run_generate", lambda bound: generated(bound, args, device),
                                                            got, same_tokens))


def reference_tokens(oracle, args: dict, device: torch.device) -> torch.Tensor:
    """The reference's tokens for float64 args (rounded to the float32 values the implementation gets).

    On the CPU (and for greedy decoding anywhere) through `oracle.expected`, so the handout's
    snapshots hold them. Sampled tokens on CUDA come from the CUDA generator, whose stream
    differs from the CPU's: they need the live reference on the same device.
    """
    truth = ground_truth(args)
    if device.type == "cpu" or args["temperature"] == 0:
        return oracle.expected("run_generate", truth)["output"]
    live = getattr(oracle, "reference", None)
    if live is None:
        pytest.skip("sampled tokens on CUDA are compared with the live reference only (the handout's snapshots are CPU)")
    return live.run_generate(**on(truth, torch.float64, device))


# --- the reference decoding rules on the submission's own logits ------------------------------


def own_logits_verdict(impl, args: dict, got: torch.Tensor, lm_keys=LM_KEYS, full_lm: str = "run_transformer_lm",
                       cached_lm: str = "run_transformer_lm_incremental") -> str | None:
    """None if `got` is what the reference rules pick, step by step, from impl's own parts; else why not.

    args: the impl's arguments (float32, on the device). The logits of each step come from
    impl's own KV cache (run_transformer_lm_incremental, fed as generation feeds it: the prompt,
    then one token at a time) or from its own full forward on the sequence so far; the
    distribution is the SPEC's (the reference rules) or impl's own run_next_token_distribution.
    Any pairing passes; a part that is not implemented (or crashes) passes nothing.
    """
    prompt = args["prompt"]
    if got.dim() != 2 or got.shape[0] != prompt.shape[0] or got.shape[1] <= prompt.shape[1]:
        return f"expected (batch, prompt_length + up to {args['max_new_tokens']}) tokens, got shape {tuple(got.shape)}"
    got = got.to(prompt.device)
    lm = {k: args[k] for k in lm_keys}
    P, new = prompt.shape[1], got.shape[1] - prompt.shape[1]

    def cached() -> torch.Tensor:
        logits = getattr(impl, cached_lm)(**lm, in_indices=got[:, : P + new - 1], chunk_sizes=[P] + [1] * (new - 1))
        return logits[:, P - 1 :]

    def full() -> torch.Tensor:
        return torch.stack([getattr(impl, full_lm)(**lm, in_indices=got[:, : P + step])[:, -1] for step in range(new)], dim=1)

    def reference_rules(logits: torch.Tensor) -> torch.Tensor:
        return expected_distribution(logits.double().cpu(), args["temperature"], args["top_k"], args["top_p"]).to(logits.device)

    def own_rules(logits: torch.Tensor) -> torch.Tensor:
        return impl.run_next_token_distribution(logits=logits, temperature=args["temperature"], top_k=args["top_k"],
                                                top_p=args["top_p"]).detach()

    reasons = []
    for name, source in (("your KV cache", cached), ("your full forward", full)):
        try:
            step_logits = source().detach()
        except Exception as error:  # noqa: BLE001 - that source gives no logits; the other may
            reasons.append(f"{name}: {type(error).__name__}")
            continue
        for rules, distribution in (("the SPEC distribution", reference_rules), ("your run_next_token_distribution", own_rules)):
            try:
                reason = follow_rules(args, got, step_logits, distribution, own=distribution is own_rules)
            except Exception as error:  # noqa: BLE001 - e.g. the submission's distribution is not implemented
                reason = f"{type(error).__name__}"
            if reason is None:
                return None
            reasons.append(f"with the logits of {name} and {rules}, {reason}")
    return "; ".join(reasons[:2])


def follow_rules(args: dict, got: torch.Tensor, step_logits: torch.Tensor, distribution, own: bool) -> str | None:
    """Walk the generated tokens: step s must be the reference rules' choice from step_logits[:, s].

    Greedy takes the first argmax (of the logits, or of the submission's own distribution);
    sampling draws `torch.multinomial(probs, 1, generator=g)` for the whole batch each step,
    probs = distribution(logits), g seeded once with `seed` on the device. A token float32
    could have picked (a near-tie, NEAR_TIE) counts too. Finished rows hold eos; generation
    stops when every row has produced eos, else after max_new_tokens.
    """
    prompt, eos, temperature = args["prompt"], args["eos_token_id"], args["temperature"]
    device, (batch, P) = prompt.device, prompt.shape
    new = got.shape[1] - P
    if not torch.equal(got[:, :P], prompt):
        return "the result does not start with the prompt"
    generator = torch.Generator(device).manual_seed(args["seed"])
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    for step in range(args["max_new_tokens"]):
        if step == new:
            return f"it stopped after {new} new tokens, but not every row had produced eos"
        logits = step_logits[:, step]
        token = got[:, P + step]
        probs = distribution(logits)
        state = generator.get_state()
        if temperature == 0:
            values = (probs if own else logits).double()
            choice = values.argmax(-1)
            near = values.gather(-1, token[:, None])[:, 0] >= values.max(-1).values - NEAR_TIE * values.abs().max()
        else:
            choice = torch.multinomial(probs, 1, generator=generator)[:, 0]
            near = choice == token
            replay = torch.Generator(device).set_state(state)
            scores = probs / torch.empty_like(probs).exponential_(1, generator=replay)
            if torch.equal(scores.argmax(-1), choice):  # torch's multinomial(…, 1) is argmax(p / Exp(1)) here
                near = scores.gather(-1, token[:, None])[:, 0] >= scores.max(-1).values * (1 - NEAR_TIE)
        for row in range(batch):
            if finished[row]:
                if int(token[row]) != eos:
                    return f"row {row} produced eos {eos} earlier, so its token at position {P + step} must be eos, got {int(token[row])}"
            elif int(token[row]) != int(choice[row]) and not bool(near[row]):
                rule = "the first argmax" if temperature == 0 else "the seeded multinomial draw"
                return (f"row {row}, position {P + step}: got token {int(token[row])}, {rule} is {int(choice[row])} "
                        f"(p = {float(probs[row, int(token[row])]):.4g} vs {float(probs[row, int(choice[row])]):.4g})")
        if eos is not None:
            finished |= token == eos
            if bool(finished.all()):
                if new > step + 1:
                    return f"every row had produced eos at position {P + step}, yet it generated {new - step - 1} more"
                return None
    if new > args["max_new_tokens"]:
        return f"{new} new tokens, more than max_new_tokens={args['max_new_tokens']}"
    return None


def expected_with_eos(without_eos: torch.Tensor, prompt_length: int, eos: int) -> torch.Tensor:
    """What the run with eos must return, given the run without eos (same seed, same everything).

    A row keeps its tokens up to and including its first eos, then holds eos. Sampling draws
    one multinomial for the whole batch every step, so a row that has not finished gets the
    same tokens as without eos. Generation stops once every row has produced eos.
    """
    new = without_eos[:, prompt_length:].clone()
    finished_at = []
    for row in new:
        hits = (row == eos).nonzero().flatten()
        finished_at.append(int(hits[0]) if len(hits) else None)
        if len(hits):
            row[int(hits[0]):] = eos
    if all(step is not None for step in finished_at):
        new = new[:, : max(finished_at) + 1]
    return torch.cat([without_eos[:, :prompt_length], new], dim=1)


def is_value_error(error: BaseException) -> bool:
    """A ValueError, also after crossing the process boundary (--isolate re-raises it as "ValueError: …")."""
    return isinstance(error, ValueError) or str(error).startswith("ValueError:")


def _flops(bound, **kwargs) -> int:
    flops, error = count_flops(bound, "run_generate", **kwargs)
    if error is not None:
        raise error
    return flops


# --- properties ---------------------------------------------------------------------------------


@no_shrinking
@given(case=generate_cases())
def test_generation_returns_the_prompt_then_max_new_tokens_valid_token_ids(impl, device, case):
    out = generated(impl, case, device)
    batch, prompt_length = case["prompt"].shape
    assert out.shape == (batch, prompt_length + case["max_new_tokens"]), (
        f"without eos the result is (batch, prompt_length + max_new_tokens) = {(batch, prompt_length + case['max_new_tokens'])}, "
        f"got {tuple(out.shape)} ({describe(case)})")
    assert out.device.type == device.type and not out.is_floating_point(), f"token ids on {device.type}, got {out.dtype} on {out.device}"
    assert_same_tokens(out[:, :prompt_length], case["prompt"], "the result must start with the prompt")
    assert bool(((out >= 0) & (out < case["vocab_size"])).all()), f"token ids outside [0, vocab_size): {out.tolist()}"


@no_shrinking
@given(case=generate_cases(sampling=st.just(SAMPLINGS[0])))
def test_greedy_generation_takes_the_first_argmax_of_its_own_logits_every_step(impl, case):
    """Each new token is the first argmax of the logits of the sequence so far, from the submission's own
    model (its KV cache or its full forward, through the SPEC rules or its own distribution): the cache is
    used right and positions continue."""
    args = on(case)
    got = impl.run_generate(**args)
    reason = own_logits_verdict(impl, args, got)
    if reason is not None:
        raise Mismatch(f"greedy generation vs the first argmax of your own logits at every step ({describe(case)}): {reason}")


@no_shrinking
@given(case=generate_cases(), row=st.integers(0, GEN_BATCH - 1), step=st.integers(0, 3))
def test_a_row_that_produced_eos_holds_eos_and_generation_stops_when_every_row_has(impl, case, row, step):
    """eos = a token the run without eos produced, so some row finishes; the rest is bookkeeping on that run."""
    without_eos = generated(impl, case)
    prompt_length = case["prompt"].shape[1]
    step = min(step, case["max_new_tokens"] - 1)
    eos = int(without_eos[row, prompt_length + step])
    with_eos = generated(impl, dict(case, eos_token_id=eos))
    assert_same_tokens(with_eos, expected_with_eos(without_eos, prompt_length, eos),
                       f"generation with eos_token_id={eos} vs the run without eos, cut and filled by hand ({describe(case)})")


@pytest.mark.parametrize("temperature, top_k", [(0.0, None), (1.0, 1)], ids=["greedy", "sampled_top_k_1"])
def test_generation_stops_early_when_every_row_has_produced_eos(impl, oracle, temperature, top_k):
    """With lm_head = 0 every logit is equal, so greedy (or top-k 1) picks token 0 in every row at once.

    eos_token_id=0 is a value, not "no eos" (`if eos_token_id:` never stops on token 0).
    """
    args = gen_args(GEN_CONFIG, GEN_BATCH, 4, 5, seed=7, temperature=temperature, top_k=top_k, eos_token_id=0)
    args["weights"]["lm_head.weight"] = torch.zeros_like(args["weights"]["lm_head.weight"])
    expected = torch.cat([args["prompt"], torch.zeros(GEN_BATCH, 1, dtype=torch.long)], dim=1)
    got = generated(impl, args)
    try:
        assert_same_tokens(got, expected, "every row produces eos (token 0) at the first step: the result is the prompt "
                           "plus one column of eos")
    except Mismatch as error:
        own = own_logits_verdict(impl, on(args), got)
        if own is None:
            return  # its own LM or distribution breaks the tie otherwise: charged in their items (SPEC §4.6)
        error.args = (f"{error.args[0]}\nand vs the reference decoding rules applied to your own parts: {own}",)
        raise explained(error, lambda: diagnose_measurement(oracle, "run_generate", lambda bound: generated(bound, args),
                                                            got, same_tokens))


@no_shrinking
@given(prompt_length=PROMPT_LENGTHS, seed=seeds)
def test_generating_up_to_the_context_length_works_and_one_more_token_raises_before_any_work(impl, oracle, prompt_length, seed):
    config = GEN_CONFIG
    room = config.context_length - prompt_length
    out = generated(impl, gen_args(config, GEN_BATCH, prompt_length, room, seed))
    assert out.shape == (GEN_BATCH, config.context_length)
    too_long = on(gen_args(config, GEN_BATCH, prompt_length, room + 1, seed))

    def reaction(bound) -> str:
        flops, error = count_flops(bound, "run_generate", **too_long)
        if error is None:
            return "returned tokens"
        if not is_value_error(error):
            raise error
        return "raised ValueError after running the model" if flops else "raised ValueError"

    got = reaction(impl)
    if got != "raised ValueError":
        raise explained(Mismatch(f"prompt_length + max_new_tokens = {config.context_length + 1} > context_length: must raise "
                                 f"ValueError before running the model, but it {got}"),
                        lambda: diagnose_measurement(oracle, "run_generate", reaction, got, str.__eq__))


def own_cached_step_flops(impl, args: dict) -> int:
    """FLOPs of one cached step of the submission's own KV cache after the whole sequence but one token."""
    lm_args = {k: args[k] for k in ("vocab_size", "context_length", "d_model", "num_layers", "num_heads", "d_ff", "rope_theta",
                                    "weights")}
    length = args["context_length"]
    tokens = torch.arange(length).remainder(args["vocab_size"]).expand(args["prompt"].shape[0], length).contiguous()
    with torch.no_grad():
        both, error = count_flops(impl, "run_transformer_lm_incremental", **lm_args, in_indices=tokens, chunk_sizes=[length - 1, 1])
        prefill, _ = count_flops(impl, "run_transformer_lm_incremental", **lm_args, in_indices=tokens[:, :-1], chunk_sizes=[length - 1])
    return both - prefill if error is None else 0


def test_one_more_generated_token_costs_one_cached_step_not_a_rerun_of_the_sequence(impl, oracle):
    """FLOPs(n + 1 new tokens) − FLOPs(n new tokens) ≈ one token through the model, attending over the cache.

    Re-feeding the whole sequence each step costs about `length` times as much; the bound allows
    2× the analytical count of a cached step, so any implementation that reuses the cache passes.
    """
    config, batch, prompt_length = GEN_CONFIG, GEN_BATCH, 4
    new = config.context_length - prompt_length - 1
    args = on(gen_args(config, batch, prompt_length, new, seed=5))

    def step_flops(bound) -> int:
        with torch.no_grad():
            return _flops(bound, **dict(args, max_new_tokens=new + 1)) - _flops(bound, **args)

    step = step_flops(impl)
    d, f, L, V = config.d_model, config.d_ff, config.num_layers, config.vocab_size
    per_token_matmuls = 2 * (L * (4 * d * d + 3 * d * f) + d * V)
    attention_over_cache = 2 * L * 2 * config.context_length * d
    analytical = batch * (per_token_matmuls + attention_over_cache)
    if step > 2 * analytical and step <= 2 * own_cached_step_flops(impl, args):
        return  # generation does take one cached step; the step of your own KV cache is what costs (charged there)
    if step > 2 * analytical:
        raise explained(Mismatch(
            f"generating one more token cost {step} FLOPs; one cached step needs about {analytical} (re-running the "
            f"{config.context_length - 1}-token sequence costs about {batch * (config.context_length - 1) * per_token_matmuls}): "
            "feed only the new token and let the KV cache hold the rest"),
            lambda: diagnose_measurement(oracle, "run_generate", step_flops, step, int.__eq__))


@no_shrinking
@given(case=generate_cases(sampling=st.sampled_from(SAMPLINGS[1:])))
def test_sampling_depends_only_on_the_seed_not_on_the_global_torch_rng(impl, oracle, device, case):
    """Two runs under different global seeds give the same tokens: sampling uses torch.Generator(device).manual_seed(seed)."""
    args = on(case, device=device)

    def under_global_seeds(bound) -> list[torch.Tensor]:
        forked = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=forked):  # the global state is restored afterwards
            runs = []
            for global_seed in (1, 2):
                torch.manual_seed(global_seed)
                runs.append(bound.run_generate(**args))
        return runs

    runs = under_global_seeds(impl)
    try:
        assert_same_tokens(runs[1], runs[0], f"tokens under global seed 2 vs global seed 1 ({describe(case)}): use the seeded "
                           "generator, never the global RNG")
    except Mismatch as error:
        raise explained(error, lambda: diagnose_measurement(
            oracle, "run_generate", lambda bound: not same_tokens(*under_global_seeds(bound)), True, bool.__eq__))


# (batch, prompt_length, max_new_tokens, seed, (temperature, top_k, top_p), eos_token_id, sampling seed)
FIXED = [
    (GEN_BATCH, 4, 6, 0, (0.0, None, None), None, 1),  # greedy, right up to the context length
    (GEN_BATCH, 1, 9, 1, (1.0, None, None), None, 2),  # a prompt of one token, up to the context length
    (GEN_BATCH, 4, 4, 2, (0.7, 5, None), None, 3),
    (GEN_BATCH, 4, 6, 3, (1.5, None, 0.9), None, 4),
    (GEN_BATCH, 4, 6, 4, (1.0, 8, 0.6), None, 5),
    (1, 1, 2, 5, (1.0, None, None), None, 6),  # a batch of one row
    (GEN_BATCH, 4, 6, 6, (0.0, None, None), 17, 7),  # both rows produce eos: stops after 2 of 6 new tokens
    (GEN_BATCH, 4, 6, 6, (0.0, None, None), 6, 7),  # row 0 finishes at once and is filled with eos; row 1 at the last step
    (GEN_BATCH, 1, 9, 7, (1.0, None, None), 22, 8),  # sampled; stops after 7 of 9 new tokens
    (GEN_BATCH, 4, 6, 8, (0.7, 5, 0.9), 27, 9),  # sampled through both filters; stops after 5 of 6
    (GEN_BATCH, 4, 6, 9, (1.0, None, None), None, 0),  # seed=0 is a seed, not "no seed" (`if seed:`)
    (GEN_BATCH, 1, 9, 10, (1.5, None, None), None, 0),
]


@pytest.mark.parametrize("batch, prompt_length, new, seed, sampling, eos, sample_seed", FIXED)
def test_generation_matches_reference_token_for_token_on_fixed_cases(impl, oracle, device, batch, prompt_length, new, seed,
                                                                     sampling, eos, sample_seed):
    args = gen_args(GEN_CONFIG, batch, prompt_length, new, seed, *sampling, eos_token_id=eos, sample_seed=sample_seed)
    check_tokens_against_reference(impl, oracle, args, device)


# A crash that the submission's own LM also raises is charged to the LM, not here (SPEC §4.6).
from .checks import excuse_crashes_of_the_own_lm  # noqa: E402

# Shown with a failure of this file's tests: what it usually means, and a question to ask yourself.
HINT = (
    "A generation failure is usually the prompt not returned, the next token fed at the wrong position, "
    "eos handling (finished rows are filled with eos), or sampling not through one seeded "
    "torch.Generator."
    "\n"
    "Ask yourself: do you draw exactly one torch.multinomial per step for the whole batch, with the "
    "generator seeded once?"
)

excuse_crashes_of_the_own_lm(globals())
