"""Hostile submissions end with the score they earned and a clear report; the grader survives.

Each file in hostile/ is an adapters file (or, for config_hardening/, a submission folder)
graded through `lmgrade.grade.grade` (isolated, as `lmgrade grade` does) on the visible
Linear and softmax tests. Every hostile file has an honest Linear, so the expected score
shows that only the attacked item is affected.
"""

from pathlib import Path

import pytest

from lmgrade.grade import Selection, grade
from lmgrade.isolation import isolation_mode

HOSTILE = Path(__file__).parent / "hostile"
FILES = ["tests/test_linear.py", "tests/test_softmax.py"]
LINEAR, SOFTMAX = 3.0, 3.0  # their points in lmgrade/rubric.toml


def graded(name: str, timeout: float = 10, **selection):
    path = HOSTILE / name
    selection = selection or {"adapters": str(path)}
    result = grade(Selection(**selection), profile="fast", tests=FILES, per_test_timeout=timeout)
    scores = {s.item.id: s for s in result.scores if s.item.id in ("linear", "softmax")}
    return result, scores["linear"], scores["softmax"]


def all_messages(score) -> str:
    return "\n".join(f"{r.outcome}: {r.message}" for r in score.records)


@pytest.mark.parametrize("name, says", [
    ("import_time_exception.py", "RuntimeError: boom at import time"),
    ("sys_exit_at_import.py", "SystemExit"),
])
def test_a_submission_that_cannot_be_imported_scores_zero_with_the_reason(name, says):
    result, linear, softmax = graded(name)
    assert result.score == 0 and linear.score == softmax.score == 0
    assert says in all_messages(linear) and "could not import" in all_messages(softmax)


@pytest.mark.parametrize("name, outcome, says", [
    ("infinite_loop.py", "timeout", "ran longer than"),
    ("memory_bomb.py", "failed", "allocate"),
    ("os_exit_mid_test.py", "failed", "process exited with status 0"),
    ("killed_by_signal.py", "failed", "killed by signal SIGKILL"),
])
def test_a_runaway_softmax_loses_only_softmax_and_grading_resumes(name, outcome, says):
    result, linear, softmax = graded(name, timeout=6)
    assert linear.score == LINEAR, all_messages(linear)
    assert softmax.score == 0 and all(r.outcome != "passed" for r in softmax.records), all_messages(softmax)
    assert any(r.outcome == outcome and says in r.message for r in softmax.records), all_messages(softmax)


@pytest.mark.parametrize("name", ["monkeypatch_checks.py", "forge_results_file.py", "lying_tensor.py"])
def test_tampering_does_not_change_the_score_of_a_wrong_softmax(name):
    result, linear, softmax = graded(name)
    assert (linear.score, softmax.score, result.score) == (LINEAR, 0, LINEAR), all_messages(softmax)


@pytest.mark.skipif(isolation_mode() != "sandbox", reason=f"reading files is only blocked in the namespace sandbox; here: {isolation_mode()}")
def test_the_reference_can_be_neither_imported_nor_read_by_a_submission():
    result, linear, softmax = graded("steal_reference.py")
    assert (linear.score, softmax.score) == (LINEAR, 0), all_messages(softmax)


def test_printing_100_mb_is_capped_and_costs_nothing():
    result, linear, softmax = graded("print_100mb.py")
    assert linear.score == LINEAR and softmax.status == "not implemented"
    assert len(result.log) < 1_000_000


def test_a_forbidden_call_through_an_alias_is_reported_with_its_call_site():
    result, linear, softmax = graded("forbidden_alias.py")
    assert linear.score == LINEAR and softmax.score == 0
    assert "forbidden torch function" in softmax.reason and "forbidden_alias.py:" in softmax.reason


def test_configuration_files_shipped_in_a_submission_have_no_effect():
    """conftest.py, pytest.ini, pyproject.toml, sitecustomize.py and a .pth beside student/ are ignored."""
    result, linear, softmax = graded("config_hardening", submission=str(HOSTILE / "config_hardening"))
    assert linear.score == LINEAR, all_messages(linear)
    assert 0 < softmax.score < SOFTMAX, all_messages(softmax)  # its softmax ignores `dim`: only partly right
    assert not any("sitecustomize" in r.message or ".pth file" in r.message for r in linear.records + softmax.records)
