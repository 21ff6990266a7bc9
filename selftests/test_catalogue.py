"""The suite catches every catalogued bug in the item it belongs to, and passes every valid alternative."""

import pytest

from lmgrade.bugs import ALTERNATIVES, BUGS, CATALOGUE
from lmgrade.selfcheck import grade_variant
from lmgrade.variants import materialise


@pytest.mark.parametrize("variant", CATALOGUE, ids=lambda v: v.name)
def test_variant_edits_apply_to_the_reference_exactly_once(variant, tmp_path):
    materialise(variant, tmp_path)


@pytest.mark.parametrize("variant", BUGS, ids=lambda v: v.name)
def test_bug_fails_a_test_of_its_own_item(variant, tmp_path):
    outcome = grade_variant(variant, tmp_path)
    assert not outcome.errors, f"{variant.name}: errors instead of failures: {outcome.errors}\n{outcome.log}"
    assert outcome.failed, f"{variant.name} ({variant.description}) passed every test of item {variant.item!r}\n{outcome.log}"


@pytest.mark.parametrize("variant", ALTERNATIVES, ids=lambda v: v.name)
def test_valid_alternative_passes_every_test_it_touches(variant, tmp_path):
    outcome = grade_variant(variant, tmp_path)
    assert outcome.passed and not outcome.failed and not outcome.errors, (
        f"{variant.name} ({variant.description}) is correct but failed {outcome.failed + outcome.errors}\n{outcome.log}"
    )
