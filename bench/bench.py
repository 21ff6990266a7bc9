"""Benchmark the grader and the reference model against transformers' Llama (not a test).

    python -m bench.bench [--quick] [--json PATH] [--threads N] [--repeats N] [--skip-grading | --skip-models]

Three parts, all measured in this run:

1. Grading: wall time of `lmgrade.grade.grade(Selection(impl="reference"), profile=...)`, a
   child pytest over the suite, with the default Hypothesis profile ("fast") and the
   "grading" profile, each twice against a fresh oracle cache (lmgrade.oracle.CachingOracle):
   "cold", the first submission a course grades, when the reference computes every expected
   value, and "warm", every later submission, when they are read back. --quick grades only a
   subset of the test files (the table and the JSON say which); the full run grades the
   whole suite.
2. Speed: the reference TransformerLM vs transformers' LlamaForCausalLM (eager attention,
   float32, CPU), same config and the same weights (converted with interop.llama), timed
   interleaved in this process: forward+backward tokens/s at a few sizes, and cached greedy
   decode tokens/s (reference.generate vs LlamaForCausalLM.generate). Every ratio is
   ours ÷ theirs in tokens/s, so > 1 means the reference is faster.
3. FLOPs per decoded token with the KV cache, counted by torch.utils.flop_counter.FlopCounterMode
   (matmul-like ops only), divided by the analytical count

       2·(L·(4·d² + 3·d·d_ff) + d·V) + 2·L·2·keys·d

   (q, k, v, o projections; the three SwiGLU matrices; the lm_head; QKᵀ and weights·V over
   the `keys` cached positions, the new one included). Norms, RoPE, softmax, SiLU and the
   embedding lookup are not matmuls and are counted on neither side.

einx traces every new input shape of the reference's Linear once (tens to hundreds of ms
each): warm-up calls run every timed shape first, so the timed region excludes tracing; the
first-call times are reported separately.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

_START = time.perf_counter()  # before torch and transformers are imported

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # also runnable as `python bench/bench.py`
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import reference  # noqa: E402
from interop import config_from_llama, spec_to_llama  # noqa: E402

# Model sizes for forward+backward: (config, batch, seq).
FWD_BWD_SIZES = {
    "tiny": (dict(vocab_size=512, context_length=256, d_model=64, num_layers=2, num_heads=4, d_ff=192), 8, 64),
    "small": (dict(vocab_size=2048, context_length=256, d_model=256, num_layers=4, num_heads=8, d_ff=704), 4, 128),
    "medium": (dict(vocab_size=8192, context_length=512, d_model=512, num_layers=6, num_heads=8, d_ff=1376), 2, 256),
}
# Sizes for cached greedy decoding: (config, batch, prompt length, new tokens full, new tokens quick).
DECODE_SIZES = {
    "tiny": (FWD_BWD_SIZES["tiny"][0], 1, 16, 128, 32),
    "small": (FWD_BWD_SIZES["small"][0], 1, 16, 128, 32),
}
QUICK_FWD_BWD, QUICK_DECODE = ("tiny", "small"), ("small",)
# --quick grades these files only (both profiles); the full run grades the whole suite.
QUICK_GRADE_TESTS = ["tests/test_linear.py", "tests/hidden/test_linear.py", "tests/test_softmax.py", "tests/hidden/test_softmax.py"]

TARGETS = {
    "grade_seconds_default": ("≤", 60.0),
    "grade_seconds_grading_profile": ("≤", 60.0),
    "grade_seconds_default_cold_cache": ("≤", 60.0),
    "grade_seconds_grading_profile_cold_cache": ("≤", 60.0),
    "fwd_bwd_ratio_vs_hf": ("≥", 1.0),
    "decode_ratio_vs_hf": ("≥", 1.0),
    "flops_per_cached_token_ratio": ("≤", 1.1),
}


# ----------------------------------------------------------------------------- models


def build_pair(spec: dict, seed: int = 0):
    """The reference TransformerLM and a transformers LlamaForCausalLM holding the same weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    ours = reference.TransformerLM(reference.TransformerConfig(**spec))
    hf_config = LlamaConfig(
        vocab_size=spec["vocab_size"],
        hidden_size=spec["d_model"],
        intermediate_size=spec["d_ff"],
        num_hidden_layers=spec["num_layers"],
        num_attention_heads=spec["num_heads"],
        num_key_value_heads=spec["num_heads"],
        max_position_embeddings=spec["context_length"],
        rms_norm_eps=1e-5,
        rope_theta=spec.get("rope_theta", 10000.0),
        tie_word_embeddings=False,
        attn_implementation="eager",
        bos_token_id=None,
        eos_token_id=None,  # generate() never stops early
        pad_token_id=None,
    )
    expected = dict(spec, rope_theta=float(spec.get("rope_theta", 10000.0)))
    if config_from_llama(hf_config) != expected:
        raise RuntimeError(f"the Llama config does not describe the same model: {config_from_llama(hf_config)} != {expected}")
    theirs = LlamaForCausalLM(hf_config)
    theirs.load_state_dict(spec_to_llama(ours.state_dict(), spec["num_heads"]), strict=True)
    return ours.float(), theirs.float()


def timed(fn, clock=time.perf_counter) -> float:
    start = clock()
    fn()
    return clock() - start


def time_interleaved(fns: dict, repeats: int, warmup: int) -> tuple[dict, dict, dict, dict]:
    """(first-call, best, median, best CPU) seconds per function.

    The functions alternate, ABBA, so that drift hits both. The best of the repeats is what the
    ratios use: other processes only ever add time, so the minimum is the least disturbed figure.
    The CPU time (time.process_time, this process only) is the cross-check when the machine is
    shared: with one torch thread it is barely inflated by other processes taking turns.
    """
    first = {name: timed(fn) for name, fn in fns.items()}
    for _ in range(warmup - 1):
        for fn in fns.values():
            fn()
    samples = {name: [] for name in fns}
    cpu = {name: [] for name in fns}
    for r in range(repeats):
        for name in list(fns) if r % 2 == 0 else reversed(list(fns)):
            cpu_start = time.process_time()
            samples[name].append(timed(fns[name]))
            cpu[name].append(time.process_time() - cpu_start)
    best = {name: min(s) for name, s in samples.items()}
    best_cpu = {name: min(s) for name, s in cpu.items()}
    return first, best, {name: statistics.median(s) for name, s in samples.items()}, best_cpu


# ----------------------------------------------------------------------------- forward + backward


def bench_fwd_bwd(name: str, repeats: int) -> dict:
    spec, batch, seq = FWD_BWD_SIZES[name]
    ours, theirs = build_pair(spec)
    ours.train(), theirs.train()
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, spec["vocab_size"], (batch, seq), generator=gen)
    y = torch.randint(0, spec["vocab_size"], (batch, seq), generator=gen)

    with torch.no_grad():  # the first forward at this shape: einx traces it (ours)
        start = time.perf_counter()
        ours_logits = ours(x)
        ours_first = time.perf_counter() - start
        start = time.perf_counter()
        hf_logits = theirs(input_ids=x, use_cache=False).logits
        hf_first = time.perf_counter() - start
    max_diff = (ours_logits - hf_logits).abs().max().item()

    def step_ours():
        ours.zero_grad(set_to_none=True)
        F.cross_entropy(ours(x).flatten(0, 1), y.flatten()).backward()

    def step_theirs():
        theirs.zero_grad(set_to_none=True)
        F.cross_entropy(theirs(input_ids=x, use_cache=False).logits.flatten(0, 1), y.flatten()).backward()

    _, best, median, cpu = time_interleaved({"ours": step_ours, "hf": step_theirs}, repeats=repeats, warmup=2)
    tokens = batch * seq
    return dict(
        size=name, **spec, batch=batch, seq=seq, max_abs_logit_diff=max_diff,
        ours_tokens_per_s=tokens / best["ours"], hf_tokens_per_s=tokens / best["hf"],
        ratio=best["hf"] / best["ours"], ratio_of_medians=median["hf"] / median["ours"], cpu_ratio=cpu["hf"] / cpu["ours"],
        ours_first_forward_s=ours_first, hf_first_forward_s=hf_first,
        ours_best_s=best["ours"], hf_best_s=best["hf"], ours_median_s=median["ours"], hf_median_s=median["hf"],
    )


# ----------------------------------------------------------------------------- decoding


@torch.no_grad()
def ours_generate(model, prompt, new_tokens):
    if hasattr(reference, "generate"):
        return reference.generate(model, prompt, new_tokens, temperature=0.0)
    return ours_greedy_loop(model, prompt, new_tokens)


@torch.no_grad()
def ours_greedy_loop(model, prompt, new_tokens):
    """Cached greedy decoding, the model only: prefill once, then one token per step."""
    cache = model.make_kv_cache()
    logits = model(prompt, kv_cache=cache)
    tokens = [prompt]
    for step in range(new_tokens):
        tokens.append(logits[:, -1].argmax(dim=-1, keepdim=True))
        if step < new_tokens - 1:
            logits = model(tokens[-1], kv_cache=cache)
    return torch.cat(tokens, dim=1)


@torch.no_grad()
def hf_generate(model, prompt, new_tokens):
    return model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens, do_sample=False)


@torch.no_grad()
def hf_greedy_loop(model, prompt, new_tokens):
    """The same loop for transformers' model: its DynamicCache, no generate() machinery."""
    out = model(input_ids=prompt, use_cache=True)
    tokens = [prompt]
    for step in range(new_tokens):
        tokens.append(out.logits[:, -1].argmax(dim=-1, keepdim=True))
        if step < new_tokens - 1:
            out = model(input_ids=tokens[-1], past_key_values=out.past_key_values, use_cache=True)
    return torch.cat(tokens, dim=1)


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
        with FlopCounterMode(display=False) as counter:
            if hf:
                out = model(input_ids=token, past_key_values=cache, use_cache=True)
                logits, cache = out.logits, out.past_key_values
            else:
                logits = model(token, kv_cache=cache)
        per_step.append(counter.get_total_flops())
    return per_step


def bench_decode(name: str, quick: bool, repeats: int) -> dict:
    spec, batch, prompt_len, new_full, new_quick = DECODE_SIZES[name]
    new_tokens = new_quick if quick else new_full
    ours, theirs = build_pair(spec)
    ours.eval(), theirs.eval()
    prompt = torch.randint(0, spec["vocab_size"], (batch, prompt_len), generator=torch.Generator().manual_seed(2))

    fns = {
        "ours": lambda: ours_generate(ours, prompt, new_tokens),
        "hf": lambda: hf_generate(theirs, prompt, new_tokens),
        "ours_loop": lambda: ours_greedy_loop(ours, prompt, new_tokens),
        "hf_loop": lambda: hf_greedy_loop(theirs, prompt, new_tokens),
    }
    first, best, median, cpu = time_interleaved(fns, repeats=repeats, warmup=1)
    same_tokens = torch.equal(ours_generate(ours, prompt, new_tokens), hf_generate(theirs, prompt, new_tokens))

    ours_flops = count_decode_flops(ours, prompt, new_tokens, hf=False)
    hf_flops = count_decode_flops(theirs, prompt, new_tokens, hf=True)
    analytical = [analytical_step_flops(spec, batch, prompt_len + 1 + j) for j in range(new_tokens - 1)]
    with FlopCounterMode(display=False) as counter, torch.no_grad():  # the last step, without the cache
        ours(torch.zeros(batch, prompt_len + new_tokens - 1, dtype=torch.long))
    tokens = batch * new_tokens
    return dict(
        size=name, **spec, batch=batch, prompt_length=prompt_len, new_tokens=new_tokens, same_tokens=same_tokens,
        ours_tokens_per_s=tokens / best["ours"], hf_tokens_per_s=tokens / best["hf"],
        ratio=best["hf"] / best["ours"], ratio_of_medians=median["hf"] / median["ours"], cpu_ratio=cpu["hf"] / cpu["ours"],
        ours_loop_tokens_per_s=tokens / best["ours_loop"], hf_loop_tokens_per_s=tokens / best["hf_loop"],
        loop_ratio=best["hf_loop"] / best["ours_loop"], loop_cpu_ratio=cpu["hf_loop"] / cpu["ours_loop"],
        ours_first_call_s=first["ours"], hf_first_call_s=first["hf"],
        ours_best_s=best["ours"], hf_best_s=best["hf"], ours_median_s=median["ours"], hf_median_s=median["hf"],
        ours_flops_per_token=sum(ours_flops) / len(ours_flops) / batch,
        hf_flops_per_token=sum(hf_flops) / len(hf_flops) / batch,
        analytical_flops_per_token=sum(analytical) / len(analytical) / batch,
        flops_ratio=sum(ours_flops) / sum(analytical),
        hf_flops_ratio=sum(hf_flops) / sum(analytical),
        uncached_last_step_flops_ratio=counter.get_total_flops() / analytical[-1],
    )


# ----------------------------------------------------------------------------- grading


def bench_grading(profile: str, tests: list[str] | None, cache: str, oracle_cache: Path) -> dict:
    from lmgrade.grade import Selection, grade

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with mock.patch.dict(os.environ, LMGRADE_ORACLE_CACHE=str(oracle_cache)):  # the grading child inherits it
        result = grade(Selection(impl="reference"), profile=profile, tests=tests)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # pytest's last line, e.g. "194 passed, 148 skipped in 60.1s"
    lines = [line for line in result.log.splitlines() if re.search(r"\d+ (passed|failed|errors?)\b", line)]
    summary = lines[-1].strip("= ") if lines else "no pytest summary"
    return dict(
        profile=profile, cache=cache, tests="whole suite (tests/)" if tests is None else " ".join(tests),
        seconds=result.seconds, cpu_seconds=cpu, score=result.score, total=result.rubric.total,
        pytest_exit_code=result.pytest_exit_code, summary=summary,
        failed=[line.split()[1] for line in result.log.splitlines() if line.startswith(("FAILED ", "ERROR "))],
    )


# ----------------------------------------------------------------------------- report


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import einx
    import transformers

    return dict(
        cpu=cpu, cores=os.cpu_count(), python=platform.python_version(), torch=torch.__version__,
        transformers=transformers.__version__, einx=einx.__version__,
    )


def verdict(key: str, value: float, quick: bool, grade_clean: bool | None) -> str:
    op, target = TARGETS[key]
    if quick and key.startswith("grade_"):
        return f"(a subset of the tests: no verdict on the target {op} {target:g})"
    if key.startswith("grade_") and not grade_clean:
        return f"(the reference did not pass every test: the suite did not run as it should, no verdict on {op} {target:g})"
    met = value <= target if op == "≤" else value >= target
    return f"{'met' if met else 'MISSED'} (target {op} {target:g})"


def print_model_tables(r: dict) -> None:
    print("\n(2a) Forward+backward, float32 CPU, tokens/s; ratio = ours ÷ HF (> 1: the reference is faster)")
    print("     ratio from wall time; CPU: the same ratio from this process's CPU time, the cross-check under load")
    print(f"   {'size':<7} {'V':>5} {'d':>4} {'L':>2} {'H':>2} {'d_ff':>5} {'BxT':>7} {'ours tok/s':>11} {'HF tok/s':>10} {'ratio':>6} {'CPU':>5}  {'1st fwd ours/HF (s)':>20}  {'|Δlogits|':>9}")
    for f in r["fwd_bwd"]:
        print(
            f"   {f['size']:<7} {f['vocab_size']:>5} {f['d_model']:>4} {f['num_layers']:>2} {f['num_heads']:>2} {f['d_ff']:>5} "
            f"{str(f['batch']) + 'x' + str(f['seq']):>7} {f['ours_tokens_per_s']:>11.0f} {f['hf_tokens_per_s']:>10.0f} {f['ratio']:>6.2f} {f['cpu_ratio']:>5.2f}  "
            f"{f['ours_first_forward_s']:>9.2f}/{f['hf_first_forward_s']:<10.2f}  {f['max_abs_logit_diff']:>9.1e}"
        )

    print("\n(2b) Cached greedy decode, batch 1, new tokens/s (prefill included); ratio = ours ÷ HF")
    print("     generate: reference.generate vs LlamaForCausalLM.generate;  loop: a bare cached argmax loop on each model")
    print(f"   {'size':<7} {'prompt+new':>10} {'ours tok/s':>11} {'HF tok/s':>10} {'ratio':>6} {'CPU':>5}  {'loop ours':>9} {'loop HF':>8} {'ratio':>6} {'CPU':>5}  {'1st call ours/HF (s)':>20}  same tokens")
    for d in r["decode"]:
        print(
            f"   {d['size']:<7} {str(d['prompt_length']) + '+' + str(d['new_tokens']):>10} {d['ours_tokens_per_s']:>11.1f} {d['hf_tokens_per_s']:>10.1f} "
            f"{d['ratio']:>6.2f} {d['cpu_ratio']:>5.2f}  {d['ours_loop_tokens_per_s']:>9.1f} {d['hf_loop_tokens_per_s']:>8.1f} "
            f"{d['loop_ratio']:>6.2f} {d['loop_cpu_ratio']:>5.2f}  "
            f"{d['ours_first_call_s']:>9.2f}/{d['hf_first_call_s']:<10.2f}  {d['same_tokens']}"
        )

    print("\n(3) Matmul FLOPs per cached decode step (FlopCounterMode), mean over the decode steps")
    print("     analytical = 2·(L·(4d² + 3·d·d_ff) + d·V) + 2·L·2·keys·d; ratio = counted ÷ analytical")
    print(f"   {'size':<7} {'analytical':>11} {'ours':>11} {'ratio':>6} {'HF':>11} {'ratio':>6}   without cache (last step)")
    for d in r["decode"]:
        print(
            f"   {d['size']:<7} {d['analytical_flops_per_token']:>11.3e} {d['ours_flops_per_token']:>11.3e} {d['flops_ratio']:>6.3f} "
            f"{d['hf_flops_per_token']:>11.3e} {d['hf_flops_ratio']:>6.3f}   {d['uncached_last_step_flops_ratio']:.1f}x analytical"
        )


def print_table(r: dict) -> None:
    m = r["machine"]
    print(f"\n== bench: {' '.join(r['command'])}")
    print(f"   {m['cpu']}, {m['cores']} cores; torch {m['torch']} ({r['threads']} thread(s)), transformers {m['transformers']}, einx {m['einx']}")
    print(f"   load average (1 min) at start {r['load_before']:.2f}, at end {r['load_after']:.2f}; quick={r['quick']}, best of {r['repeats']} timed repeats")
    if max(r["load_before"], r["load_after"]) >= 1.5:
        print("   WARNING: other processes were using the CPU; wall times are inflated and ratios are noisy.")

    print("\n(1) Grading the reference: wall time of the child pytest (start to exit) and its CPU time (user+sys)")
    print("   oracle cache: cold = the first submission graded (the reference computes every expected value);")
    print("                 warm = every later one (the expected values are read back from the cache)")
    print(f"   {'profile':<10} {'cache':<6} {'wall s':>7} {'CPU s':>7}  {'score':>9}  tests graded  [pytest summary]")
    for g in r["grading"]:
        print(f"   {g['profile']:<10} {g['cache']:<6} {g['seconds']:>7.1f} {g['cpu_seconds']:>7.1f}  {g['score']:>4.0f}/{g['total']:<4.0f}  {g['tests']}  [{g['summary']}]")
        for name in g["failed"][:10]:
            print(f"      failed: {name}")
    if r["quick"] and r["grading"]:
        print("   (--quick: a subset of the test files; the score counts only their rubric items. Run without --quick for the whole suite.)")
    if not r["grading"]:
        print("   skipped (--skip-grading)")

    if r["fwd_bwd"] or r["decode"]:
        print_model_tables(r)
    else:
        print("\n(2), (3) skipped (--skip-models)")

    print("\nSummary (the JSON keys)")
    s = r["summary"]
    for key, value in s.items():
        if value is None:
            print(f"   {key:<34} {'not measured':>9}")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            note = f"  {verdict(key, value, r['quick'], s['grade_clean'])}" if key in TARGETS else ""
            print(f"   {key:<34} {value:>9.3f}{note}")
        else:
            print(f"   {key:<34} {value}")

    print("\nNotes")
    for g in r["grading"]:
        print(f"   grading ({g['profile']}, {g['cache']} oracle cache): the child used {g['cpu_seconds']:.1f} s of CPU in {g['seconds']:.1f} s of wall time")
    for d in r["decode"]:
        print(
            f"   decode {d['size']}: the first reference.generate call took {d['ours_first_call_s']:.2f} s against "
            f"{d['ours_best_s']:.2f} s once warm (einx traces each new Linear input shape once)"
        )
    for f in r["fwd_bwd"]:
        print(f"   fwd+bwd {f['size']}: the first forward took {f['ours_first_forward_s']:.2f} s (einx tracing included); a warm forward+backward {f['ours_best_s']:.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats; grade a subset of the tests (< 2 min)")
    parser.add_argument("--json", metavar="PATH", help="write every figure as JSON to PATH")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for part (2) and (3) (default 1; the grading child uses torch's default)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement (default 3 quick, 7 full)")
    parser.add_argument("--skip-grading", action="store_true", help="skip part (1)")
    parser.add_argument("--skip-models", action="store_true", help="skip parts (2) and (3)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 7)
    torch.set_num_threads(args.threads)

    result = dict(
        command=["python", "-m", "bench.bench", *(argv if argv is not None else sys.argv[1:])],
        quick=args.quick, threads=args.threads, repeats=repeats, machine=machine(), load_before=os.getloadavg()[0],
    )
    start = time.perf_counter()

    result["grading"] = []
    if not args.skip_grading:
        tests = QUICK_GRADE_TESTS if args.quick else None
        with tempfile.TemporaryDirectory(prefix="bench-oracle-") as tmp:
            for profile in ("fast", "grading"):
                oracle_cache = Path(tmp) / profile  # empty: the first grading fills it, the second reads it
                for cache in ("cold", "warm"):
                    result["grading"].append(bench_grading(profile, tests, cache, oracle_cache))
                    print(f"graded ({profile}, {cache} oracle cache) in {result['grading'][-1]['seconds']:.1f} s", file=sys.stderr)

    result["fwd_bwd"] = []
    for name in () if args.skip_models else QUICK_FWD_BWD if args.quick else FWD_BWD_SIZES:
        result["fwd_bwd"].append(bench_fwd_bwd(name, repeats))
        print(f"fwd+bwd {name}: ratio {result['fwd_bwd'][-1]['ratio']:.2f}", file=sys.stderr)
    result["decode"] = []
    for name in () if args.skip_models else QUICK_DECODE if args.quick else DECODE_SIZES:
        result["decode"].append(bench_decode(name, args.quick, repeats))
        print(f"decode {name}: ratio {result['decode'][-1]['ratio']:.2f}", file=sys.stderr)

    result["seconds"] = time.perf_counter() - start
    result["load_after"] = os.getloadavg()[0]
    by_profile = {g["profile"]: g for g in result["grading"] if g["cache"] == "warm"}
    cold = {g["profile"]: g for g in result["grading"] if g["cache"] == "cold"}
    summary = {
        # Worst case over the sizes: the targets must hold at every size.
        "grade_seconds_default": by_profile["fast"]["seconds"] if by_profile else None,
        "grade_seconds_grading_profile": by_profile["grading"]["seconds"] if by_profile else None,
        "grade_seconds_default_cold_cache": cold["fast"]["seconds"] if cold else None,
        "grade_seconds_grading_profile_cold_cache": cold["grading"]["seconds"] if cold else None,
        "grade_cpu_seconds_default": by_profile["fast"]["cpu_seconds"] if by_profile else None,
        "grade_cpu_seconds_grading_profile": by_profile["grading"]["cpu_seconds"] if by_profile else None,
        "grade_tests": result["grading"][0]["tests"] if by_profile else None,
        # Every selected test passed (a --quick subset scores only its own rubric items).
        "grade_clean": all(g["pytest_exit_code"] == 0 and not g["failed"] for g in result["grading"]) if by_profile else None,
        "fwd_bwd_ratio_vs_hf": min((f["ratio"] for f in result["fwd_bwd"]), default=None),
        "decode_ratio_vs_hf": min((d["ratio"] for d in result["decode"]), default=None),
        "decode_loop_ratio_vs_hf": min((d["loop_ratio"] for d in result["decode"]), default=None),
        "fwd_bwd_cpu_ratio_vs_hf": min((f["cpu_ratio"] for f in result["fwd_bwd"]), default=None),
        "decode_cpu_ratio_vs_hf": min((d["cpu_ratio"] for d in result["decode"]), default=None),
        "flops_per_cached_token_ratio": max((d["flops_ratio"] for d in result["decode"]), default=None),
        "hf_flops_per_cached_token_ratio": max((d["hf_flops_ratio"] for d in result["decode"]), default=None),
        "bench_seconds": time.perf_counter() - _START,
    }
    result["summary"] = summary
    print_table(result)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({**summary, "details": result}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
