"""The time budget of one grading run, shared fairly among the rubric items."""

from __future__ import annotations

import time

import pytest


class TimeBudget:
    """The time budget of the whole run (--lmgrade-deadline), shared among the rubric items that run.

    When an item's first test starts, the item gets an equal share of what is left among the
    items not started yet: time a fast item leaves unused goes to the later ones, and a hang
    costs at most its own item's share.
    """

    def __init__(self):
        self.deadline: float | None = None
        self.total: float | None = None
        self.items: set[str] = set()
        self.share: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def setup(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        self.deadline = config.getoption("lmgrade_deadline", None)
        if self.deadline is None:
            return
        recorder = config.pluginmanager.get_plugin("lmgrade-recorder")
        self.items = {owner.id for owner in (recorder.rubric.item_of(i.nodeid) for i in items) if owner is not None}
        self.total = max(1.0, self.deadline - time.time())

    def limit(self, item_id: str | None, per_test: float) -> tuple[float, str]:
        """Seconds this test may run, and what it is limited by."""
        slow = f"the test ran longer than {per_test:g} s (an endless loop, or far too slow)"
        if self.deadline is None:
            return per_test, slow
        left = self.deadline - time.time()
        candidates = [(per_test, slow), (left, f"the grading's time budget ({self.total:.0f} s) was used up")]
        if item_id:
            if item_id not in self.share:
                waiting = max(1, len(self.items - set(self.share)))
                self.share[item_id] = max(0.0, left) / waiting
            candidates.append((self.share[item_id] - self.used.get(item_id, 0.0),
                               f"this item used up its share ({self.share[item_id]:.0f} s) of the grading's time budget"))
        return min(candidates, key=lambda c: c[0])
