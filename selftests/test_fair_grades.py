"""Correct float32 work gets full marks (SPEC §4.1), under both rubrics.

selftests/cs336_float32 is an independent CS336-style submission written from the SPEC alone:
nn.Modules holding float32 parameters, weights loaded with load_state_dict in a flat adapters
file, as CS336 students write it. Float64 inputs make its einsum raise, as they would for any
such submission: it must lose the `dtype` item and nothing else.
"""

from pathlib import Path

import pytest

from lmgrade.grading.grade import Selection, grade
from lmgrade.core.rubric import load_rubric
from lmgrade.core.scoring import score_items

# Its module-scoped fixtures are built once: every test of this file runs on one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("test_fair_grades")

ADAPTERS = Path(__file__).parent / "cs336_float32" / "adapters.py"


@pytest.fixture(scope="module")
def float32_grade(warm_pytest):
    return grade(Selection(adapters=str(ADAPTERS)), profile="fast", runner=warm_pytest)


def test_a_correct_float32_cs336_submission_gets_full_marks_except_dtype_padding_and_the_training_loop(float32_grade):
    """It loses `dtype` (float64 inputs), `padding` (its adapters take no attention_mask: not implemented) and
    `training` (CS336 has no adapter for a training loop: the default rubric grades train_step, which a flat
    CS336 adapters file does not expose); nothing else. Its GPT-2 variant (cs336_lm/gpt2.py, written from the
    SPEC alone, without the reference) gets full marks on the GPT-2 items."""
    short = {s.item.id: f"{s.score:g}/{s.max_score:g} {s.status}: {s.reason[:300]}"
             for s in float32_grade.scores if s.score < s.max_score}
    assert set(short) == {"dtype", "padding", "padding.hidden", "training", "training.hidden"}, short
    assert all(float32_grade_status(float32_grade, item) == "not implemented"
               for item in ("padding", "padding.hidden", "training", "training.hidden")), short


def float32_grade_status(result, item_id: str) -> str:
    return next(s.status for s in result.scores if s.item.id == item_id)


def test_the_same_submission_gets_the_full_cs336_rubric(float32_grade):
    records = [record for s in float32_grade.scores for record in s.records]
    cs336 = load_rubric("cs336")
    scores = score_items(cs336, records, {})
    assert sum(s.score for s in scores) == cs336.total, [(s.item.id, s.score, s.reason[:200]) for s in scores if s.score < s.max_score]
    assert "dtype" not in {s.item.id for s in scores} and "kv_cache" not in {s.item.id for s in scores}
