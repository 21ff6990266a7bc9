"""The grader's house: folders by concern, imports that only go down, small modules.

lmgrade/ is built in floors; a module imports only from its own package or from a floor below:

    floor 0  core/       what a grade is: rubric, scoring, comparison, layouts, the oracle
    floor 1  sandbox/    everything that runs untrusted code and what crosses its boundary
             catalogue/  the bug catalogue, its variants of the reference, diagnosis
             outputs/    results.json, JUnit, reports, the handout, the Gradescope bundle
    floor 2  grading/    grading a submission, a class (gradebook), the grader itself (selfcheck)
    floor 3  cli.py, pytest_plugin.py, demo.py, __main__.py: the entry points (they may import each other)

Every import counts, also one inside a function: a late import does not remove a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lmgrade", "adapters")
FLOORS = {"core": 0, "sandbox": 1, "catalogue": 1, "outputs": 1, "grading": 2}
TOP_FLOOR = 3
MAX_LINES = 300


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))
            if "__pycache__" not in p.parts}


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules `name` imports, anywhere in its body (relative imports resolved)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from a import b` is an import of a.b when b is a module, else of a
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` where only a.b is ours, etc.
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def floor_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "lmgrade":
        return None
    if len(parts) == 1:
        return -1  # lmgrade/__init__.py: imports nothing, anyone may import it
    return FLOORS.get(parts[1], TOP_FLOOR)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_of_the_grader_and_the_adapters_has_no_circle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " → ".join(cycle)


def test_lmgrade_imports_only_go_down_a_floor_or_stay_in_their_package():
    wrong = []
    for module, targets in import_graph().items():
        floor = floor_of(module)
        if floor is None or floor < 0:
            continue
        package = module.split(".")[:2]
        for target in targets:
            target_floor = floor_of(target)
            if target_floor is None or target.split(".")[:2] == package:
                continue
            if target_floor > floor or (target_floor == floor and floor != TOP_FLOOR):
                wrong.append(f"{module} (floor {floor}) imports {target} (floor {target_floor})")
    assert not wrong, "imports that go up or sideways:\n" + "\n".join(sorted(wrong))


def test_every_folder_of_lmgrade_is_a_floor_of_the_house():
    folders = {p.name for p in (ROOT / "lmgrade").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders <= set(FLOORS), f"folders not placed on a floor (see this module's docstring): {sorted(folders - set(FLOORS))}"


@pytest.mark.parametrize("path", sorted((ROOT / "lmgrade").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_grader_module_is_longer_than_300_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines: split it along its seams"
