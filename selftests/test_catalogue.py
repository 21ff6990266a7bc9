"""The bug catalogue and the diagnosis, checked fast.

The expensive proof (every bug loses its own item and is diagnosed as itself, every valid
alternative keeps full marks, the reference full marks, the stubs zero) is `lmgrade selfcheck`,
which CI runs as a separate command; these tests only check the catalogue's structure and
that a diagnosis names the right bug.
"""

import pytest
import torch

from lmgrade.catalogue.bugs import ALTERNATIVES, BUGS, CATALOGUE
from lmgrade.core.compare import LIKELY_CAUSE, Mismatch, Tolerance
from lmgrade.catalogue.diagnosis import candidate_groups, diagnose_outputs, explained
from lmgrade.core.parts import COMPONENT_OF
from lmgrade.core.oracle import LiveOracle, SnapshotOracle
from lmgrade.grading.recorder import classify
from lmgrade.core.rubric import load_rubric
from lmgrade.grading.selfcheck import Check
from lmgrade.outputs.report import charged_where
from lmgrade.grading.selfcheck import test_files as files_of_item
from lmgrade.catalogue.variants import materialise

# Its module-scoped fixtures are built once: every test of this file runs on one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("test_catalogue")

RUBRIC_IDS = {item.id for item in load_rubric().items}


@pytest.mark.parametrize("variant", CATALOGUE, ids=lambda v: v.name)
def test_variant_edits_apply_to_the_reference_exactly_once(variant, tmp_path):
    materialise(variant, tmp_path)


def test_catalogue_has_at_least_40_bugs_and_6_alternatives_with_unique_names():
    names = [v.name for v in CATALOGUE]
    assert len(BUGS) >= 40 and len(ALTERNATIVES) >= 6
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})


def test_descriptions_are_single_distinct_lines():
    descriptions = [v.description for v in CATALOGUE]
    for d in descriptions:
        assert d and "\n" not in d and d == d.strip(), repr(d)
    # A diagnosis is recognised by its description: no description may contain another one.
    for a in BUGS:
        for b in BUGS:
            assert a is b or a.description not in b.description, (a.name, b.name)


@pytest.mark.parametrize("variant", BUGS, ids=lambda v: v.name)
def test_every_bug_names_a_real_rubric_item_that_has_tests(variant):
    assert variant.item in RUBRIC_IDS
    assert files_of_item(variant.item)
    assert variant.edits


@pytest.mark.parametrize("variant", ALTERNATIVES, ids=lambda v: v.name)
def test_every_alternative_is_checked_on_real_rubric_items(variant):
    assert variant.checked_items and not variant.is_bug
    assert set(variant.checked_items) <= RUBRIC_IDS


def test_every_component_with_bugs_is_reachable_by_a_diagnosis():
    """A bug whose component no adapter maps to could never be diagnosed."""
    # dtype bugs: candidates for every adapter's non-float32 cases; padding bugs: for the padding tests, which
    # diagnose the LM's calls by their own item (tests/test_padding.py, `diagnosed(..., component="padding")`).
    components = set(COMPONENT_OF.values()) | {"dtype", "padding"}
    assert {b.item.split(".")[0] for b in BUGS} <= components
    assert all(b.item == "dtype" for b in candidate_groups("run_rope", torch.float64)[0])
    groups = candidate_groups("run_transformer_lm")
    assert [b.item for b in groups[0]] == ["lm"] * len(groups[0])  # its own bugs first…
    assert any(b.item == "attention" for b in groups[1])  # …then those of what it builds on


# --- the diagnosis -----------------------------------------------------------------------------


def _case():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 8, generator=g, dtype=torch.float64) for _ in range(3))
    return dict(Q=q, K=k, V=v, mask=torch.ones(4, 4, dtype=torch.bool).tril())


@pytest.fixture(scope="module")
def live_oracle():
    import adapters

    return LiveOracle(adapters.select(impl="reference"))


def _bug(name):
    return next(b for b in BUGS if b.name == name)


def test_a_diagnosis_names_the_bug_whose_output_a_wrong_answer_equals(live_oracle):
    from lmgrade.catalogue.diagnosis import bound_variant
    from lmgrade.core.evaluation import outputs_and_grads

    args, wrt = _case(), ["Q", "K", "V"]
    bug = _bug("attention_without_scale")
    got = outputs_and_grads(bound_variant(bug), "run_scaled_dot_product_attention", args, wrt)
    tol = Tolerance(rtol=1e-9, atol=1e-10)  # the suite's float64 tolerance
    diagnosis = diagnose_outputs(live_oracle, "run_scaled_dot_product_attention", args, got, tol, wrt)
    assert diagnosis == bug.description

    # The reference's own output matches no bug, and the handout (snapshots only) never diagnoses.
    right = live_oracle.expected("run_scaled_dot_product_attention", args, wrt)
    assert diagnose_outputs(live_oracle, "run_scaled_dot_product_attention", args, right, tol, wrt) is None
    assert diagnose_outputs(SnapshotOracle(), "run_scaled_dot_product_attention", args, got, tol, wrt) is None


def test_a_diagnosis_reaches_the_message_and_the_hidden_category_once():
    calls = []
    error = explained(Mismatch("output vs the reference: 3 of 8 elements differ"), lambda: calls.append(1) or "the bug")
    with pytest.raises(Mismatch) as excinfo:
        raise error
    outcome, message, category = classify(excinfo)
    assert message.endswith(f"\n{LIKELY_CAUSE}the bug") and category == f"wrong values; {LIKELY_CAUSE}the bug"
    assert "3 of 8" not in category and calls == [1]  # computed once, never with the inputs

    quiet = explained(Mismatch("x"), lambda: 1 / 0)  # a failing diagnosis is no diagnosis
    assert str(quiet) == "x" and quiet.diagnosis is None


def test_the_charged_where_table_marks_lost_kept_and_not_run_items():
    checks = [Check("bug", "a_bug", True, lost={"linear": True}, diagnosed=True),
              Check("bug", "another", False, lost={"rope": False}, diagnosed=False)]
    lines = charged_where(checks, ["linear", "embedding", "rope"]).splitlines()
    assert lines[-2].startswith("a_bug") and lines[-2].endswith("│ ✓   │ ✓")
    assert lines[-1].endswith("│   · │ ✗")
