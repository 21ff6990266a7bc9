"""Records the outcome of every graded test during a pytest run; prints the scorecard at the end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmgrade.core.compare import LIKELY_CAUSE, Mismatch
from lmgrade.core.outcomes import ForbiddenCall, GradingTimeout, NotImplementedInSubmission, SubmissionBroken, SubmissionCrashed
from lmgrade.outputs.report import scorecard_text
from lmgrade.core.rubric import load_rubric
from lmgrade.core.scoring import ERROR, FAILED, NOT_IMPLEMENTED, PASSED, SKIPPED, TIMEOUT, TestRecord, function_of, score_items

MAX_MESSAGE = 2500
MAX_PROFILES = 3  # error pictures kept per test record


def profiles_of(excinfo: pytest.ExceptionInfo) -> list[dict]:
    """The pictures' data a failed comparison carries (compare.Mismatch.profiles)."""
    error = excinfo.value
    return list(getattr(error, "profiles", None) or [])[:MAX_PROFILES] if isinstance(error, Mismatch) else []


def classify(excinfo: pytest.ExceptionInfo, item_id: str | None = None) -> tuple[str, str, str]:
    """(outcome, message for visible items, category safe for hidden items)."""
    outcome, message, category = _classify(excinfo)
    if outcome == FAILED and LIKELY_CAUSE not in message:
        from lmgrade.catalogue.diagnosis import diagnose_exception

        cause = diagnose_exception(item_id, message)
        if cause:
            message += f"\n{LIKELY_CAUSE}{cause}"
            category += f"; {LIKELY_CAUSE}{cause}"
    return outcome, message, category


def _classify(excinfo: pytest.ExceptionInfo) -> tuple[str, str, str]:
    error = excinfo.value
    message = str(error).strip()
    notes = getattr(error, "__notes__", None)
    if notes:  # Hypothesis puts the falsifying example here
        message += "\n" + "\n".join(notes)
    if isinstance(error, NotImplementedInSubmission):
        return NOT_IMPLEMENTED, message, "not implemented"
    if isinstance(error, GradingTimeout):
        return TIMEOUT, message, "timed out"
    if isinstance(error, ForbiddenCall):
        return FAILED, message, message  # names the student's own call site, never the test's inputs
    if isinstance(error, SubmissionCrashed):
        return FAILED, message, "your code's process crashed (exit, signal or memory limit)"
    if isinstance(error, SubmissionBroken):
        return FAILED, message, "your code could not be imported"
    if type(error).__name__ == "SubmissionError":  # an exception raised in the isolated child
        kind = message.split(":", 1)[0]
        return FAILED, message, f"your code raised {kind}"
    if isinstance(error, Mismatch):  # a diagnosis names a catalogued bug, never the inputs: safe for hidden items
        return FAILED, message, "wrong values" + (f"; {LIKELY_CAUSE}{error.diagnosis}" if error.diagnosis else "")
    if type(error).__name__ == "TypeCheckError":
        return FAILED, message, "wrong shape or dtype (the adapter signature check failed)"
    if isinstance(error, AssertionError):
        return FAILED, message or "assertion failed", "a checked property does not hold"
    return FAILED, f"{type(error).__name__}: {message}", f"your code raised {type(error).__name__}"


def _trim(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + " …(cut)"


class Recorder:
    def __init__(self, config: pytest.Config):
        self.config = config
        self.rubric = load_rubric(config.getoption("rubric", None))
        self.records: dict[str, TestRecord] = {}
        self.collection_errors: dict[str, str] = {}
        self._failures: dict[str, tuple[str, str, str]] = {}
        self._profiles: dict[str, list[dict]] = {}
        self._pictured: set[str] = set()  # test functions whose first failing case has its pictures

    def graded(self, nodeid: str) -> bool:
        return self.rubric.item_of(nodeid) is not None

    def note_exception(self, report: pytest.TestReport, excinfo: pytest.ExceptionInfo) -> None:
        owner = self.rubric.item_of(report.nodeid)
        outcome, message, category = classify(excinfo, owner.id if owner else None)
        self._failures[report.nodeid] = (outcome, _trim(message), category)
        # Pictures show where the error is in a tensor: for visible items whose details are shown
        # only (a hidden item's picture would reveal the shapes of its inputs), and for the first
        # failing case of each test function only (the outcome file stays small).
        if owner is not None and owner.visible and owner.details_shown and function_of(report.nodeid) not in self._pictured:
            profiles = profiles_of(excinfo)
            if profiles:
                self._profiles[report.nodeid] = profiles
                self._pictured.add(function_of(report.nodeid))
        if outcome in (NOT_IMPLEMENTED, TIMEOUT):
            report.longrepr = f"{outcome}: {message}"

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_errors[report.nodeid.split("::")[0]] = _trim(str(report.longrepr).strip().splitlines()[-1])

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.graded(report.nodeid):
            return
        if report.when == "call" or (report.when == "setup" and not report.passed):
            if report.passed:
                record = TestRecord(report.nodeid, PASSED)
            elif report.skipped:
                reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
                record = TestRecord(report.nodeid, SKIPPED, reason.removeprefix("Skipped: "))
            else:
                outcome, message, category = self._failures.get(
                    report.nodeid, (FAILED, _trim(str(report.longrepr)), "failed"))
                if report.when == "setup" and outcome == FAILED:
                    outcome, category = ERROR, "the test could not start: " + (message.splitlines() or ["?"])[0][:200]
                record = TestRecord(report.nodeid, outcome, message, category, self._profiles.pop(report.nodeid, []))
            self.records[report.nodeid] = record
        elif report.when == "teardown" and report.failed and report.nodeid in self.records:
            self.records[report.nodeid].outcome = ERROR

    def results(self) -> dict:
        return {"records": [r.to_dict() for r in self.records.values()], "collection_errors": self.collection_errors}

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        path = self.config.getoption("lmgrade_json")
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(json.dumps(self.results(), indent=1))

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.config.getoption("no_scorecard") or not (self.records or self.collection_errors):
            return
        scores = score_items(self.rubric, list(self.records.values()), self.collection_errors)
        ran = {item.id for item in self.rubric.items if any(item.owns(n) for n in self.records)}
        # When only part of the suite ran (pytest tests/test_linear.py), show just those items.
        shown = [s for s in scores if s.item.id in ran] or scores
        terminalreporter.write_line("")
        for line in scorecard_text(shown, self.rubric.total if len(shown) == len(scores) else None).splitlines():
            terminalreporter.write_line(line)
