"""The pytest side of the grader: choose the implementation, provide fixtures, record outcomes.

Thin on purpose: scoring lives in scoring.py, output formats in report.py.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from .forbidden import ForbiddenCallDetector, forbidden_for
from .outcomes import ForbiddenCall, GradingTimeout, NotImplementedInSubmission
from .profiles import DEFAULT_PROFILE, register_profiles
from .recorder import Recorder


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
    if not config.getoption("hypothesis_profile", None):
        settings.load_profile(os.environ.get("LMGRADE_PROFILE", DEFAULT_PROFILE))
    config.pluginmanager.register(Recorder(config), "lmgrade-recorder")


_current_item: list[str | None] = [None]  # the rubric item of the test that is running


class _GradedCalls:
    """The bound adapters as the tests see them.

    NotImplementedError becomes an outcome Hypothesis will not shrink, and forbidden torch
    calls are detected (in this process, or in the child when isolated).
    """

    def __init__(self, bound, isolated: bool):
        self._bound, self._isolated = bound, isolated

    def count_flops(self, name: str, **kwargs) -> tuple[int, Exception | None]:
        """FLOPs (torch.utils.flop_counter) of one adapter call where the submission runs, and its error if any."""
        if not self._isolated:
            with FlopCounterMode(display=False) as counter:
                try:
                    getattr(self, name)(**kwargs)
                except Exception as error:  # noqa: BLE001 - the caller decides what the error means
                    return counter.get_total_flops(), error
            return counter.get_total_flops(), None
        backend = self._bound.backend
        backend.count_flops, backend.last_flops = True, 0
        try:
            getattr(self, name)(**kwargs)
            return backend.last_flops, None
        except Exception as error:  # noqa: BLE001
            return backend.last_flops, error
        finally:
            backend.count_flops = False

    def __getattr__(self, name: str):
        function = getattr(self._bound, name)
        item = _current_item[0]

        def call(*args, **kwargs):
            if self._isolated:
                self._bound.backend.current_item = item
                try:
                    return function(*args, **kwargs)
                except NotImplementedError as error:
                    raise NotImplementedInSubmission(str(error)) from None
            detector = ForbiddenCallDetector(forbidden_for(item))
            try:
                with detector:
                    result = function(*args, **kwargs)
            except NotImplementedError as error:
                raise NotImplementedInSubmission(str(error) or f"{name} raises NotImplementedError") from None
            violation = detector.report(item)
            if violation:
                raise ForbiddenCall(violation)
            return result

        return call


@pytest.fixture(scope="session")
def impl(request: pytest.FixtureRequest):
    """The adapter functions bound to the implementation under test."""
    import adapters

    options = request.config.option
    if options.isolate:
        from .isolation import ChildBackend

        from .sandbox import SandboxUnavailable

        try:
            backend = ChildBackend(impl=options.impl, adapters=options.adapters, submission=options.submission,
                                   cpu_seconds=int(_budget.total or 3600) + 60)
        except (SandboxUnavailable, ValueError, OSError) as error:  # no sandbox, or the submission refused
            pytest.fail(f"the submission could not be run: {error}", pytrace=False)
        yield _GradedCalls(adapters.Bound(backend), isolated=True)
        backend.shutdown()
        return
    try:
        bound = adapters.select(impl=options.impl, adapters_file=options.adapters, submission=options.submission)
    except Exception as error:  # a broken submission fails its tests; it never stops the run
        pytest.fail(f"could not import the implementation under test: {type(error).__name__}: {error}", pytrace=False)
    yield _GradedCalls(bound, isolated=False)


@pytest.fixture(scope="session")
def oracle():
    """Expected outputs and gradients: the live hidden reference, or the handout's snapshots."""
    from .oracle import load_oracle

    return load_oracle()


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device on this machine: CUDA not graded here"))])
def device(request: pytest.FixtureRequest) -> torch.device:
    return torch.device(request.param)


class _Budget:
    """The time budget of the whole run (--lmgrade-deadline), shared among the rubric items that run.

    When an item's first test starts, the item gets an equal share of what is left among the
    items not started yet: time a fast item leaves unused goes to the later ones, and a hang
    costs at most its own item's share.
    """

    def __init__(self):
        self.deadline: float | None = None
        self.total: float | None = None
        self.items: set[str] = set()
        self.share: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def setup(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        self.deadline = config.getoption("lmgrade_deadline", None)
        if self.deadline is None:
            return
        recorder = config.pluginmanager.get_plugin("lmgrade-recorder")
        self.items = {owner.id for owner in (recorder.rubric.item_of(i.nodeid) for i in items) if owner is not None}
        self.total = max(1.0, self.deadline - time.time())

    def limit(self, item_id: str | None, per_test: float) -> tuple[float, str]:
        """Seconds this test may run, and what it is limited by."""
        slow = f"the test ran longer than {per_test:g} s (an endless loop, or far too slow)"
        if self.deadline is None:
            return per_test, slow
        left = self.deadline - time.time()
        candidates = [(per_test, slow), (left, f"the grading's time budget ({self.total:.0f} s) was used up")]
        if item_id:
            if item_id not in self.share:
                waiting = max(1, len(self.items - set(self.share)))
                self.share[item_id] = max(0.0, left) / waiting
            candidates.append((self.share[item_id] - self.used.get(item_id, 0.0),
                               f"this item used up its share ({self.share[item_id]:.0f} s) of the grading's time budget"))
        return min(candidates, key=lambda c: c[0])


_budget = _Budget()


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    _budget.setup(config, items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    per_test = item.config.getoption("per_test_timeout")
    recorder = item.config.pluginmanager.get_plugin("lmgrade-recorder")
    graded = recorder.graded(item.nodeid)
    owner = recorder.rubric.item_of(item.nodeid)
    _current_item[0] = owner.id if owner else None
    if not graded or not per_test or per_test <= 0 or not hasattr(signal, "setitimer"):
        return (yield)
    seconds, why = _budget.limit(_current_item[0], per_test)
    if seconds <= 0.05:
        raise GradingTimeout(f"not run: {why}")
    begun = time.monotonic()

    def expire(signum, frame):
        from . import isolation

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
        item.config.pluginmanager.get_plugin("lmgrade-recorder").note_exception(report, call.excinfo)
    return report
