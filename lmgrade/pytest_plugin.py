"""The pytest side of the grader: choose the implementation, provide fixtures, report cleanly."""

from __future__ import annotations

import os

import pytest
import torch

from .profiles import DEFAULT_PROFILE, register_profiles


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lmgrade", "Transformer-LM grading")
    group.addoption("--impl", choices=["student", "reference"], default="student",
                    help="which bundled implementation to grade (default: student)")
    group.addoption("--adapters", metavar="PATH", default=None,
                    help="grade any Python file that defines the run_* adapter functions (e.g. a CS336 tests/adapters.py)")
    group.addoption("--submission", metavar="DIR", default=None,
                    help="grade the student/ package found in DIR")


def pytest_configure(config: pytest.Config) -> None:
    from hypothesis import settings

    register_profiles()
    if not config.getoption("hypothesis_profile", None):
        settings.load_profile(os.environ.get("LMGRADE_PROFILE", DEFAULT_PROFILE))
    config.addinivalue_line("markers", "needs_reference: compares with the live hidden reference")


@pytest.fixture(scope="session")
def impl(request: pytest.FixtureRequest):
    """The adapter functions bound to the implementation under test."""
    import adapters

    options = request.config.option
    try:
        return adapters.select(impl=options.impl, adapters_file=options.adapters, submission=options.submission)
    except Exception as error:  # a broken submission fails its tests; it never stops the run
        pytest.fail(f"could not import the implementation under test: {type(error).__name__}: {error}", pytrace=False)


@pytest.fixture(scope="session")
def oracle():
    """Expected outputs and gradients: the live hidden reference where it exists."""
    import adapters

    from .oracle import LiveOracle

    try:
        return LiveOracle(adapters.select(impl="reference"))
    except ImportError:
        pytest.skip("the hidden reference is not part of this handout")


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device on this machine: CUDA not graded here"))])
def device(request: pytest.FixtureRequest) -> torch.device:
    return torch.device(request.param)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if call.excinfo is not None and call.excinfo.errisinstance(NotImplementedError) and report.failed:
        message = str(call.excinfo.value) or "a function this test needs raises NotImplementedError"
        if not message.startswith("not implemented"):
            message = f"not implemented: {message}"
        report.longrepr = message
    return report
