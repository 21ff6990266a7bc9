"""Feedback a student can act on: per-item feedback levels, and pictures of where the error is."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from lmgrade.catalogue.bugs import BUGS
from lmgrade.catalogue.variants import materialise
from lmgrade.core.compare import PROFILE_SIDE, Mismatch, Tolerance, assert_close
from lmgrade.core.rubric import Item, RubricError, load_rubric
from lmgrade.core.scoring import FAILED, PASSED, ItemScore, TestRecord
from lmgrade.grading.grade import Selection, grade
from lmgrade.outputs.report import DETAILS_HIDDEN, gradescope_results, html_report, markdown_report, scorecard_text

DEMO = Path("/tmp/feedback_demo/report.html")
SECRET = "run_x output vs the reference: worst element at index [3, 1]"

RUBRIC = """
name = "toy"
total = 3
[[items]]
id = "a"
points = 1
tests = ["tests/test_a.py"]
[[items]]
id = "a.hidden"
points = 1
visible = false
tests = ["tests/hidden/test_a.py"]
[[items]]
id = "b"
points = 1
tests = ["tests/test_b.py"]
"""


def _rubric(tmp_path, text):
    path = tmp_path / "rubric.toml"
    path.write_text(text)
    return load_rubric(path)


def test_feedback_defaults_and_every_level_loads(tmp_path):
    rubric = _rubric(tmp_path, RUBRIC)
    assert [i.feedback for i in rubric.items] == ["visible", "after_due_date", "visible"]
    for level in ("visible", "score_only", "after_due_date", "after_published"):
        item = _rubric(tmp_path, RUBRIC.replace('id = "b"', f'id = "b"\nfeedback = "{level}"')).by_id("b")
        assert item.feedback == level and item.details_shown == (level != "score_only")
    assert {i.feedback for i in load_rubric("default").items} == {"visible", "after_due_date"}
    assert {i.feedback for i in load_rubric("cs336").items} == {"visible", "after_due_date"}


@pytest.mark.parametrize("line, words", [('feedback = "sometimes"', ["'b'", "sometimes", "score_only"]),
                                         ('feedbak = "score_only"', ["'b'", "feedbak"])])
def test_a_bad_feedback_value_or_key_is_a_clear_error_naming_the_item(tmp_path, line, words):
    with pytest.raises(RubricError) as error:
        _rubric(tmp_path, RUBRIC.replace('id = "b"', f'id = "b"\n{line}'))
    assert all(word in str(error.value) for word in words), str(error.value)


def _scores(feedback: str) -> list[ItemScore]:
    record = TestRecord("tests/test_b.py::test_x", FAILED, SECRET, "wrong values")
    item = Item("b", "B", 2.0, True, ("tests/test_b.py",), feedback=feedback)
    passed = Item("a", "A", 1.0, True, ("tests/test_a.py",))
    hidden = Item("a.hidden", "A hidden", 1.0, False, ("tests/hidden/test_a.py",))
    return [ItemScore(passed, 1.0, "passed", records=[TestRecord("tests/test_a.py::test_y", PASSED)]),
            ItemScore(hidden, 0.0, "failed", "test_z: wrong values"),
            ItemScore(item, 0.0, "failed", f"test_x: {SECRET}", 0, 1, [record])]


def test_score_only_shows_points_and_hides_the_message_everywhere():
    scores = _scores("score_only")
    results = gradescope_results(scores)
    b = results["tests"][2]
    assert b["score"] == 0 and b["max_score"] == 2 and b["visibility"] == "visible"
    assert SECRET not in json.dumps(results) and DETAILS_HIDDEN in b["output"]
    card = scorecard_text(scores, 4.0)
    assert SECRET not in card and len(card.splitlines()) == len(scores) + 2  # one line per item
    assert next(line for line in card.splitlines() if line.startswith("b ")).endswith(DETAILS_HIDDEN)
    for page in (markdown_report(scores, "t"), html_report(scores, "t")):
        assert SECRET not in page and DETAILS_HIDDEN in page and "0.00 / 2" in page


def test_visible_and_later_levels_show_the_message_with_the_gradescope_visibility():
    for level, visibility in [("visible", "visible"), ("after_due_date", "after_due_date"), ("after_published", "after_published")]:
        scores = _scores(level)
        results = gradescope_results(scores)
        assert results["tests"][2]["visibility"] == visibility and SECRET in results["tests"][2]["output"]
        assert results["tests"][1]["visibility"] == "after_due_date"  # the hidden item's default
        assert SECRET in markdown_report(scores, "t") and SECRET in scorecard_text(scores)
        if level != "visible":
            assert "after" in next(line for line in scorecard_text(scores).splitlines() if line.startswith("b "))


def test_an_error_profile_is_small_json_and_says_where_the_error_is():
    expected = torch.randn(2, 3, 300, 40, dtype=torch.float64)
    got = expected.clone()
    got[..., 200:, :] += 1.0  # wrong from position 200 on
    got[0, 0, 0, 0] = float("nan")
    with pytest.raises(Mismatch) as error:
        assert_close(got, expected, Tolerance(1e-6, 1e-6, "t"), "x output vs the reference", axes=("b", "h", "seq", "d"))
    (profile,) = error.value.profiles
    json.dumps(profile, allow_nan=False)
    values = profile["values"]
    assert profile["kind"] == "map" and profile["axes"] == ["seq", "d"] and profile["sizes"] == [300, 40]
    assert len(values) <= PROFILE_SIDE and all(len(row) <= PROFILE_SIDE for row in values)
    width = profile["bins"][0]
    assert values[0][0] is None  # NaN
    assert all(v == 0 for row in values[1 : 199 // width] for v in row)
    assert all(v == 1.0 for row in values[-(100 // width) :] for v in row)


@pytest.fixture(scope="module")
def causal_mask_bug_graded(tmp_path_factory):
    """A submission whose multi-head attention leaves out the causal mask, graded on the visible and
    hidden attention tests."""
    bug = next(b for b in BUGS if b.item == "attention" and "causal mask" in b.description
               and b.name == "attention_without_causal_mask")
    submission = materialise(bug, tmp_path_factory.mktemp("causal"))
    result = grade(Selection(submission=str(submission)), tests=["tests/test_attention.py", "tests/hidden/test_attention.py"],
                   profile="fast")
    scores = {s.item.id: s for s in result.scores if s.records}
    assert scores["attention"].score < scores["attention"].max_score
    assert scores["attention.hidden"].score < scores["attention.hidden"].max_score
    return scores


def test_the_html_page_of_a_causal_mask_bug_embeds_its_pictures_and_nothing_else(causal_mask_bug_graded):
    page = html_report(list(causal_mask_bug_graded.values()), "causal mask left out")
    DEMO.parent.mkdir(parents=True, exist_ok=True)
    DEMO.write_text(page)
    assert page.count('<img alt="where the error is" src="data:image/png;base64,') >= 1
    assert "http://" not in page and "https://" not in page
    assert all(src.startswith("data:image/png;base64,") for src in re.findall(r'src="([^"]*)"', page))
    assert not re.search(r"<(script|link)\b|url\(|@import", page)
    assert "![where the error is" in markdown_report(list(causal_mask_bug_graded.values()), "t")


def test_the_attention_dependence_map_is_the_future_triangle(causal_mask_bug_graded):
    maps = [p for r in causal_mask_bug_graded["attention"].records for p in r.profiles if p["kind"] == "dependence"]
    assert maps
    for profile in maps:  # +1 exactly where a query uses a later token: the mask is missing
        n = profile["sizes"][0]
        assert profile["values"] == [[1 if j > i else 0 for j in range(n)] for i in range(n)]


def test_a_hidden_items_record_has_no_error_profile(causal_mask_bug_graded):
    hidden = causal_mask_bug_graded["attention.hidden"]
    failed = [r for r in hidden.records if r.outcome == FAILED]
    assert failed and all(r.category.startswith("wrong values") for r in failed)
    assert all(not r.profiles for r in hidden.records)
    assert any(r.profiles for r in causal_mask_bug_graded["attention"].records)
