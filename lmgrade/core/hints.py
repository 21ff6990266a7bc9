"""The hint of a rubric item: the `HINT` of its tests file (tests/test_<component>.py), shown with its failures.

Hint text lives next to the tests it explains, in one place. It is read from the file's source (a string
literal), never by importing the test module, so the grader's outputs need no test imports and a hidden
item shares its visible file's hint.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parents[2] / "tests"


@functools.lru_cache(maxsize=None)
def hint_for(item_id: str, tests_dir: Path = TESTS_DIR) -> str | None:
    """The HINT of the item's component ("attention.hidden" → tests/test_attention.py), or None."""
    path = Path(tests_dir) / f"test_{item_id.split('.')[0]}.py"
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "HINT" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return None
            return value if isinstance(value, str) else None
    return None
