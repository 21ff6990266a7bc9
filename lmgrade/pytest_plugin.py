"""The pytest side of the grader: choose the implementation, provide fixtures, record outcomes.

Thin on purpose: hooks and fixtures only. The calls as tests see them are lmgrade/grading/calls.py,
the time budget lmgrade/grading/budget.py, outcomes and the scorecard lmgrade/grading/recorder.py,
scoring lmgrade/core/scoring.py.
"""

from __future__ import annotations

import gc
import os
import signal
import time

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

import pytest
import torch
from _pytest._code.code import Traceback

from lmgrade.core.hints import hint_for
from lmgrade.core.no_dynamo import skip_dynamo_imports
from lmgrade.core.outcomes import GradingTimeout, NotImplementedInSubmission
from lmgrade.core.profiles import DEFAULT_PROFILE, register_profiles
from lmgrade.core.rubric import rubric_path
from lmgrade.core.scoring import score_items
from lmgrade.grading.budget import TimeBudget
from lmgrade.grading.calls import GradedCalls, is_grader_frame
from lmgrade.grading.recorder import Recorder
from lmgrade.sandbox import isolation
from lmgrade.sandbox.tiers import SandboxUnavailable


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lmgrade", "Transformer-LM grading")
    group.addoption("--impl", choices=["student", "reference"], default="student",
                    help="which bundled implementation to grade (default: student)")
    group.addoption("--adapters", metavar="PATH", default=None,
                    help="grade any Python file that defines the run_* adapter functions (e.g. a CS336 tests/adapters.py)")
    group.addoption("--submission", metavar="DIR", default=None,
                    help="grade the student/ package found in DIR")
    group.addoption("--per-test-timeout", type=float, default=float(os.environ.get("LMGRADE_TEST_TIMEOUT", 120)),
                    metavar="SECONDS", help="a graded test running longer fails as timed out (default 120)")
    group.addoption("--lmgrade-deadline", type=float, default=None, metavar="EPOCH",
                    help="the grading's time budget ends at this time (seconds since the epoch); each rubric item "
                         "gets an equal share of it, and tests past the end or their item's share time out")
    group.addoption("--isolate", action="store_true",
                    help="run the implementation under test in a separate, confined process (lmgrade grade does)")
    group.addoption("--lmgrade-json", metavar="PATH", default=None, help="write every test outcome as JSON (used by lmgrade grade)")
    group.addoption("--no-scorecard", action="store_true", help="do not print the scorecard")
    group.addoption("--rubric", default="default", metavar="NAME|PATH",
                    help="the rubric to score with: default (this assignment), cs336 (CS336 assignment 1), or a .toml path")


def pytest_configure(config: pytest.Config) -> None:
    from hypothesis import settings

    register_profiles()
    skip_dynamo_imports()  # the FLOP counter and torch.optim would each import torch._dynamo for nothing
    if not config.getoption("hypothesis_profile", None):
        settings.load_profile(os.environ.get("LMGRADE_PROFILE", DEFAULT_PROFILE))
    config.pluginmanager.register(Recorder(config), "lmgrade-recorder")


_current_item: list[str | None] = [None]  # the rubric item of the test that is running


def _running_item() -> str | None:
    return _current_item[0]


_CHILD = pytest.StashKey[object]()  # the isolated child backend, or why there is none


def pytest_sessionstart(session: pytest.Session) -> None:
    """With --isolate, the submission's child starts now: its imports overlap with the collection."""
    options = session.config.option
    if not getattr(options, "isolate", False):
        return
    deadline = options.lmgrade_deadline
    cpu_seconds = int(max(1.0, deadline - time.time()) if deadline else 3600) + 60
    try:
        backend = isolation.ChildBackend(impl=options.impl, adapters=options.adapters, submission=options.submission,
                                         cpu_seconds=cpu_seconds)
        backend.prestart()
    except (SandboxUnavailable, ValueError, OSError) as error:  # no sandbox, or the submission refused
        backend = error
    except Exception as error:  # noqa: BLE001 - whatever it is, the tests report it; the run goes on
        backend = RuntimeError(f"{type(error).__name__}: {error}")
    session.config.stash[_CHILD] = backend


@pytest.fixture(scope="session")
def impl(request: pytest.FixtureRequest):
    """The adapter functions bound to the implementation under test."""
    import adapters

    options = request.config.option
    if options.isolate:
        backend = request.config.stash.get(_CHILD, None)
        if isinstance(backend, Exception):  # no sandbox, or the submission refused
            pytest.fail(f"the submission could not be run: {backend}", pytrace=False)
        yield GradedCalls(adapters.Bound(backend), isolated=True, current_item=_running_item)
        backend.shutdown()
        return
    try:
        bound = adapters.select(impl=options.impl, adapters_file=options.adapters, submission=options.submission)
    except Exception as error:  # a broken submission fails its tests; it never stops the run
        pytest.fail(f"could not import the implementation under test: {type(error).__name__}: {error}", pytrace=False)
    yield GradedCalls(bound, isolated=False, current_item=_running_item)


@pytest.fixture(scope="session")
def oracle():
    """Expected outputs and gradients: the live hidden reference, or the handout's snapshots."""
    from lmgrade.core.oracle import load_oracle

    return load_oracle()


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device on this machine: CUDA not graded here"))])
def device(request: pytest.FixtureRequest) -> torch.device:
    return torch.device(request.param)


_budget = TimeBudget()


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    _budget.setup(config, items)
    if config.getoption("fulltrace", False):
        return
    recorder = config.pluginmanager.get_plugin("lmgrade-recorder")
    for item in items:
        if recorder.graded(item.nodeid) and hasattr(item, "_traceback_filter"):
            _hide_grader_frames(item)


def _hide_grader_frames(item: pytest.Item) -> None:
    """A graded test's failure shows the test's frames and the submission's own, not the grader's
    (lmgrade/, adapters/) nor those of hypothesis, pluggy, pytest or torch. `--full-trace` shows all."""
    original = item._traceback_filter

    def without_grader(excinfo: pytest.ExceptionInfo) -> Traceback:
        shown = original(excinfo)  # cut at the test function (a cut rebuilds the frames below it: filter after)
        kept = [entry for entry in shown if not is_grader_frame(entry.path)]
        if not kept or len(kept) == len(shown):
            return shown
        kept[-1] = kept[-1].with_repr_style(None)  # the frame that raised is shown in full, as pytest does
        return Traceback(kept)

    item._traceback_filter = without_grader


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    per_test = item.config.getoption("per_test_timeout")
    recorder = item.config.pluginmanager.get_plugin("lmgrade-recorder")
    graded = recorder.graded(item.nodeid)
    owner = recorder.rubric.item_of(item.nodeid)
    _current_item[0] = owner.id if owner else None
    calls = getattr(item, "funcargs", {}).get("impl")
    if isinstance(calls, GradedCalls):
        calls.last_call = None  # a failure names this test's own adapter call, never an earlier test's
    if not graded or not per_test or per_test <= 0 or not hasattr(signal, "setitimer"):
        return (yield)
    seconds, why = _budget.limit(_current_item[0], per_test)
    if seconds <= 0.05:
        raise GradingTimeout(f"not run: {why}")
    begun = time.monotonic()

    def expire(signum, frame):
        left, _ = _budget.limit(None, per_test)  # a fresh child importing torch is not the submission's time,
        if isolation.starting and left > 1:  # but it is the budget's
            signal.setitimer(signal.ITIMER_REAL, min(seconds, left))
            return
        raise GradingTimeout(why)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return (yield)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if _current_item[0]:
            _budget.used[_current_item[0]] = _budget.used.get(_current_item[0], 0.0) + time.monotonic() - begun


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if call.excinfo is not None and report.failed:
        recorder = item.config.pluginmanager.get_plugin("lmgrade-recorder")
        recorder.note_exception(report, call.excinfo)
        if recorder.graded(item.nodeid) and call.when == "call":
            _add_adapter_call(item, report, call.excinfo)
            _add_hint(recorder.rubric.item_of(item.nodeid).id, report, call.excinfo)
    return report


def _add_hint(item_id: str, report: pytest.TestReport, excinfo: pytest.ExceptionInfo) -> None:
    """The failure of a test shows its item's hint (tests/test_<component>.py: HINT)."""
    hint = hint_for(item_id)
    if hint and not isinstance(excinfo.value, NotImplementedInSubmission):
        report.sections.append(("hint", hint))


def _add_adapter_call(item: pytest.Item, report: pytest.TestReport, excinfo: pytest.ExceptionInfo) -> None:
    """The failure ends with the adapter call to reproduce it, as a student would write it."""
    calls = getattr(item, "funcargs", {}).get("impl")
    described = calls.last_call if isinstance(calls, GradedCalls) else None
    if not described or isinstance(excinfo.value, NotImplementedInSubmission):
        return
    line = f"your adapter call: {described}"
    if isinstance(report.longrepr, str):
        report.longrepr += "\n" + line
    elif hasattr(report.longrepr, "addsection"):
        report.longrepr.addsection("to reproduce", line)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    """After the scorecard: what the visible tests earn, and how many points the hidden ones hold."""
    line = local_estimate(config)
    if line:
        terminalreporter.write_line(line)


def local_estimate(config: pytest.Config) -> str | None:
    """None when no scorecard is printed, nothing graded ran, or hidden tests ran (their total is the grade)."""
    recorder = config.pluginmanager.get_plugin("lmgrade-recorder")
    if config.getoption("no_scorecard") or recorder is None or not recorder.records:
        return None
    rubric, ran_ids = recorder.rubric, list(recorder.records)
    visible = [i for i in rubric.items if i.visible]
    hidden_items = [i for i in rubric.items if not i.visible]
    if any(i.owns(n) for i in hidden_items for n in ran_ids):
        return None
    # The handout's rubric lists its visible items only; it may say how many points the hidden ones hold.
    try:
        raw = tomllib.loads(rubric_path(config.getoption("rubric", None)).read_text())
    except (OSError, ValueError):
        raw = {}
    hidden = float(raw.get("hidden_points", sum(i.points for i in hidden_items)))
    if hidden <= 0 or not visible:
        return None
    scores = score_items(rubric, list(recorder.records.values()), recorder.collection_errors)
    earned = round(sum(s.score for s in scores if s.item.visible), 2)
    ran = sum(1 for i in visible if any(i.owns(n) for n in ran_ids))
    partly = "" if ran == len(visible) else f" ({ran} of {len(visible)} visible items ran)"
    return (f"visible items: {earned:g} / {sum(i.points for i in visible):g} points{partly}; "
            f"{hidden:g} more points are in hidden tests, graded when you submit")


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """A grading's pytest process (--lmgrade-json, as lmgrade grade runs it) ends here, its outcomes written.
    Python's exit would then walk every object torch, Hypothesis and the suite made, about 0.4 of the
    0.5 s it takes; frozen, they are left to the operating system."""
    if config.getoption("lmgrade_json", None):
        gc.freeze()
