"""`lmgrade selfcheck`: the grader grades itself.

One check each, run in parallel (child pytest processes through `lmgrade.grading.grade.grade`):

- the reference, on the whole suite: full marks on every item;
- the stubs, on the whole suite: 0 on every item, each "not implemented";
- every catalogued bug (lmgrade.catalogue.bugs), on the tests of its own component (the item and its
  hidden twin) and of every item built on that component (SPEC §4.6): its own item loses
  points, at least one of its failure messages (the category, for a hidden item) names the
  bug's own description (the diagnosis recognises it), and no item of another component
  loses anything: each mistake is charged once, in its own item;
- every valid alternative, on the items it touches (and their hidden twins): full marks.

A bug's run takes the items built on its component first, then its own, and stops at its
first own failure that is diagnosed as itself (reference comparisons first, since they carry
the diagnosis): that failure already proves the own-item points.

Output: a line per check as it finishes, the "charged where" matrix (bug × item: ✓ lost
points, · kept them, blank: not run), and a closing line `N passed, M failed`. Exit status 1
if any failed.

The small pytest plugin `lmgrade.grading.selfcheck_plugin` (loaded with -p) orders the
reference comparisons first and stops a bug's run early.
"""

from __future__ import annotations

import argparse
import math
import queue
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from lmgrade.catalogue.bugs import ALTERNATIVES, BUGS
from lmgrade.catalogue.variants import Variant, materialise
from lmgrade.core.rubric import load_rubric
from lmgrade.grading.grade import Selection, grade
from lmgrade.outputs.report import charged_where
from lmgrade.grading.warm import WarmPytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TESTS_DIR = PROJECT_ROOT / "tests"
PROFILE = "grading"


# --- the checks ----------------------------------------------------------------------------------


def test_files(item: str) -> list[Path]:
    """The visible and hidden test files of the component of an item ("attention" or "attention.hidden")."""
    component = item.split(".")[0]
    files = [TESTS_DIR / f"test_{component}.py", TESTS_DIR / "hidden" / f"test_{component}.py"]
    found = [f for f in files if f.exists()]
    if not found:
        raise FileNotFoundError(f"no test file for item {item!r} under {TESTS_DIR}")
    return found


@dataclass
class Check:
    kind: str  # reference, stubs, bug, alternative
    name: str
    passed: bool = False
    detail: str = ""
    seconds: float = 0.0
    lost: dict[str, bool] = field(default_factory=dict)  # item id -> lost points, for the items that ran
    diagnosed: bool | None = None


# Every check grades in a fork of a warm process (lmgrade.grading.warm), one per parallel job: _run_checks fills it.
_runners: queue.Queue[WarmPytest] = queue.Queue()


def _grade(selection, tests: list[str] | None = None, extra: list[str] | None = None, isolate: bool | None = None):
    kwargs = {} if isolate is None else {"isolate": isolate}
    runner = _runners.get()
    try:
        return grade(selection, profile=PROFILE, tests=tests, extra_pytest_args=extra, runner=runner, **kwargs)
    finally:
        _runners.put(runner)


def _ran(scores, tests: list[str] | None):
    """The item scores of the items whose tests were selected."""
    if tests is None:
        return list(scores)
    return [s for s in scores if any(prefix.split("::")[0] in tests for prefix in s.item.tests)]


def _points(score) -> str:
    return f"{score.item.id} {score.score:g}/{score.max_score:g}"


def check_reference(isolate: bool | None = None) -> Check:
    result = _grade(Selection(impl="reference"), isolate=isolate)
    check = Check("reference", "reference", seconds=result.seconds, lost={s.item.id: s.score < s.max_score for s in result.scores})
    short = [s for s in result.scores if s.score < s.max_score]
    check.passed = not short
    check.detail = (f"full marks, {result.score:g}/{result.rubric.total:g}" if check.passed else
                    "lost points: " + "; ".join(f"{_points(s)} ({s.status}: {s.reason[:300]})" for s in short))
    return check


def check_stubs(isolate: bool | None = None) -> Check:
    result = _grade(Selection(impl="student"), isolate=isolate)
    check = Check("stubs", "stubs", seconds=result.seconds, lost={s.item.id: s.score < s.max_score for s in result.scores})
    wrong = [s for s in result.scores if s.score != 0 or s.status != "not implemented"]
    check.passed = not wrong
    check.detail = ("0 on every item, each 'not implemented'" if check.passed else
                    "; ".join(f"{_points(s)} ({s.status}: {s.reason[:300]})" for s in wrong))
    return check


def component(item_id: str) -> str:
    return item_id.split(".")[0]


def built_on(own: str, rubric) -> list[str]:
    """Visible items whose code calls component `own`, directly or through others (rubric `builds_on`)."""
    found: list[str] = []
    frontier = [own]
    while frontier:
        current = frontier.pop(0)
        for item in rubric.items:
            if item.visible and current in item.builds_on and item.id not in found and component(item.id) != own:
                found.append(item.id)
                frontier.append(component(item.id))
    return found


def built_on_sample(variant: Variant, rubric, everything: bool) -> list[str]:
    """The items built on a bug's component that its run checks: all of them (`--all-built-on`, the
    nightly run), or a share: the bugs of one component split those items among themselves, so
    that every item built on a component still runs against at least one of its bugs."""
    items = built_on(component(variant.item), rubric)
    if everything or not items:
        return items
    siblings = [b.name for b in BUGS if component(b.item) == component(variant.item)]
    share = math.ceil(len(items) / len(siblings))
    first = siblings.index(variant.name) * share
    return list(dict.fromkeys(items[(first + k) % len(items)] for k in range(share)))


def grade_variant(variant: Variant, workdir: Path, isolate: bool | None = None, all_built_on: bool = False):
    """Grade a variant on the tests it is checked by; returns (Grade, the test paths run).

    A bug runs on its own component (the item and its hidden twin) and on visible items built on
    that component (a sample, or all: `all_built_on`), to show it costs points there and only there."""
    submission = materialise(variant, workdir)
    rubric = load_rubric()
    if variant.is_bug:
        own = [item.id for item in rubric.items if component(item.id) == component(variant.item)]
        own_tests = [path for item in own for path in rubric.by_id(item).tests]
        tests = own_tests + [path for item in built_on_sample(variant, rubric, all_built_on)
                             for path in rubric.by_id(item).tests]
        extra = ["-p", "lmgrade.grading.selfcheck_plugin", f"--selfcheck-stop-on={variant.description}",
                 *[f"--selfcheck-own={path.split('::')[0]}" for path in own_tests]]
    else:
        tests = [path for item in variant.items_to_run for path in rubric.by_id(item).tests]
        extra = None
    return _grade(Selection(submission=str(submission)), tests=tests, extra=extra, isolate=isolate), tests


def check_bug(variant: Variant, workdir: Path, isolate: bool | None = None, all_built_on: bool = False) -> Check:
    result, tests = grade_variant(variant, workdir, isolate, all_built_on)
    ran = _ran(result.scores, tests)
    check = Check("bug", variant.name, seconds=result.seconds, lost={s.item.id: s.score < s.max_score for s in ran})
    own = next(s for s in ran if s.item.id == variant.item)
    texts = [r.message if own.item.visible else r.category for r in own.records if r.outcome != "passed"]
    check.diagnosed = any(variant.description in text for text in texts)
    lost = own.score < own.max_score
    elsewhere = [s for s in ran if component(s.item.id) != component(variant.item) and s.score < s.max_score]
    check.passed = lost and check.diagnosed and not elsewhere
    if not lost:
        check.detail = f"NOT CAUGHT: {_points(own)} ({variant.description})"
    elif elsewhere:
        check.detail = (f"lost {_points(own)} but CHARGED TWICE: also " +
                        "; ".join(f"{_points(s)} ({s.reason[:200]})" for s in elsewhere))
    elif not check.diagnosed:
        first = next((t for t in texts if t), own.reason)
        check.detail = f"lost {_points(own)} but NOT DIAGNOSED as itself; first failure: {first[:400]}"
    else:
        kept = [s.item.id for s in ran if component(s.item.id) != component(variant.item)]
        check.detail = f"lost {_points(own)}, diagnosed" + (f"; kept full marks on {', '.join(kept)}" if kept else "")
    return check


def check_alternative(variant: Variant, workdir: Path, isolate: bool | None = None) -> Check:
    result, tests = grade_variant(variant, workdir, isolate)
    ran = _ran(result.scores, tests)
    check = Check("alternative", variant.name, seconds=result.seconds, lost={s.item.id: s.score < s.max_score for s in ran})
    short = [s for s in ran if s.score < s.max_score]
    check.passed = bool(ran) and not short
    check.detail = ("full marks on " + ", ".join(s.item.id for s in ran) if check.passed else
                    "FALSE FAILURE: " + "; ".join(f"{_points(s)} ({s.status}: {s.reason[:300]})" for s in short))
    return check


def _run_checks(jobs: int, only: set[str] | None, isolate: bool | None, out, all_built_on: bool = False) -> list[Check]:
    tasks = []
    with tempfile.TemporaryDirectory(prefix="lmgrade-selfcheck-") as tmp:
        workdir = Path(tmp)
        selected = lambda name: only is None or name in only  # noqa: E731
        # The long checks first, so that the short ones fill the gaps at the end.
        if selected("reference"):
            tasks.append(("reference", "reference", lambda: check_reference(isolate)))
        if selected("stubs"):
            tasks.append(("stubs", "stubs", lambda: check_stubs(isolate)))
        # The catalogue is the grader's own code: graded in-process unless asked otherwise (the
        # reference and stub checks above prove the isolated path; hostile code is selftests/hostile).
        trusted = False if isolate is None else isolate
        tasks += [("alternative", v.name, (lambda v=v: check_alternative(v, workdir, trusted))) for v in ALTERNATIVES if selected(v.name)]
        tasks += [("bug", v.name, (lambda v=v: check_bug(v, workdir, trusted, all_built_on))) for v in BUGS if selected(v.name)]
        lock, done, results = threading.Lock(), [0], []
        servers = [WarmPytest(PROFILE) for _ in range(jobs)]
        for server in servers:
            _runners.put(server)

        def run(kind: str, name: str, fn) -> Check:
            start = time.perf_counter()
            try:
                check = fn()
            except Exception as error:  # the grader itself failed on this check
                check = Check(kind, name, False, f"the check could not run: {type(error).__name__}: {str(error)[:1500]}")
            check.seconds = time.perf_counter() - start
            with lock:
                done[0] += 1
                mark = "PASS" if check.passed else "FAIL"
                print(f"[{done[0]:>3}/{len(tasks)}] {mark} {kind:<11} {name}: {check.detail} ({check.seconds:.0f} s)", file=out, flush=True)
            return check

        try:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                futures = [pool.submit(run, *task) for task in tasks]
                for future in as_completed(futures):
                    results.append(future.result())
        finally:
            for server in servers:
                server.close()
            while not _runners.empty():
                _runners.get()
    order = {name: i for i, (_, name, _) in enumerate(tasks)}
    return sorted(results, key=lambda c: order[c.name])


def main(jobs: int | None = None, only: list[str] | None = None, isolate: bool | None = None, out=None,
         all_built_on: bool = False) -> int:
    out = out or sys.stdout
    jobs = jobs or os.cpu_count() or 1
    # Each child runs small tensors: one torch thread each, the parallelism is across checks.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    start = time.perf_counter()
    print(f"lmgrade selfcheck: reference, stubs, {len(BUGS)} catalogued bugs, {len(ALTERNATIVES)} valid alternatives; "
          f"{jobs} parallel jobs, Hypothesis profile {PROFILE!r}", file=out, flush=True)
    checks = _run_checks(jobs, set(only) if only else None, isolate, out, all_built_on)
    bug_checks = [c for c in checks if c.kind == "bug"]
    if bug_checks:
        print("\nCharged where (✓ the item lost points, · it kept them, blank: not run); a bug must lose points "
              "in its own component's items and nowhere else:", file=out)
        print(charged_where(bug_checks, [item.id for item in load_rubric().items]), file=out)
    alternatives = [c for c in checks if c.kind == "alternative"]
    own_item = {v.name: v.item for v in BUGS}
    killed = sum(1 for c in bug_checks if c.lost.get(own_item[c.name]))
    once = sum(1 for c in bug_checks if not any(lost for item, lost in c.lost.items()
                                                  if component(item) != component(own_item[c.name])))
    diagnosed = sum(1 for c in bug_checks if c.diagnosed)
    print(f"\nbugs caught in their own item: {killed}/{len(bug_checks)}; charged nowhere else: {once}/{len(bug_checks)}; "
          f"diagnosed as themselves: {diagnosed}/{len(bug_checks)}; "
          f"alternatives with full marks: {sum(c.passed for c in alternatives)}/{len(alternatives)}; "
          f"wall time {time.perf_counter() - start:.0f} s", file=out)
    failed = [c for c in checks if not c.passed]
    for c in failed:
        print(f"FAILED {c.kind} {c.name}: {c.detail}", file=out)
    print(f"{len(checks) - len(failed)} passed, {len(failed)} failed", file=out, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m lmgrade.grading.selfcheck", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--only", nargs="*", help="run only these checks (reference, stubs, bug or alternative names)")
    parser.add_argument("--all-built-on", action="store_true",
                        help="run every bug on every item built on its component (the nightly run), not a sample")
    parser.add_argument("--isolate", choices=["yes", "no"], default=None, help="grade in an isolated child (default: the reference and stubs isolated as lmgrade grade does, the catalogue in-process)")
    options = parser.parse_args()
    sys.exit(main(options.jobs, options.only, None if options.isolate is None else options.isolate == "yes",
                  all_built_on=options.all_built_on))
