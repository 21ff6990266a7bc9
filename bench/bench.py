"""Benchmark the grader and the reference model against transformers' Llama (not a test).

    python -m bench.bench [--quick] [--json PATH] [--plot PATH] [--threads N] [--repeats N]
                          [--skip-grading] [--skip-models] [--skip-selfcheck]

Three parts, all measured in this run, printed as one table with every figure next to its target:

1. Grading (bench/grading.py): wall time, CPU time and peak memory of grading the reference
   in a child pytest, two Hypothesis profiles × a cold and a warm oracle cache.
2. Speed (bench/models.py): the reference TransformerLM vs transformers' LlamaForCausalLM
   (eager, float32, CPU, the same weights): forward+backward and cached greedy decoding.
3. FLOPs (bench/flops.py): matmul FLOPs per cached decoded token against the analytical count.
4. Self-check (bench/selfcheck.py): `lmgrade selfcheck`'s wall time, its seconds per catalogued
   bug and its peak memory (not with --quick); --plot draws its curve.

bench/table.py prints the report. The sizes and the targets live in models.py and table.py.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

_START = time.perf_counter()  # before torch and transformers are imported

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # also runnable as `python bench/bench.py`
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402

import torch  # noqa: E402

from bench.grading import bench_all_grading  # noqa: E402
from bench.selfcheck import bench_selfcheck, plot_scaling  # noqa: E402
from bench.models import (  # noqa: E402
    DECODE_SIZES, FWD_BWD_SIZES, QUICK_DECODE, QUICK_FWD_BWD, TARGET_SIZES, bench_decode, bench_fwd_bwd,
)
from bench.table import machine, print_report  # noqa: E402


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def summarise(result: dict) -> dict:
    """The JSON keys: the targets hold at every target size, so the worst size is the figure."""
    grading = result["grading"]
    warm = {g["profile"]: g for g in grading if g["cache"] == "warm"}
    cold = {g["profile"]: g for g in grading if g["cache"] == "cold"}
    judged_fwd = [f for f in result["fwd_bwd"] if f["target"]]
    return {
        "grade_seconds_default": warm["fast"]["seconds"] if warm else None,
        "grade_seconds_grading_profile": warm["grading"]["seconds"] if warm else None,
        "grade_seconds_default_cold_cache": cold["fast"]["seconds"] if cold else None,
        "grade_seconds_grading_profile_cold_cache": cold["grading"]["seconds"] if cold else None,
        "grade_cpu_seconds_default": warm["fast"]["cpu_seconds"] if warm else None,
        "grade_cpu_seconds_grading_profile": warm["grading"]["cpu_seconds"] if warm else None,
        "grade_peak_rss_mib": max((g["peak_rss_mib"] for g in grading), default=None),
        "grade_tests": grading[0]["tests"] if grading else None,
        # Every selected test passed (a --quick subset scores only its own rubric items).
        "grade_clean": all(g["pytest_exit_code"] == 0 and not g["failed"] for g in grading) if grading else None,
        "fwd_bwd_ratio_vs_hf": min((f["ratio"] for f in judged_fwd), default=None),
        "decode_ratio_vs_hf": min((d["ratio"] for d in result["decode"]), default=None),
        "decode_loop_ratio_vs_hf": min((d["loop_ratio"] for d in result["decode"]), default=None),
        "fwd_bwd_cpu_ratio_vs_hf": min((f["cpu_ratio"] for f in judged_fwd), default=None),
        "decode_cpu_ratio_vs_hf": min((d["cpu_ratio"] for d in result["decode"]), default=None),
        # The ratio furthest from 1 (the target is a band around it).
        "flops_per_cached_token_ratio": max((d["flops_ratio"] for d in result["decode"]), key=lambda v: abs(v - 1), default=None),
        "hf_flops_per_cached_token_ratio": max((d["hf_flops_ratio"] for d in result["decode"]), key=lambda v: abs(v - 1), default=None),
        "selfcheck_seconds": (result.get("selfcheck") or {}).get("seconds"),
        "selfcheck_seconds_per_bug": (result.get("selfcheck") or {}).get("seconds_per_bug"),
        "selfcheck_peak_rss_mib": (result.get("selfcheck") or {}).get("peak_rss_mib"),
        "bench_seconds": time.perf_counter() - _START,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes, tokens and repeats; grade a subset of the tests")
    parser.add_argument("--json", metavar="PATH", help="write every figure as JSON to PATH")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for parts (2) and (3) (default 1; the grading child uses torch's default)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement (default 3 quick, 7 full)")
    parser.add_argument("--skip-grading", action="store_true", help="skip part (1)")
    parser.add_argument("--skip-models", action="store_true", help="skip parts (2) and (3)")
    parser.add_argument("--skip-selfcheck", action="store_true", help="skip part (4) (--quick skips it too)")
    parser.add_argument("--plot", metavar="PATH", default="bench/out/selfcheck_scaling.png",
                        help="where part (4) draws selfcheck's time against the number of bugs (needs matplotlib)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 7)
    torch.set_num_threads(args.threads)

    result = dict(
        command=["python", "-m", "bench.bench", *(argv if argv is not None else sys.argv[1:])],
        quick=args.quick, threads=args.threads, repeats=repeats, machine=machine(), load_before=os.getloadavg()[0],
        target_sizes=list(TARGET_SIZES),
    )
    result["grading"] = []
    if not args.skip_grading:
        with tempfile.TemporaryDirectory(prefix="bench-oracle-") as tmp:
            result["grading"] = bench_all_grading(args.quick, Path(tmp), log)

    result["fwd_bwd"], result["decode"] = [], []
    if not args.skip_models:
        for name in QUICK_FWD_BWD if args.quick else FWD_BWD_SIZES:
            result["fwd_bwd"].append(dict(bench_fwd_bwd(name, repeats), target=name in TARGET_SIZES))
            log(f"fwd+bwd {name}: ratio {result['fwd_bwd'][-1]['ratio']:.2f}")
        for name in QUICK_DECODE if args.quick else DECODE_SIZES:
            result["decode"].append(bench_decode(name, args.quick, repeats))
            log(f"decode {name}: ratio {result['decode'][-1]['ratio']:.2f}")

    result["selfcheck"] = None
    if not (args.skip_selfcheck or args.quick):
        result["selfcheck"] = bench_selfcheck(ROOT, log)
        result["selfcheck"]["plot"] = str(plot_scaling(result["selfcheck"], Path(args.plot)) or "")
    result["load_after"] = os.getloadavg()[0]
    result["summary"] = summarise(result)
    print_report(result)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({**result["summary"], "details": result}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
