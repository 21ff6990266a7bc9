"""`lmgrade grade-all`: a folder of submissions graded in parallel into one CSV gradebook."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import lmgrade.grading.gradebook as gradebook
from lmgrade.catalogue.bugs import BUGS
from lmgrade.grading.grade import PROJECT_ROOT, Grade, GradingFailed
from lmgrade.grading.gradebook import FIXED_COLUMNS, find_submissions, grade_all
from lmgrade.core.rubric import load_rubric
from lmgrade.core.scoring import PASSED, TestRecord, score_items
from lmgrade.catalogue.variants import materialise

TESTS = ["tests/test_linear.py", "tests/test_softmax.py"]  # two items keep the run short


def read_csv(path: Path) -> tuple[list[str], dict[str, dict[str, str]]]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    return header, {row[0]: dict(zip(header, row)) for row in rows[1:]}


def test_two_submissions_graded_in_parallel_the_bug_loses_exactly_the_softmax_item(tmp_path):
    submissions = tmp_path / "submissions"
    shutil.copytree(PROJECT_ROOT / "student", submissions / "stubs" / "student", ignore=shutil.ignore_patterns("__pycache__"))
    bug = next(b for b in BUGS if b.name == "softmax_without_max_shift")
    materialise(bug, submissions)
    (submissions / "notes").mkdir()  # not a submission: no student/, no adapters.py

    # Trusted code (copies of the stubs and the reference): no sandbox, to keep the run short.
    rows = grade_all(submissions, tmp_path / "gradebook.csv", jobs=2, tests=TESTS, isolate=False, profile="fast")
    assert [r.submission for r in rows] == ["softmax_without_max_shift", "stubs"]

    rubric = load_rubric()
    header, table = read_csv(tmp_path / "gradebook.csv")
    assert header == FIXED_COLUMNS + [item.id for item in rubric.items]
    assert set(table) == {"softmax_without_max_shift", "stubs"}

    stubs = table["stubs"]
    assert stubs["status"] == "graded" and float(stubs["score"]) == 0 and float(stubs["max_score"]) == rubric.total
    assert all(float(stubs[item.id]) == 0 for item in rubric.items)

    buggy = table["softmax_without_max_shift"]
    assert buggy["status"] == "graded", buggy
    linear, softmax = rubric.by_id("linear"), rubric.by_id("softmax")
    assert float(buggy["linear"]) == linear.points  # everything else that ran is intact
    assert float(buggy["softmax"]) < softmax.points  # the bug's own item loses points
    ran = {"linear", "softmax"}
    assert all(float(buggy[item.id]) == 0 for item in rubric.items if item.id not in ran)  # did not run: 0, still listed
    assert float(buggy["score"]) == float(buggy["linear"]) + float(buggy["softmax"])

    results = json.loads((tmp_path / "gradebook_results" / "softmax_without_max_shift" / "results.json").read_text())
    assert results["score"] == float(buggy["score"]) and len(results["tests"]) == len(rubric.items)
    assert (tmp_path / "gradebook_results" / "stubs" / "report.md").is_file()


def test_a_submission_the_grader_fails_on_is_an_error_row_and_the_others_are_graded(tmp_path, monkeypatch):
    submissions = tmp_path / "submissions"
    for name in ("alice", "bob", "carol"):
        (submissions / name / "student").mkdir(parents=True)
    (submissions / "dave").mkdir()
    (submissions / "dave" / "adapters.py").write_text("# a CS336-style adapters file\n")
    rubric = load_rubric()

    def fake_grade(selection, **kwargs):
        where = selection.submission or selection.adapters
        if "bob" in where:
            raise GradingFailed("pytest could not run the suite (exit 3)")
        if "carol" in where:
            raise RuntimeError("something unexpected")
        records = [TestRecord(nodeid=f"{rubric.items[0].tests[0]}::test_x", outcome=PASSED)]
        return Grade(score_items(rubric, records, {}), rubric, 1.0, 1, "")

    monkeypatch.setattr(gradebook, "grade", fake_grade)
    assert [name for name, _ in find_submissions(submissions)] == ["alice", "bob", "carol", "dave"]
    assert find_submissions(submissions)[3][1].adapters.endswith("adapters.py")
    grade_all(submissions, tmp_path / "out" / "book.csv", jobs=3)
    _, table = read_csv(tmp_path / "out" / "book.csv")
    assert list(table) == ["alice", "bob", "carol", "dave"]
    for ok in ("alice", "dave"):
        assert table[ok]["status"] == "graded" and float(table[ok]["score"]) == rubric.items[0].points
    assert table["bob"]["status"].startswith("error: grader failed") and table["bob"]["score"] == ""
    assert table["carol"]["status"].startswith("error: grader crashed (RuntimeError)")
    assert "something unexpected" in (tmp_path / "out" / "book_results" / "carol" / "error.txt").read_text()


def test_the_command_writes_a_header_only_gradebook_for_an_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = subprocess.run([sys.executable, "-m", "lmgrade", "grade-all", str(tmp_path / "empty"), "--jobs", "2",
                           "--csv", str(tmp_path / "book.csv")], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    header, table = read_csv(tmp_path / "book.csv")
    assert header[:5] == FIXED_COLUMNS and table == {}


def test_an_honest_classmate_keeps_full_marks_beside_a_cache_poisoner_and_the_same_as_alone(tmp_path, monkeypatch, warm_pytest):
    """grade-all, sandboxed: a submission that overwrites every oracle-cache entry it can reach (and any other
    .safetensors) cannot change a classmate's score; each is graded from its own copy, in its own sandbox."""
    from lmgrade.grading.grade import Selection, grade

    cache = tmp_path / "oracle-cache"
    monkeypatch.setenv("LMGRADE_ORACLE_CACHE", str(cache))
    submissions = tmp_path / "submissions"
    shutil.copytree(PROJECT_ROOT / "reference", submissions / "honest" / "student",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (submissions / "poisoner").mkdir()
    shutil.copy(PROJECT_ROOT / "selftests" / "hostile" / "poison_cache.py", submissions / "poisoner" / "adapters.py")
    rows = {r.submission: r for r in grade_all(submissions, tmp_path / "book.csv", jobs=2, tests=TESTS, profile="fast")}
    full = {"linear": 3.0, "softmax": 3.0}
    assert {k: rows["honest"].items[k] for k in full} == full, rows["honest"]
    assert rows["poisoner"].items["softmax"] < 3.0 and rows["poisoner"].items["linear"] == 3.0  # its zeros: wrong
    assert any(cache.rglob("*.safetensors"))  # the cache was used, and held
    alone = grade(Selection(impl=None, submission=str(submissions / "honest")), profile="fast", tests=TESTS, runner=warm_pytest)
    assert {s.item.id: s.score for s in alone.scores if s.item.id in full} == full
