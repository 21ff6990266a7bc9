"""Part (4): how `lmgrade selfcheck` scales with the bug catalogue: wall time, and peak memory.

`lmgrade selfcheck` runs in a child process; every line it prints for a finished check is
timed as it arrives, which gives the curve "wall seconds after the first N catalogued bugs"
(the checks finish in about the order they were given: the reference and stub gradings first,
then the alternatives and the bugs). The slope of that curve over the bugs (least squares) is
the wall time each catalogued bug adds, so a catalogue twice as long costs about twice the
bugs' part. Peak memory is `getrusage(RUSAGE_CHILDREN).ru_maxrss` after it ends: the largest
single process of the run (a warm server, a forked grading, or a sandboxed child).

With matplotlib installed, the curve is also drawn as a PNG.
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import time
from pathlib import Path

_CHECK_LINE = re.compile(r"^\[\s*(\d+)/(\d+)\] (PASS|FAIL) (\w+)")


def bench_selfcheck(root: Path, log, extra: list[str] | None = None) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "lmgrade", "selfcheck", *(extra or [])], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    points, bugs, failed, tail = [], 0, 0, []
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-3:]
        match = _CHECK_LINE.match(line.strip())
        if match:
            failed += match.group(3) == "FAIL"
            if match.group(4) == "bug":
                bugs += 1
                points.append((bugs, time.perf_counter() - start))
    proc.wait()
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    log(f"selfcheck: {bugs} bugs in {seconds:.0f} s")
    return dict(seconds=seconds, bugs=bugs, failed=failed, exit_code=proc.returncode,
                seconds_per_bug=_slope(points), points=points, summary=tail[-1] if tail else "",
                cpu_seconds=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
                peak_rss_mib=after.ru_maxrss / 1024)


def _slope(points: list[tuple[int, float]]) -> float | None:
    """Least-squares seconds per bug over the curve's points."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var if var else None


def plot_scaling(result: dict, path: Path) -> Path | None:
    """The curve as a PNG at path; None where matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    xs, ys = zip(*result["points"]) if result["points"] else ((), ())
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(xs, ys, marker=".", linewidth=1)
    slope = result["seconds_per_bug"]
    ax.set_title(f"lmgrade selfcheck: {slope:.2f} s of wall time per catalogued bug" if slope else "lmgrade selfcheck")
    ax.set_xlabel("catalogued bugs checked")
    ax.set_ylabel("wall seconds since the start")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
