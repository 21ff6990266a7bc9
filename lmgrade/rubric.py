"""The rubric: items with points, visibility, the tests that decide them, and prerequisites."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

RUBRIC_PATH = Path(__file__).resolve().parent / "rubric.toml"


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    points: float
    visible: bool
    tests: tuple[str, ...]
    requires: tuple[str, ...] = ()

    def owns(self, nodeid: str) -> bool:
        return any(nodeid == p or nodeid.startswith(p + "::") or nodeid.startswith(p + "[") for p in self.tests)


@dataclass(frozen=True)
class Rubric:
    total: float
    items: tuple[Item, ...]

    def item_of(self, nodeid: str) -> Item | None:
        for item in self.items:
            if item.owns(nodeid):
                return item
        return None

    def by_id(self, item_id: str) -> Item:
        return next(item for item in self.items if item.id == item_id)


def load_rubric(path: Path = RUBRIC_PATH) -> Rubric:
    data = tomllib.loads(Path(path).read_text())
    items = tuple(
        Item(
            id=raw["id"],
            title=raw.get("title", raw["id"]),
            points=float(raw["points"]),
            visible=bool(raw.get("visible", True)),
            tests=tuple(raw["tests"]),
            requires=tuple(raw.get("requires", ())),
        )
        for raw in data["items"]
    )
    return Rubric(total=float(data["total"]), items=items)


def lint(rubric: Rubric, collected_nodeids: list[str]) -> list[str]:
    """Problems with the rubric: the list is empty when it is sound."""
    problems = []
    ids = [item.id for item in rubric.items]
    for duplicate in {i for i in ids if ids.count(i) > 1}:
        problems.append(f"item id {duplicate!r} is declared twice")
    points = sum(item.points for item in rubric.items)
    if abs(points - rubric.total) > 1e-9:
        problems.append(f"items add up to {points:g} points, but total = {rubric.total:g}")
    for item in rubric.items:
        if item.points <= 0:
            problems.append(f"item {item.id!r} has {item.points:g} points")
        if not any(item.owns(n) for n in collected_nodeids):
            problems.append(f"item {item.id!r} has no tests (selectors {list(item.tests)})")
        for required in item.requires:
            if not any(i == required or i.startswith(required + ".") for i in ids):
                problems.append(f"item {item.id!r} requires unknown item {required!r}")
    for nodeid in collected_nodeids:
        owners = [item.id for item in rubric.items if item.owns(nodeid)]
        if len(owners) != 1:
            problems.append(f"test {nodeid} belongs to {len(owners)} items {owners}; it must belong to exactly one")
    return problems
