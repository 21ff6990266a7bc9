"""Part (1): the wall time, CPU time (the machine's busy time) and peak memory of grading one submission (the reference).

`grade(Selection(impl="reference"), profile=...)` runs the suite in a child pytest, as
`lmgrade grade` does (two pytest processes sharing the tests where there are two cores), with the "fast" Hypothesis profile and the "grading" profile (`lmgrade grade`'s default),
each twice against a fresh oracle cache (lmgrade's CachingOracle, in a temporary directory):
"cold", the first submission a course grades, when the reference computes every expected
value, and "warm", every later one, when they are read back.

Peak memory is `getrusage(RUSAGE_CHILDREN).ru_maxrss` after the grading: the peak resident set
of the largest process in the grading tree that has been waited for (the child pytest, or a
sandboxed process it ran). It is a running maximum over this bench's children, so each row
reports the peak over the gradings so far; the first row is that grading's own figure.
"""

from __future__ import annotations

import os
import re
import resource
from pathlib import Path
from unittest import mock

# --quick grades these files only (both profiles); the full run grades the whole suite.
QUICK_GRADE_TESTS = ["tests/test_linear.py", "tests/hidden/test_linear.py", "tests/test_softmax.py", "tests/hidden/test_softmax.py"]


def _grader():
    """lmgrade's grade() and Selection, imported when first needed (the bench runs without them for --skip-grading)."""
    from lmgrade.grading.grade import Selection, default_workers, grade

    return Selection, grade, default_workers


def machine_busy_seconds() -> float | None:
    """CPU-seconds every core of this machine has spent busy since boot (/proc/stat); None elsewhere.

    The CPU of a grading is read here, not from getrusage(RUSAGE_CHILDREN): the submission's
    sandboxed processes are killed at the end, never waited for by the pytest processes that
    started them, so their CPU time (about half of a grading's) never reaches the children's
    usage. The machine's figure counts other processes too: the table warns when there were any.
    """
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def bench_grading(profile: str, tests: list[str] | None, cache: str, oracle_cache: Path) -> dict:
    Selection, grade, default_workers = _grader()
    workers = default_workers()  # as `lmgrade grade`: two pytest processes sharing the tests where two cores are usable
    before, busy_before = resource.getrusage(resource.RUSAGE_CHILDREN), machine_busy_seconds()
    with mock.patch.dict(os.environ, LMGRADE_ORACLE_CACHE=str(oracle_cache)):  # the grading child inherits it
        result = grade(Selection(impl="reference"), profile=profile, tests=tests, workers=workers)
    after, busy_after = resource.getrusage(resource.RUSAGE_CHILDREN), machine_busy_seconds()
    cpu = (busy_after - busy_before if busy_before is not None and busy_after is not None
           else (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    # each pytest process's last line, e.g. "194 passed, 148 skipped in 60.1s"
    lines = [line for line in result.log.splitlines() if re.search(r"\d+ (passed|failed|errors?)\b", line)]
    summary = " + ".join(line.strip("= ") for line in lines) if lines else "no pytest summary"
    return dict(
        profile=profile, cache=cache, workers=workers, tests="whole suite (tests/)" if tests is None else " ".join(tests),
        seconds=result.seconds, cpu_seconds=cpu, score=result.score, total=result.rubric.total,
        peak_rss_mib=after.ru_maxrss / 1024,  # Linux reports KiB
        pytest_exit_code=result.pytest_exit_code, summary=summary,
        failed=[line.split()[1] for line in result.log.splitlines() if line.startswith(("FAILED ", "ERROR "))],
    )


def bench_all_grading(quick: bool, tmp: Path, log) -> list[dict]:
    """Both profiles, each cold then warm against its own fresh oracle cache under tmp."""
    tests = QUICK_GRADE_TESTS if quick else None
    rows = []
    for profile in ("fast", "grading"):
        oracle_cache = tmp / profile  # empty: the first grading fills it, the second reads it
        for cache in ("cold", "warm"):
            rows.append(bench_grading(profile, tests, cache, oracle_cache))
            log(f"graded ({profile}, {cache} oracle cache) in {rows[-1]['seconds']:.1f} s")
    return rows
