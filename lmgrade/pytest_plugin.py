"""The pytest side of the grader: choose the implementation, provide fixtures, record outcomes.

Thin on purpose: scoring lives in scoring.py, output formats in report.py.
"""

from __future__ import annotations

import os
import signal

import pytest
import torch

from .outcomes import GradingTimeout, NotImplementedInSubmission
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
    group.addoption("--lmgrade-json", metavar="PATH", default=None, help="write every test outcome as JSON (used by lmgrade grade)")
    group.addoption("--no-scorecard", action="store_true", help="do not print the scorecard")


def pytest_configure(config: pytest.Config) -> None:
    from hypothesis import settings

    register_profiles()
    if not config.getoption("hypothesis_profile", None):
        settings.load_profile(os.environ.get("LMGRADE_PROFILE", DEFAULT_PROFILE))
    config.pluginmanager.register(Recorder(config), "lmgrade-recorder")


class _StopOnMissing:
    """The bound adapters, with NotImplementedError turned into an outcome Hypothesis will not shrink."""

    def __init__(self, bound):
        self._bound = bound

    def __getattr__(self, name: str):
        function = getattr(self._bound, name)

        def call(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except NotImplementedError as error:
                raise NotImplementedInSubmission(str(error) or f"{name} raises NotImplementedError") from None

        return call


@pytest.fixture(scope="session")
def impl(request: pytest.FixtureRequest):
    """The adapter functions bound to the implementation under test."""
    import adapters

    options = request.config.option
    try:
        bound = adapters.select(impl=options.impl, adapters_file=options.adapters, submission=options.submission)
    except Exception as error:  # a broken submission fails its tests; it never stops the run
        pytest.fail(f"could not import the implementation under test: {type(error).__name__}: {error}", pytrace=False)
    return _StopOnMissing(bound)


@pytest.fixture(scope="session")
def oracle():
    """Expected outputs and gradients: the live hidden reference, or the handout's snapshots."""
    from .oracle import load_oracle

    return load_oracle()


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device on this machine: CUDA not graded here"))])
def device(request: pytest.FixtureRequest) -> torch.device:
    return torch.device(request.param)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    seconds = item.config.getoption("per_test_timeout")
    graded = item.config.pluginmanager.get_plugin("lmgrade-recorder").graded(item.nodeid)
    if not graded or not seconds or seconds <= 0 or not hasattr(signal, "setitimer"):
        return (yield)

    def expire(signum, frame):
        raise GradingTimeout(f"the test ran longer than {seconds:g} s (an endless loop, or far too slow)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return (yield)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if call.excinfo is not None and report.failed:
        item.config.pluginmanager.get_plugin("lmgrade-recorder").note_exception(report, call.excinfo)
    return report
