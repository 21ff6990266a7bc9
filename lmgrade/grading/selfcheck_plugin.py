"""The pytest plugin of `lmgrade selfcheck` (`-p lmgrade.grading.selfcheck_plugin`) for one bug's run:
the items built on the bug's component first, then the reference comparisons (they carry the
diagnosis), and stop at the bug's first own failure that names the bug's description."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--selfcheck-stop-on", default=None, metavar="TEXT",
                     help="(lmgrade selfcheck) stop at the first graded failure of an own test whose message names TEXT")
    parser.addoption("--selfcheck-own", action="append", default=[], metavar="PATH",
                     help="(lmgrade selfcheck) the bug's own test files; the others run first and never stop the run")


def _is_own(config: pytest.Config, nodeid: str) -> bool:
    own = config.getoption("selfcheck_own")
    return not own or nodeid.split("::")[0] in own


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    if config.getoption("selfcheck_stop_on"):  # items built on the bug's first; then reference comparisons: they carry the diagnosis
        items.sort(key=lambda item: (_is_own(config, item.nodeid), "oracle" not in getattr(item, "fixturenames", ())))


@pytest.hookimpl(trylast=True)  # after the recorder has recorded the outcome
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    session = _session[0]
    if session is None or not report.failed:
        return
    wanted = session.config.getoption("selfcheck_stop_on")
    recorder = session.config.pluginmanager.get_plugin("lmgrade-recorder")
    record = recorder.records.get(report.nodeid) if recorder else None
    if wanted and record is not None and _is_own(session.config, report.nodeid) and (wanted in record.message or wanted in record.category):
        session.shouldfail = "lmgrade selfcheck: the bug was caught and diagnosed"


_session: list = [None]


def pytest_sessionstart(session: pytest.Session) -> None:
    _session[0] = session
