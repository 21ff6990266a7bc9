"""Run the visible tests once per catalogued bug, recording every measurement its failures reach.

`python -m lmgrade.catalogue.record_runs OUT [--bugs a,b] [--all-tests] [--keep-json DIR] [--jobs N]`

Each bug variant is graded like a submission (pytest in a child process, Hypothesis profile
"fast": the handout's default, so its failures happen on the examples a student sees) on the
visible tests of its own item, with lmgrade.catalogue.recording active: every
`diagnose_measurement` reached records what every candidate bug measures there. By default only
the test files that hold a measurement site run; --all-tests runs all of them (and --keep-json
keeps each run's outcomes, with the grader's messages, as DIR/<bug>.json). The records of all
runs are merged into OUT (see lmgrade/core/offline_diagnoses.py); with --snapshots, the reference
outputs those runs asked for (paths only a failure takes: fallbacks, checks of the bug's own parts)
are added to that snapshot file, with the bugs' outputs on them. Instructor-only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lmgrade.catalogue.bugs import BUGS
from lmgrade.catalogue.variants import materialise
from lmgrade.core.offline_diagnoses import BugData
from lmgrade.core.rubric import load_rubric

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SITES = ("diagnose_measurement", "diagnosed(")


def visible_tests(bug, all_tests: bool, project_root: Path = PROJECT_ROOT) -> list[str]:
    """The visible test selectors of the bug's own item (those whose file holds a measurement site, unless all_tests)."""
    rubric = load_rubric()
    item = next((i for i in rubric.items if i.id == bug.item), None)
    if item is None or not item.visible:
        return []
    return [t for t in item.tests if all_tests or any(s in (project_root / t.split("::")[0]).read_text() for s in SITES)]


def reference_outputs_of(partial: Path) -> Path:
    """Where the bug's run records the reference outputs it asked for, beside its measurements."""
    return partial.with_name(partial.stem + ".reference.safetensors")


def merge_reference_outputs(paths: list[Path], out: Path) -> int:
    """Add the reference outputs recorded in paths to the snapshot file out (a case's values are the same
    wherever they were recorded); the number of tensors added."""
    from safetensors.torch import load_file, save_file

    merged = load_file(str(out)) if out.exists() else {}
    before = len(merged)
    for path in paths:
        if path.exists():
            for name, t in load_file(str(path)).items():
                merged.setdefault(name, t)
    if len(merged) > before:
        save_file(merged, str(out))
    return len(merged) - before


def run_bug(bug, workdir: Path, all_tests: bool, keep_json: Path | None, timeout: float = 900) -> Path | None:
    tests = visible_tests(bug, all_tests)
    if not tests:
        return None
    submission = materialise(bug, workdir / "variants")
    partial = workdir / "records" / f"{bug.name}.safetensors"
    partial.parent.mkdir(parents=True, exist_ok=True)
    # The reference outputs its failures ask for (a fallback comparison, a check of its own parts) are recorded too:
    # without them the handout could not take the same path as the grader.
    reference = reference_outputs_of(partial)
    outcomes = (keep_json / f"{bug.name}.json") if keep_json else workdir / "records" / f"{bug.name}.json"
    env = dict(os.environ, LMGRADE_PROFILE="fast", LMGRADE_RECORD_DIAGNOSES=str(partial), PYTHONDONTWRITEBYTECODE="1",
               OMP_NUM_THREADS="1")
    env["LMGRADE_RECORD_SNAPSHOTS"] = str(reference)
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    command = [sys.executable, "-m", "pytest", *tests, f"--submission={submission}", "-q", "-p", "no:cacheprovider",
               "--per-test-timeout=600", "--no-scorecard", "-p", "lmgrade.catalogue.recording", f"--lmgrade-json={outcomes}"]
    try:
        subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"record_runs: {bug.name} timed out after {timeout:.0f} s", file=sys.stderr)
    shutil.rmtree(submission, ignore_errors=True)
    return partial if partial.exists() else None


def record(out: Path, names: list[str] | None = None, all_tests: bool = False, keep_json: Path | None = None,
           jobs: int | None = None, snapshots: Path | None = None) -> dict:
    """Run the bugs, merge their measurements into out; and the reference outputs they asked for into snapshots."""
    bugs = [b for b in BUGS if names is None or b.name in names]
    jobs = jobs or max(1, min(4, os.cpu_count() or 1))
    if keep_json:
        keep_json.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lmgrade-record-") as tmp:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            partials = list(pool.map(lambda b: run_bug(b, Path(tmp), all_tests, keep_json), bugs))
        merged = BugData()
        for partial in filter(None, partials):
            merged.merge(BugData.load(partial))
        merged.save(out)
        added = merge_reference_outputs([reference_outputs_of(p) for p in partials if p], snapshots) if snapshots else 0
    return {"bugs_run": sum(1 for p in partials if p), "sites": len(merged.sections["measurements"]), "reference_tensors_added": added}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lmgrade.catalogue.record_runs")
    parser.add_argument("out", type=Path)
    parser.add_argument("--bugs", default=None, help="comma-separated bug names (default: all)")
    parser.add_argument("--all-tests", action="store_true")
    parser.add_argument("--keep-json", type=Path, default=None)
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--snapshots", type=Path, default=None, help="the reference outputs file to add to")
    args = parser.parse_args(argv)
    names = args.bugs.split(",") if args.bugs is not None else None
    print(record(args.out, [n for n in names if n] if names is not None else None, args.all_tests, args.keep_json, args.jobs,
                 args.snapshots))
    return 0


if __name__ == "__main__":
    sys.exit(main())
