"""Grade one submission: run the suite in a child pytest process, score it against the rubric.

The child runs the tests; this process reads only the JSON outcome file and owns the score.
Every rubric item is scored, whatever ran: an item with no outcome scores 0 and says why.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from lmgrade.core.rubric import Rubric, load_rubric, rubric_path
from lmgrade.sandbox import intake
from lmgrade.sandbox import processes, tiers
from lmgrade.core.scoring import TIMEOUT, ItemScore, TestRecord, score_items
from lmgrade.grading.warm import Runner, stop_subprocess_pytests, subprocess_pytest, with_bytecode

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Selection:
    impl: str | None = "student"
    adapters: str | None = None
    submission: str | None = None

    def pytest_args(self) -> list[str]:
        if self.adapters:
            return [f"--adapters={Path(self.adapters).resolve()}"]
        if self.submission:
            return [f"--submission={Path(self.submission).resolve()}"]
        return [f"--impl={self.impl}"]

    def describe(self) -> str:
        return self.adapters or self.submission or f"the bundled {self.impl} package"


@dataclass
class Grade:
    scores: list[ItemScore]
    rubric: Rubric
    seconds: float
    pytest_exit_code: int
    log: str
    sandbox: str = ""  # which sandbox tier ran the submission, in words
    timed_out: list[str] = field(default_factory=list)  # items with a test that ran out of time
    time_budget: float | None = None

    @property
    def score(self) -> float:
        return sum(s.score for s in self.scores)


def _selectors(rubric: Rubric) -> list[str]:
    """The tests a rubric counts (file paths or file::test node ids), each once."""
    return list(dict.fromkeys(selector for item in rubric.items for selector in item.tests))


def default_workers() -> int:
    """Pytest processes for one grading: 2 where two cores are usable, else 1. Usable means this
    process's CPU affinity and, in a container, its cgroup's CPU quota (os.cpu_count() counts the
    host's cores, which a 1-CPU autograder container would otherwise oversubscribe)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, min(2, cores))


@dataclass
class _Shard:
    results: Path  # its outcomes (--lmgrade-json)
    returncode: int = 0
    log: str = ""
    pid: int = 0
    error: BaseException | None = None  # what the runner raised, re-raised by the caller's thread


def _run_shards(runner: Runner, workers: int, args: list[str], env: dict[str, str], tmp: Path, timeout: float) -> list[_Shard]:
    """Run pytest with `args` in `workers` processes at once, sharing the tests (shard_plugin)."""
    shards = [_Shard(tmp / f"outcomes-{i}.json") for i in range(workers)]
    claims = tmp / "claims"
    claims.mkdir()

    def run(i: int) -> None:
        shard = shards[i]
        shard_args = [*args, f"--lmgrade-json={shard.results}"]
        if workers > 1:  # the first walks the files from the first, the second from the last
            shard_args += ["-p", "lmgrade.grading.shard_plugin", f"--shard-claims={claims}",
                           *(["--shard-from-end"] if i % 2 else [])]
        try:
            shard.returncode, shard.log, shard.pid = runner(shard_args, env, PROJECT_ROOT, timeout)
        except Exception as error:  # noqa: BLE001 - raised again below, in the grading's own thread
            shard.error = error

    # The first process runs from this thread (an interrupt stops it as before), the others from threads.
    threads = [threading.Thread(target=run, args=(i,)) for i in range(1, workers)]
    for thread in threads:
        thread.start()
    try:
        run(0)
        for thread in threads:
            thread.join()
    except BaseException:  # an interrupt: the other processes are in sessions of their own and would go on
        stop_subprocess_pytests()
        raise
    for shard in shards:
        if shard.error is not None:
            raise shard.error
    return shards


class GradingFailed(RuntimeError):
    """The grader itself could not run (not the submission's fault)."""


_TIER_REQUEST = {"bwrap": "tier1", "uid": "tier2", "none": "none"}
BACKSTOP_SECONDS = 45  # past the budget, the pytest run is killed whatever it is doing


def _refused(rubric: Rubric, why: str) -> list[ItemScore]:
    return [ItemScore(item, 0.0, "error", f"submission refused: {why}") for item in rubric.items]


def _timed_out(scores: list[ItemScore]) -> list[str]:
    return [s.item.id for s in scores if any(r.outcome == TIMEOUT for r in s.records)]


def grade(
    selection: Selection,
    profile: str = "grading",
    per_test_timeout: float = 120.0,
    tests: list[str] | None = None,
    extra_pytest_args: list[str] | None = None,
    isolate: bool = True,
    rubric: str | None = None,
    time_budget: float | None = None,
    sandbox_request: str | None = None,
    runner: Runner | None = None,
    workers: int = 1,
) -> Grade:
    """rubric: a name ("default", "cs336") or a .toml path; the suite runs the tests it counts.

    time_budget: seconds for the whole grading (default: the rubric's `time_budget_seconds`);
    each item gets a share of it, a test past the budget or its item's share times out.
    sandbox_request: LMGRADE_SANDBOX's values (auto, tier1, tier2, none); none = --no-sandbox.
    runner: how pytest runs (default: a new process; lmgrade.grading.warm.WarmPytest: a fork of a warm one).
    workers: pytest processes sharing the tests (lmgrade.grading.shard_plugin), each with its own child;
    1 with a runner, which serves one run at a time. The score is the same whatever the number.
    The submission is taken in (lmgrade.sandbox.intake) to a private copy before anything runs.
    """
    rubric_file = rubric_path(rubric)
    rubric = load_rubric(rubric_file)
    budget = float(time_budget if time_budget is not None else rubric.time_budget_seconds)
    if budget <= 0:
        raise ValueError(f"the time budget must be positive, got {budget:g} s")
    requested = sandbox_request if sandbox_request is not None else os.environ.get(tiers.ENV, "auto")
    tier = tiers.detect(requested) if isolate else tiers.Tier("none", "not isolated (--no-isolation): trusted code only")
    trusted = not (selection.adapters or selection.submission)
    if isolate and tier.name == "none" and not trusted and requested.strip().lower() != "none":
        raise GradingFailed(f"{tier.detail}. Untrusted code is not graded without a sandbox; "
                            "--no-sandbox grades it anyway (only for code you trust)")
    with tempfile.TemporaryDirectory(prefix="lmgrade-") as tmp:
        try:
            if selection.submission:
                selection = Selection(impl=None, submission=str(intake.take_in_submission(
                    Path(selection.submission), Path(tmp) / "submission")))
            elif selection.adapters:
                selection = Selection(impl=None, adapters=str(intake.take_in_adapters(
                    Path(selection.adapters), Path(tmp) / "submission" / Path(selection.adapters).name)))
        except (intake.SubmissionRefused, OSError) as error:
            return Grade(_refused(rubric, str(error)), rubric, 0.0, 0, str(error), tier.describe(), [])
        start_wall = time.time()
        args = [
            # --tb=native: the outcomes carry their own messages (the recorder), and pytest's default
            # traceback re-parses every frame's source file (ast) for each failure: most of a failing run.
            # No logging plugin: it adds and removes its handlers around every test phase, and no graded
            # outcome reads a log record. No unraisable-exception plugin: it runs the garbage collector
            # several times over at the end (about 0.3 s), to report what no outcome reads either.
            *(tests or _selectors(rubric)), "-q", "--tb=native", "-p", "no:cacheprovider", "-p", "no:logging",
            "-p", "no:unraisableexception",
            "--no-scorecard", f"--per-test-timeout={per_test_timeout}", *selection.pytest_args(),
            f"--rubric={rubric_file}", f"--lmgrade-deadline={start_wall + budget:.3f}",
            *(["--isolate"] if isolate else []), *(extra_pytest_args or []),
        ]
        env = with_bytecode(dict(os.environ, LMGRADE_PROFILE=profile))
        env[tiers.ENV] = _TIER_REQUEST[tier.name]  # the very tier reported here, never a silent other one
        start = time.perf_counter()
        shards = _run_shards(runner or subprocess_pytest, 1 if runner else max(1, workers), args, env, Path(tmp),
                             budget + BACKSTOP_SECONDS)
        seconds = time.perf_counter() - start
        killed = any(shard.returncode == -9 for shard in shards)
        for shard in shards:
            if shard.returncode == -9:
                shard.log = f"the grading ran past its time budget of {budget:g} s and was stopped\n" + (shard.log or "")[-3000:]
        if tier.as_uid:  # the submission's processes, whatever the run left (their uids derive from the run's pid)
            for shard in shards:
                for uid in processes.uids_of_process(shard.pid):
                    processes.kill_uid(uid)
        records, collection_errors = [], {}
        for shard in shards:
            if shard.returncode in (3, 4) or (shard.returncode == 2 and not shard.results.exists()):
                raise GradingFailed(f"pytest could not run the suite (exit {shard.returncode}):\n{shard.log[-3000:]}")
            if shard.results.exists():
                outcome = json.loads(shard.results.read_text())
                records += [TestRecord(**r) for r in outcome["records"]]
                collection_errors.update(outcome["collection_errors"])
            # else: the process died before writing its outcomes: nothing it ran counts
        returncode = next((shard.returncode for shard in shards if shard.returncode == -9),
                          max((shard.returncode for shard in shards), default=0))
        log = "\n".join(shard.log for shard in shards)
    scores = score_items(rubric, records, collection_errors)
    if killed:
        for s in scores:
            if not s.records:
                s.status, s.reason = "timeout", f"the grading ran past its time budget of {budget:g} s"
    return Grade(scores, rubric, seconds, returncode, log, tier.describe(), _timed_out(scores), budget)


def grade_notes(result: Grade) -> str:
    """The lines every output carries: which sandbox ran the code, what ran out of time."""
    lines = [result.sandbox] if result.sandbox else []
    if result.timed_out:
        budget = f" (time budget {result.time_budget:g} s)" if result.time_budget else ""
        lines.append(f"ran out of time{budget}: " + ", ".join(result.timed_out))
    return "\n".join(lines)
