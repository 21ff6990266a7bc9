"""The report: one table, every figure next to its target, then notes."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from .flops import FLOPS_TOLERANCE

# JSON summary key -> (comparison, target). "±" means |value − 1| ≤ target.
TARGETS = {
    "grade_seconds_default": ("≤", 15.0),
    "grade_seconds_grading_profile": ("≤", 15.0),
    "grade_seconds_default_cold_cache": ("≤", 30.0),
    "grade_seconds_grading_profile_cold_cache": ("≤", 30.0),
    "fwd_bwd_ratio_vs_hf": ("≥", 1.2),
    "decode_ratio_vs_hf": ("≥", 1.5),
    "flops_per_cached_token_ratio": ("±", FLOPS_TOLERANCE),
}


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import transformers

    return dict(cpu=cpu, cores=os.cpu_count(), python=platform.python_version(), torch=torch.__version__,
                transformers=transformers.__version__)


def met(key: str, value: float) -> bool:
    op, target = TARGETS[key]
    if op == "±":
        return abs(value - 1.0) <= target
    return value <= target if op == "≤" else value >= target


def target_text(key: str) -> str:
    op, target = TARGETS[key]
    return f"1 ± {target:.0%}" if op == "±" else f"{op} {target:g}"


def verdict(key: str, value: float, quick: bool, grade_clean: bool | None) -> str:
    if key.startswith("grade_") and quick:
        return "subset"  # --quick grades a few files: no verdict on a whole-suite target
    if key.startswith("grade_") and not grade_clean:
        return "no verdict"  # the reference failed a test: the suite did not run as it should
    return "met" if met(key, value) else "MISSED"


def _rows(r: dict) -> list[tuple[str, str, str, str, str]]:
    """(figure, value, target, verdict, detail) for every measured figure."""
    quick, s = r["quick"], r["summary"]
    rows = []

    def judged(key, label, value, fmt, detail):
        rows.append((label, format(value, fmt), target_text(key), verdict(key, value, quick, s["grade_clean"]), detail))

    key_of = {("fast", "warm"): "grade_seconds_default", ("grading", "warm"): "grade_seconds_grading_profile",
              ("fast", "cold"): "grade_seconds_default_cold_cache", ("grading", "cold"): "grade_seconds_grading_profile_cold_cache"}
    for g in r["grading"]:
        judged(key_of[g["profile"], g["cache"]], f"grade, {g['profile']} profile, {g['cache']} oracle cache (wall s)", g["seconds"], ".1f",
               f"{g.get('workers', 1)} pytest process(es); CPU {g['cpu_seconds']:.1f} s; {g['score']:.0f}/{g['total']:.0f}; {g['summary']}")
    if r["grading"]:
        rows.append(("grade, peak memory (MiB, child ru_maxrss)", f"{s['grade_peak_rss_mib']:.0f}", "-", "-",
                     "largest process of the grading tree; max over the gradings above"))
    for f in r["fwd_bwd"]:
        label = f"fwd+bwd {f['size']} {f['batch']}x{f['seq']}, ours ÷ HF tok/s"
        detail = (f"ours {f['ours_tokens_per_s']:.0f}, HF {f['hf_tokens_per_s']:.0f} tok/s; CPU-time ratio {f['cpu_ratio']:.2f}; "
                  f"|Δlogits| {f['max_abs_logit_diff']:.1e}")
        if f["target"]:
            judged("fwd_bwd_ratio_vs_hf", label, f["ratio"], ".2f", detail)
        else:
            rows.append((label, f"{f['ratio']:.2f}", "(none)", "-", detail))
    for d in r["decode"]:
        judged("decode_ratio_vs_hf", f"decode {d['size']} {d['prompt_length']}+{d['new_tokens']}, generate ours ÷ HF", d["ratio"], ".2f",
               f"ours {d['ours_tokens_per_s']:.0f}, HF {d['hf_tokens_per_s']:.0f} tok/s; CPU-time ratio {d['cpu_ratio']:.2f}; "
               f"same tokens: {d['same_tokens']}")
        rows.append((f"decode {d['size']}, bare cached loop ours ÷ HF", f"{d['loop_ratio']:.2f}", "(none)", "-",
                     f"ours {d['ours_loop_tokens_per_s']:.0f}, HF {d['hf_loop_tokens_per_s']:.0f} tok/s; CPU-time ratio {d['loop_cpu_ratio']:.2f}"))
    for d in r["decode"]:
        judged("flops_per_cached_token_ratio", f"FLOPs per cached token {d['size']}, ours ÷ analytical", d["flops_ratio"], ".4f",
               f"analytical {d['analytical_flops_per_token']:.4g}, ours {d['ours_flops_per_token']:.4g}, "
               f"HF ratio {d['hf_flops_ratio']:.4f}; without the cache {d['uncached_last_step_flops_ratio']:.1f}x")
    c = r.get("selfcheck")
    if c:
        per_bug = f"{c['seconds_per_bug']:.2f}" if c["seconds_per_bug"] is not None else "-"
        rows.append((f"selfcheck, {c['bugs']} bugs (wall s)", f"{c['seconds']:.0f}", "-", "-",
                     f"CPU {c['cpu_seconds']:.0f} s; {c['summary']}"))
        rows.append(("selfcheck, wall s per catalogued bug", per_bug, "-", "-",
                     "least-squares slope of wall time against bugs checked" + (f"; plot {c['plot']}" if c.get("plot") else "")))
        rows.append(("selfcheck, peak memory (MiB, child ru_maxrss)", f"{c['peak_rss_mib']:.0f}", "-", "-",
                     "largest single process of the run"))
    return rows


def print_report(r: dict) -> None:
    m = r["machine"]
    print(f"\n== bench: {' '.join(r['command'])}")
    print(f"   {m['cpu']}, {m['cores']} cores; torch {m['torch']} ({r['threads']} thread(s) for the models), transformers {m['transformers']}")
    print(f"   load average (1 min) at start {r['load_before']:.2f}, at end {r['load_after']:.2f}; quick={r['quick']}, "
          f"best of {r['repeats']} timed repeats; ratios are ours ÷ transformers' eager Llama (> 1: the reference is faster)")
    if max(r["load_before"], r["load_after"]) >= 1.5:
        print("   WARNING: other processes were using the CPU; wall times are inflated and ratios are noisy (see the CPU-time ratios).")

    rows = _rows(r)
    header = ("figure", "value", "target", "verdict", "detail")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    print()
    for i, row in enumerate([header, *rows]):
        print("   " + "  ".join([row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:4], widths[1:])), row[4]]))
        if i == 0:
            print("   " + "-" * (sum(widths) + 8 + len("detail")))
    if not r["grading"]:
        print("   (grading skipped: --skip-grading)")
    if not (r["fwd_bwd"] or r["decode"]):
        print("   (models skipped: --skip-models)")

    print("\nNotes")
    if r["quick"] and r["grading"]:
        print(f"   --quick graded a subset of the tests ({r['grading'][0]['tests']}); the grading targets are for the whole suite.")
    for g in r["grading"]:
        for name in g["failed"][:10]:
            print(f"   grading ({g['profile']}, {g['cache']}): failed {name}")
    print("   fwd+bwd: logits, F.cross_entropy, .backward() on one batch, float32, timed alternately with the same weights;")
    print("   decode: reference.generate(temperature=0) vs LlamaForCausalLM.generate(do_sample=False), new tokens/s, prefill included.")
    print("   FLOPs: FlopCounterMode over the cached decode steps after the prefill (matmul-like ops only), mean per token.")
    print(f"   the speed targets are judged at {', '.join(r['target_sizes'])}; bench wall time {r['summary']['bench_seconds']:.0f} s.")
