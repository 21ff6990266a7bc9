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
# Named rubrics: the default one (this assignment) and CS336 assignment 1 as its handout asks.
RUBRICS = {"default": RUBRIC_PATH, "cs336": RUBRIC_PATH.with_name("rubric_cs336.toml")}

# How much of an item's result a student sees (`feedback` in the rubric), as Gradescope's test
# `visibility`: "visible" (points and messages now), "score_only" (points now, messages never:
# "details hidden"), "after_due_date" / "after_published" (everything, once the due date has
# passed / the grades are published). Hidden items never show inputs, whatever the level: their
# messages are a category of failure (recorder.classify), and they carry no error profile.
FEEDBACK_LEVELS = ("visible", "score_only", "after_due_date", "after_published")
# Default: visible items "visible"; hidden items "after_due_date": they are there to catch what the
# visible tests miss, so showing which one failed before the deadline would let a student probe
# them submission by submission, while after it (late days included) the result is worth learning from.
DEFAULT_FEEDBACK = {True: "visible", False: "after_due_date"}


class RubricError(ValueError):
    """A rubric file that cannot be used as it is."""


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    points: float
    visible: bool
    tests: tuple[str, ...]
    # Components this item's code calls (the block calls attention, …). Never used to score: a
    # mistake is charged once, in its own item. Diagnosis looks for the bugs of these too, and
    # selfcheck runs a bug on the items built on its component to prove they keep their points.
    builds_on: tuple[str, ...] = ()
    # Substrings of test names this item leaves out (the cs336 rubric leaves out ignore_index).
    exclude: tuple[str, ...] = ()
    # What a student sees of this item (FEEDBACK_LEVELS); None: DEFAULT_FEEDBACK[visible].
    feedback: str | None = None

    def __post_init__(self):
        if self.feedback is None:
            object.__setattr__(self, "feedback", DEFAULT_FEEDBACK[self.visible])
        elif self.feedback not in FEEDBACK_LEVELS:
            raise RubricError(f"item {self.id!r}: feedback = {self.feedback!r} is not one of {list(FEEDBACK_LEVELS)}")

    @property
    def details_shown(self) -> bool:
        """Whether a student ever sees this item's messages (and, if visible, its pictures)."""
        return self.feedback != "score_only"

    def owns(self, nodeid: str) -> bool:
        if any(word in nodeid.split("::")[-1] for word in self.exclude):
            return False
        return any(nodeid == p or nodeid.startswith(p + "::") or nodeid.startswith(p + "[") for p in self.tests)


@dataclass(frozen=True)
class Rubric:
    total: float
    items: tuple[Item, ...]
    name: str = "default"
    title: str = ""
    time_budget_seconds: float = 900.0  # the whole grading of one submission
    not_counted: tuple[str, ...] = ()  # what the assignment has that this rubric leaves out

    def item_of(self, nodeid: str) -> Item | None:
        for item in self.items:
            if item.owns(nodeid):
                return item
        return None

    def by_id(self, item_id: str) -> Item:
        return next(item for item in self.items if item.id == item_id)


def rubric_path(name_or_path: str | Path | None = None) -> Path:
    """The file of a named rubric ("default", "cs336") or of a rubric given by path."""
    if name_or_path is None:
        return RUBRIC_PATH
    if str(name_or_path) in RUBRICS:
        return RUBRICS[str(name_or_path)]
    path = Path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"no rubric {name_or_path!r}: expected one of {sorted(RUBRICS)} or a .toml file")
    return path


ITEM_KEYS = {"id", "title", "points", "visible", "tests", "builds_on", "exclude", "feedback"}


def _item(raw: dict) -> Item:
    unknown = sorted(set(raw) - ITEM_KEYS)
    if unknown:  # a misspelt `feedback` would silently leave the default
        raise RubricError(f"item {raw.get('id', '?')!r}: unknown key(s) {unknown}; known: {sorted(ITEM_KEYS)}")
    return Item(
        id=raw["id"],
        title=raw.get("title", raw["id"]),
        points=float(raw["points"]),
        visible=bool(raw.get("visible", True)),
        tests=tuple(raw["tests"]),
        builds_on=tuple(raw.get("builds_on", ())),
        exclude=tuple(raw.get("exclude", ())),
        feedback=raw.get("feedback"),
    )


def load_rubric(name_or_path: str | Path | None = None) -> Rubric:
    path = rubric_path(name_or_path)
    data = tomllib.loads(Path(path).read_text())
    try:
        items = tuple(_item(raw) for raw in data["items"])
    except RubricError as error:
        raise RubricError(f"rubric {path}: {error}") from None
    return Rubric(total=float(data["total"]), items=items, name=data.get("name", path.stem),
                  title=data.get("title", ""), time_budget_seconds=float(data.get("time_budget_seconds", 900)),
                  not_counted=tuple(data.get("not_counted", ())))


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
        for required in item.builds_on:
            if not any(i == required or i.startswith(required + ".") for i in ids):
                problems.append(f"item {item.id!r} builds on unknown item {required!r}")
    for nodeid in collected_nodeids:
        owners = [item.id for item in rubric.items if item.owns(nodeid)]
        if len(owners) != 1 and not (rubric.not_counted and not owners):  # a partial rubric may leave tests out
            problems.append(f"test {nodeid} belongs to {len(owners)} items {owners}; it must belong to exactly one")
    return problems
