"""One recipe for a part: every graded operation has all its pieces (lmgrade/core/parts.py lists them).

For each canonical adapter `run_X`, the test names each missing piece: the student stub and its
docstring, the reference, the canonical signature, the package adapter, the part's entry, the
rubric items (default, and cs336 where it belongs), the tests file and its HINT, the tolerance
row, a catalogued bug, and the forbidden-call policy where torch has a function that does the job.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest
import torch.nn.functional as F

import adapters
from adapters import signatures
from adapters.drivers import DRIVEN_ON, DRIVERS
from adapters.package import PackageAdapters
from lmgrade.catalogue.bugs import BUGS
from lmgrade.core.parts import PARTS
from lmgrade.core.rubric import load_rubric
from lmgrade.sandbox.policy import policy

ROOT = Path(__file__).resolve().parents[1]


def package_names_used_by(adapter: str) -> set[str]:
    """The names of the assignment's package that PackageAdapters.<adapter> builds or calls (`self.pkg.X`),
    following its calls to PackageAdapters' own helpers (`self._lm`, `self._attention`)."""
    tree = ast.parse(inspect.getsource(PackageAdapters))
    methods = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    names, todo, seen = set(), [adapter], set()
    while todo:
        method = methods.get(todo.pop())
        if method is None or method.name in seen:
            continue
        seen.add(method.name)
        for node in ast.walk(method):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "pkg":
                names.add(node.attr)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self" \
                    and node.attr in methods:
                todo.append(node.attr)
    return names


def missing_pieces(adapter: str) -> list[str]:
    missing = []
    part = PARTS.get(adapter)
    if part is None:
        return [f"its entry in lmgrade/core/parts.py (PARTS[{adapter!r}] = Part(component, tolerance_row, cs336))"]
    component = part.component

    checked = getattr(signatures, adapter, None)
    if checked is None or not inspect.getdoc(checked):
        missing.append(f"the canonical signature adapters/signatures.py:{adapter}, with a docstring contract")
    # A driven part (adapters/drivers.py) reaches the package through the CS336-named functions its driver calls.
    backend_functions = DRIVEN_ON.get(adapter, (adapter,))
    if adapter in DRIVEN_ON and adapter not in DRIVERS:
        missing.append(f"the driver adapters/drivers.py:{adapter} (DRIVERS)")
    used = set()
    for function in backend_functions:
        if not callable(getattr(PackageAdapters, function, None)):
            missing.append(f"adapters/package.py: PackageAdapters.{function}")
        found = package_names_used_by(function)
        if not found:
            missing.append(f"adapters/package.py: PackageAdapters.{function} builds nothing of the package (self.pkg.<name>)")
        used |= found
    student, reference = importlib.import_module("student"), importlib.import_module("reference")
    for name in sorted(used):
        stub = getattr(student, name, None)
        if stub is None:
            missing.append(f"the student stub student.{name}")
        elif not inspect.getdoc(stub):
            missing.append(f"the docstring contract of student.{name}")
        if getattr(reference, name, None) is None:
            missing.append(f"the reference implementation reference.{name}")

    for rubric_name, wanted in (("default", True), ("cs336", part.cs336)):
        rubric = load_rubric(rubric_name)
        has_item = any(item.id == component for item in rubric.items)
        if wanted and not has_item:
            missing.append(f"the item {component!r} in the {rubric_name} rubric")
        if not wanted and has_item:
            missing.append(f"PARTS[{adapter!r}].cs336 is False but the cs336 rubric grades {component!r}")

    tests_file = ROOT / "tests" / f"test_{component}.py"
    if not tests_file.is_file():
        missing.append(f"the tests file tests/test_{component}.py")
    else:
        module = importlib.import_module(f"tests.test_{component}")
        if adapter not in tests_file.read_text():
            missing.append(f"a test in tests/test_{component}.py that calls {adapter}")
        if not isinstance(getattr(module, "HINT", None), str) or "?" not in module.HINT:
            missing.append(f"the HINT of tests/test_{component}.py (what a failure usually means, and a question)")

    if part.tolerance_row is not None:
        tolerances = importlib.import_module("tests.tolerances")
        if (part.tolerance_row, "float32", "cpu") not in tolerances.rows():
            missing.append(f"the float32 row {part.tolerance_row!r} in tests/tolerances.py")

    if not any(bug.item.split(".")[0] == component for bug in BUGS):
        missing.append(f"a catalogued bug of item {component!r} in lmgrade/catalogue/bugs/")

    operation = adapter.removeprefix("run_").replace("_", "")
    torch_equivalents = [name for name in dir(F) if name.replace("_", "") == operation and callable(getattr(F, name))]
    allowed = policy().allow.get(component, frozenset())
    for name in torch_equivalents:
        if name not in policy().forbidden and name not in allowed:
            missing.append(f"torch.nn.functional.{name} in lmgrade/sandbox/policy.toml `forbidden` (or [allow] for {component!r})")
    return missing


def test_every_canonical_adapter_is_a_part():
    assert sorted(PARTS) == sorted(adapters.ADAPTER_NAMES), (
        f"adapters without a Part: {sorted(set(adapters.ADAPTER_NAMES) - set(PARTS))}; "
        f"Parts without an adapter: {sorted(set(PARTS) - set(adapters.ADAPTER_NAMES))}")


@pytest.mark.parametrize("adapter", adapters.ADAPTER_NAMES)
def test_every_part_has_all_its_pieces(adapter):
    missing = missing_pieces(adapter)
    assert not missing, f"{adapter} is missing: " + "; ".join(missing)


def test_every_rubric_item_has_a_hint():
    """Every item's tests file carries a HINT (an item's hidden twin shares its visible file's)."""
    lacking = []
    for item in load_rubric("default").items:
        component = item.id.split(".")[0]
        path = ROOT / "tests" / f"test_{component}.py"
        if not path.is_file() or not isinstance(getattr(importlib.import_module(f"tests.test_{component}"), "HINT", None), str):
            lacking.append(item.id)
    assert not lacking, f"rubric items without a HINT in tests/test_<component>.py: {lacking}"
