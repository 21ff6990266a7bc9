"""Variants of the reference: catalogued bugs (must lose their item) and valid alternatives (must not).

A variant is the reference package with a few exact source edits, written out as a
submission folder (`<dir>/student/`) and graded like any student's. An edit whose `old`
text does not occur exactly once is an error, so refactoring the reference cannot silently
turn a bug into a no-op.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "reference"


@dataclass(frozen=True)
class Edit:
    file: str  # relative to the reference package, e.g. "attention.py"
    old: str
    new: str


@dataclass(frozen=True)
class Variant:
    name: str
    description: str  # one line, in the words a student would understand
    edits: tuple[Edit, ...]
    # A bug must lose this item; a valid alternative (item None) must pass `checked_items`.
    item: str | None = None
    checked_items: tuple[str, ...] = field(default=())
    # For a bug that crashes rather than computes wrong values: a substring of the error it
    # raises (e.g. torch's "view size is not compatible"), so the diagnosis can name it.
    raises: str = ""

    @property
    def is_bug(self) -> bool:
        return self.item is not None

    @property
    def items_to_run(self) -> tuple[str, ...]:
        return (self.item,) if self.is_bug else self.checked_items


def bug(name: str, item: str, description: str, *edits: tuple[str, str, str], raises: str = "") -> Variant:
    return Variant(name, description, tuple(Edit(*e) for e in edits), item=item, raises=raises)


def alternative(name: str, description: str, checked_items: tuple[str, ...], *edits: tuple[str, str, str]) -> Variant:
    return Variant(name, description, tuple(Edit(*e) for e in edits), checked_items=checked_items)


def materialise(variant: Variant, root: Path, reference_dir: Path = REFERENCE_DIR) -> Path:
    """Write the variant as a submission folder root/<name>/student/ and return root/<name>."""
    submission = Path(root) / variant.name
    package = submission / "student"
    if submission.exists():
        shutil.rmtree(submission)
    shutil.copytree(reference_dir, package, ignore=shutil.ignore_patterns("__pycache__"))
    for edit in variant.edits:
        path = package / edit.file
        source = path.read_text()
        count = source.count(edit.old)
        if count != 1:
            raise ValueError(f"variant {variant.name}: expected the text to edit exactly once in {edit.file}, found {count}:\n{edit.old}")
        path.write_text(source.replace(edit.old, edit.new))
    return submission
