"""The grading machinery: rubric lint, partial credit, prerequisites, output formats, determinism."""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from lmgrade.catalogue.bugs import BUGS
from lmgrade.grading.grade import PROJECT_ROOT, Selection, grade
from lmgrade.outputs.report import gradescope_results, junit_xml, markdown_report
from lmgrade.core.rubric import Item, Rubric, lint, load_rubric
from lmgrade.core.scoring import TestRecord, score_items
from lmgrade.catalogue.variants import materialise


def collected_nodeids() -> list[str]:
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"],
                         cwd=PROJECT_ROOT, capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "::" in line]


def test_rubric_lint_finds_nothing_wrong_with_the_real_rubric_and_suite():
    assert lint(load_rubric(), collected_nodeids()) == []


def test_rubric_lint_reports_untested_items_unowned_tests_and_wrong_totals():
    rubric = Rubric(total=10, items=(Item("a", "A", 3, True, ("tests/test_a.py",)), Item("b", "B", 3, True, ("tests/test_b.py",), ("zzz",))))
    problems = lint(rubric, ["tests/test_a.py::test_x", "tests/test_c.py::test_y"])
    text = "\n".join(problems)
    assert "add up to 6 points, but total = 10" in text
    assert "item 'b' has no tests" in text
    assert "tests/test_c.py::test_y belongs to 0 items" in text
    assert "builds on unknown item 'zzz'" in text


TOY = Rubric(total=10, items=(
    Item("base", "Base", 4, True, ("tests/test_base.py",)),
    Item("base.hidden", "Base hidden", 2, False, ("tests/hidden/test_base.py",)),
    Item("top", "Top", 4, True, ("tests/test_top.py",), ("base",)),
))


def _records(*rows):
    return [TestRecord(nodeid, outcome, message, category) for nodeid, outcome, message, category in rows]


def test_partial_credit_is_per_test_function_and_every_case_of_a_function_must_pass():
    records = _records(
        ("tests/test_base.py::test_a[cpu-1]", "passed", "", ""),
        ("tests/test_base.py::test_a[cpu-2]", "failed", "worst element …", "wrong values"),
        ("tests/test_base.py::test_b[cpu]", "passed", "", ""),
        ("tests/test_base.py::test_b[cuda]", "skipped", "no CUDA", ""),
        ("tests/hidden/test_base.py::test_c[cpu]", "passed", "", ""),
        ("tests/test_top.py::test_d", "passed", "", ""),
    )
    base, hidden, top = score_items(TOY, records, {})
    assert (base.score, base.status, base.functions_passed, base.functions_graded) == (2.0, "partial", 1, 2)
    assert base.reason == "test_a: worst element …"
    assert hidden.score == 2.0
    # Charged once: top builds on base, which lost points, yet top keeps its own full marks.
    assert (top.score, top.status) == (4.0, "passed")


def test_hidden_items_report_the_category_of_a_failure_never_its_message():
    records = _records(("tests/hidden/test_base.py::test_c[cpu]", "failed", "input x=[0.3, …] got 1.2", "wrong values"))
    hidden = score_items(TOY, records, {})[1]
    assert hidden.reason == "test_c: wrong values" and "0.3" not in json.dumps(gradescope_results([hidden]))


def test_items_that_did_not_run_or_failed_to_collect_score_zero_and_stay_listed():
    records = _records(("tests/test_top.py::test_d[cuda]", "skipped", "no CUDA device on this machine: CUDA not graded here", ""))
    base, hidden, top = score_items(TOY, records, {"tests/test_base.py": "SyntaxError: invalid syntax"})
    assert (base.score, base.status) == (0.0, "error") and "could not be collected" in base.reason
    assert (hidden.score, hidden.status) == (0.0, "error")
    assert (top.score, top.status) == (0.0, "not graded here") and "CUDA" in top.reason


def test_stub_items_are_not_implemented_rather_than_failed_by_prerequisite():
    records = _records(("tests/test_base.py::test_a", "not implemented", "Linear.forward", "not implemented"),
                       ("tests/test_top.py::test_d", "not implemented", "Block.forward", "not implemented"))
    base, _, top = score_items(TOY, records, {})
    assert base.status == top.status == "not implemented"


def test_gradescope_junit_and_markdown_outputs_follow_their_schemas():
    records = _records(("tests/test_base.py::test_a", "passed", "", ""), ("tests/hidden/test_base.py::test_c", "failed", "m", "wrong values"),
                       ("tests/test_top.py::test_d", "passed", "", ""))
    scores = score_items(TOY, records, {})
    results = gradescope_results(scores, execution_time=3.2)
    assert results["score"] == 8.0 and isinstance(results["tests"], list) and len(results["tests"]) == 3
    for test in results["tests"]:
        assert set(test) >= {"name", "score", "max_score", "status", "output", "visibility"}
        assert test["status"] in ("passed", "failed") and test["visibility"] in ("visible", "after_due_date", "after_published", "hidden")
    suite = ET.fromstring(junit_xml(scores))
    points = {case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")} for case in suite.iter("testcase")}
    assert points["base.hidden"]["points"] == "0" and points["base.hidden"]["max_points"] == "2"
    assert suite.get("failures") == "1"  # base.hidden only: top, built on base, keeps its points
    assert "**Score: 8.00 / 10**" in markdown_report(scores, "t")


def test_the_same_submission_graded_twice_gets_the_same_outcomes(tmp_path, warm_pytest):
    """Derandomized, database-free profiles: identical records, not just the same total, whether pytest starts
    anew or forks the warm server (lmgrade.grading.warm)."""
    buggy = next(b for b in BUGS if b.name == "rmsnorm_eps_outside_root")
    selection = Selection(submission=str(materialise(buggy, tmp_path)))
    files = ["tests/test_rmsnorm.py", "tests/hidden/test_rmsnorm.py", "tests/hidden/test_softmax.py"]
    first, second = (grade(selection, profile="fast", tests=files, runner=runner) for runner in (warm_pytest, None))
    assert [(s.item.id, s.score, s.reason) for s in first.scores] == [(s.item.id, s.score, s.reason) for s in second.scores]
    assert 0 < first.score < 5 + 3  # the bug costs points in rmsnorm, softmax still earns its own


def test_a_looping_test_times_out_and_the_run_goes_on(tmp_path, warm_pytest):
    looping = tmp_path / "adapters.py"
    looping.write_text("def run_softmax(in_features, dim):\n    while True:\n        pass\n")
    result = grade(Selection(adapters=str(looping)), tests=["tests/test_softmax.py::test_softmax_is_unchanged_by_adding_1000", "tests/test_linear.py"], per_test_timeout=2,
                   runner=warm_pytest)
    softmax = next(s for s in result.scores if s.item.id == "softmax")
    linear = next(s for s in result.scores if s.item.id == "linear")
    assert softmax.score == 0 and any(r.outcome == "timeout" for r in softmax.records)
    assert linear.status == "not implemented"  # the file defines no run_linear: reported, not crashed


def test_two_processes_run_every_test_once_and_score_as_one(tmp_path):
    """workers=2 (lmgrade.grading.shard_plugin): each test runs in exactly one of the two pytest processes,
    both take a share of the tests, and the outcomes and scores are those of one process."""
    bug = next(b for b in BUGS if b.name == "lr_warmup_off_by_one")
    submission = str(materialise(bug, tmp_path))
    tests = ["tests/test_get_batch.py", "tests/test_lr_schedule.py", "tests/hidden/test_lr_schedule.py", "tests/test_gradient_clipping.py"]
    one = grade(Selection(submission=submission), profile="fast", tests=tests)
    two = grade(Selection(submission=submission), profile="fast", tests=tests, workers=2)

    def outcomes(result):
        return [(r.nodeid, r.outcome) for s in result.scores for r in s.records]

    ran_twice = [nodeid for nodeid, _ in outcomes(two) if [n for n, _ in outcomes(two)].count(nodeid) > 1]
    assert ran_twice == []
    assert sorted(outcomes(two)) == sorted(outcomes(one)) and any(o == "failed" for _, o in outcomes(one))
    assert [(s.item.id, s.score) for s in two.scores] == [(s.item.id, s.score) for s in one.scores]
    summaries = [line for line in two.log.splitlines() if " in " in line and ("passed" in line or "failed" in line)]
    assert len(summaries) == 2, two.log[-2000:]  # both processes ran tests


# One bug on the whole suite (selfcheck runs every bug on its own items and those built on them):
# SwiGLU is called by the block, the LM, the cache, generation and perplexity: each keeps its points.
@pytest.mark.parametrize("bug_name, lost", [("swiglu_w1_w3_swapped", {"swiglu", "swiglu.hidden"})])
def test_one_broken_component_loses_exactly_its_own_items_on_the_whole_suite(bug_name, lost, tmp_path, warm_pytest):
    bug = next(b for b in BUGS if b.name == bug_name)
    result = grade(Selection(submission=str(materialise(bug, tmp_path))), profile="fast", runner=warm_pytest)
    losing = {s.item.id for s in result.scores if s.score < s.max_score}
    assert losing == lost, result.log[-3000:]
