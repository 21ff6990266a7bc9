"""From test outcomes to item scores, following the partial-credit rule of rubric.toml."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from lmgrade.core.rubric import Item, Rubric

# Outcomes of one test case (one node id).
PASSED, FAILED, ERROR, SKIPPED, NOT_IMPLEMENTED, TIMEOUT = "passed", "failed", "error", "skipped", "not implemented", "timeout"


@dataclass
class TestRecord:
    __test__ = False  # not a pytest test class

    nodeid: str
    outcome: str
    message: str = ""  # full message, for visible items
    category: str = ""  # short kind of failure, safe to show for hidden items
    # Pictures' data (compare.error_profile, compare.dependence_profile): visible items only.
    profiles: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ItemScore:
    item: Item
    score: float
    status: str  # passed, partial, failed, not implemented, not graded here, error
    reason: str = ""
    functions_passed: int = 0
    functions_graded: int = 0
    records: list[TestRecord] = field(default_factory=list)

    @property
    def max_score(self) -> float:
        return self.item.points


def function_of(nodeid: str) -> str:
    """The test function of a case: the node id without its parametrization."""
    return re.sub(r"\[.*\]$", "", nodeid)


def score_items(rubric: Rubric, records: list[TestRecord], collection_errors: dict[str, str]) -> list[ItemScore]:
    by_item: dict[str, list[TestRecord]] = {item.id: [] for item in rubric.items}
    for record in records:
        item = rubric.item_of(record.nodeid)
        if item is not None:
            by_item[item.id].append(record)
    scores = {item.id: _score_item(item, by_item[item.id], collection_errors) for item in rubric.items}
    return [scores[item.id] for item in rubric.items]


def _score_item(item: Item, records: list[TestRecord], collection_errors: dict[str, str]) -> ItemScore:
    for path, message in collection_errors.items():
        if any(prefix.split("::")[0] == path for prefix in item.tests):
            reason = f"tests could not be collected: {message}" if item.visible else "tests could not be collected"
            return ItemScore(item, 0.0, "error", reason, records=records)
    if not records:
        return ItemScore(item, 0.0, "error", "no test of this item ran", records=records)

    functions: dict[str, list[TestRecord]] = {}
    for record in records:
        functions.setdefault(function_of(record.nodeid), []).append(record)
    graded = {name: cases for name, cases in functions.items() if any(c.outcome != SKIPPED for c in cases)}
    if not graded:
        reason = next((c.message for c in records if c.message), "every test was skipped")
        return ItemScore(item, 0.0, "not graded here", reason, records=records)

    passed = [name for name, cases in graded.items() if all(c.outcome in (PASSED, SKIPPED) for c in cases)]
    score = item.points * len(passed) / len(graded)
    bad = [c for cases in graded.values() for c in cases if c.outcome not in (PASSED, SKIPPED)]
    if not bad:
        status, reason = "passed", ""
    else:
        first = bad[0]
        if all(c.outcome == NOT_IMPLEMENTED for c in bad) and not passed:
            status = "not implemented"
        else:
            status = "partial" if passed else "failed"
        reason = f"{function_of(first.nodeid).split('::')[-1]}: " + (first.message if item.visible else first.category)
    return ItemScore(item, score, status, reason, len(passed), len(graded), records)
