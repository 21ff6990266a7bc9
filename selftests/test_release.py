"""The student handout: nothing instructor-only in it, and it grades on its own, from snapshots alone.

The handout is built once per session (about a minute: it records the reference outputs and a few bugs' outputs).
Its own pytest runs in a child Python started with -S: no .pth file is processed, so an
editable install of this project (whose finder maps `reference` to this checkout) cannot
leak the reference in; sys.path is the handout, then this interpreter's library folders,
never this checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lmgrade.outputs.handout import (
    INSTRUCTOR_ONLY,
    PROJECT_ROOT,
    SNAPSHOT_RELPATH,
    check_handout,
    forbidden_reference_lines,
    leaked_paths,
    scan_for_pickles,
    scan_for_reference_code,
    write_oracle_only_plugin,
)
from lmgrade.core.rubric import load_rubric

# Its module-scoped fixtures are built once: every test of this file runs on one pytest-xdist worker.
# One handout serves this file and test_offline_diagnosis.py (the session fixture `released` in
# selftests/conftest.py, about a minute to build): both files run on one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("handout")


@pytest.fixture(scope="module")
def handout(released) -> Path:
    """The handout as `lmgrade release` builds it (with a few bugs' recorded outputs); beside it,
    reference_submission/ holds the reference copied in as a submission, as it was when recorded (d)."""
    return released[0]


def library_path() -> list[str]:
    """This interpreter's import path without the checkout's root (and without the current folder)."""
    root = PROJECT_ROOT.resolve()
    kept = []
    for entry in sys.path:
        if not entry or not Path(entry).exists():
            continue
        path = Path(entry).resolve()
        if path == root:  # the checkout itself holds reference/; a venv inside it (as in CI) is fine
            continue
        kept.append(str(path))
    return kept


def run_in_handout(handout: Path, args: list[str], extra_path: list[str] = ()) -> subprocess.CompletedProcess:
    """`python -S <args>` in the handout, seeing only the handout and the installed libraries."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LMGRADE_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(handout), *extra_path, *library_path()])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run([sys.executable, "-S", *args], cwd=handout, env=env, capture_output=True, text=True)


# (a) -------------------------------------------------------------------------------------------


def test_handout_has_no_reference_hidden_tests_or_instructor_modules(handout):
    assert not (handout / "reference").exists()
    assert not (handout / "tests" / "hidden").exists()
    assert not (handout / "interop").exists()
    assert not (handout / "selftests").exists()
    for name in INSTRUCTOR_ONLY:
        assert not (handout / "lmgrade" / name).exists(), name
    assert leaked_paths(handout) == []
    assert not list(handout.rglob("__pycache__"))
    for needed in ("student/__init__.py", "adapters/__init__.py", "tests/test_linear.py", "conftest.py",
                   "pyproject.toml", "README.md", "lmgrade/pytest_plugin.py", "lmgrade/core/rubric.toml", str(SNAPSHOT_RELPATH)):
        assert (handout / needed).is_file(), needed


def test_handout_rubric_lists_only_visible_items_and_totals_them(handout):
    full = load_rubric()
    rubric = load_rubric(handout / "lmgrade" / "core" / "rubric.toml")
    assert [i.id for i in rubric.items] == [i.id for i in full.items if i.visible]
    assert all(i.visible for i in rubric.items)
    assert rubric.total == sum(i.points for i in rubric.items)
    assert not any("hidden" in test for i in rubric.items for test in i.tests)


def test_handout_pyproject_and_readme(handout):
    pyproject = (handout / "pyproject.toml").read_text()
    assert "reference" not in pyproject and "interop" not in pyproject
    assert 'testpaths = ["tests"]' in pyproject
    readme = (handout / "README.md").read_text()
    assert "$" not in readme.replace("$ ", "")  # every template field was filled in
    assert "pip install -e ." in readme and "pytest" in readme and "Hidden tests" in readme
    total = load_rubric(handout / "lmgrade" / "core" / "rubric.toml").total
    assert f"**{total:g}**" in readme


# (b) -------------------------------------------------------------------------------------------


def test_no_reference_code_and_no_pickles_in_the_handout(handout):
    forbidden = forbidden_reference_lines()
    assert len(forbidden) > 50  # the reference really has code of its own to look for
    check_handout(handout)  # raises if any reference line, pickle or instructor-only path is there
    assert scan_for_pickles(handout) == []


def test_the_scan_catches_a_planted_reference_line(handout, tmp_path):
    copy = tmp_path / "handout"
    shutil.copytree(handout, copy)
    forbidden = forbidden_reference_lines()
    planted = sorted(forbidden)[len(forbidden) // 2]
    with open(copy / "tests" / "checks.py", "a") as f:
        f.write(f"\n# helper\n    {planted}\n")
    found = scan_for_reference_code(copy, forbidden)
    assert any(hit.startswith("tests/checks.py:") and hit.endswith(planted) for hit in found), found
    with pytest.raises(Exception, match="reference code in the handout"):
        check_handout(copy)


def test_the_scan_catches_a_pickle_and_a_leaked_module(handout, tmp_path):
    import pickle

    copy = tmp_path / "handout"
    shutil.copytree(handout, copy)
    (copy / "tests" / "data" / "extra.dat").write_bytes(pickle.dumps({"a": 1}, protocol=4))
    (copy / "lmgrade" / "catalogue" / "variants.py").write_text("# leaked\n")
    with pytest.raises(Exception, match="pickled files") as error:
        check_handout(copy)
    assert "lmgrade/catalogue/variants.py" in str(error.value)


# (c) -------------------------------------------------------------------------------------------


def test_the_reference_cannot_be_imported_in_the_handout(handout):
    proc = run_in_handout(handout, ["-c", "import reference"])
    assert proc.returncode != 0 and "No module named 'reference'" in proc.stderr, proc.stdout + proc.stderr
    proc = run_in_handout(handout, ["-c", (
        "import lmgrade, adapters, student\n"
        "from lmgrade.core.oracle import load_oracle\n"
        "o = load_oracle()\n"
        "print(type(o).__name__, o.path, len(o.tensors))\n"
        "print(lmgrade.__file__, adapters.__file__, student.__file__)\n"
    )])
    assert proc.returncode == 0, proc.stderr
    oracle_line, files_line = proc.stdout.splitlines()[:2]
    kind, path, count = oracle_line.split()
    assert kind == "SnapshotOracle" and Path(path) == handout / SNAPSHOT_RELPATH and int(count) > 0
    assert all(Path(f).is_relative_to(handout) for f in files_line.split()), files_line


def test_the_handout_grades_the_stubs_as_not_implemented(handout, tmp_path):
    outcomes = tmp_path / "outcomes.json"
    proc = run_in_handout(handout, ["-m", "pytest", "-q", "-p", "no:cacheprovider", f"--lmgrade-json={outcomes}"])
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log[-3000:]
    result = json.loads(outcomes.read_text())
    assert result["collection_errors"] == {}, result["collection_errors"]
    records = result["records"]
    assert records and {r["outcome"] for r in records} <= {"not implemented", "skipped"}, \
        [r for r in records if r["outcome"] not in ("not implemented", "skipped")][:3]
    rubric = load_rubric(handout / "lmgrade" / "core" / "rubric.toml")
    for item in rubric.items:  # every visible item ran, and failed as not implemented
        assert any(item.owns(r["nodeid"]) and r["outcome"] == "not implemented" for r in records), item.id
    assert "lmgrade scorecard" in proc.stdout
    total_line = next(line for line in proc.stdout.splitlines() if line.startswith("TOTAL"))
    assert total_line.split()[-3:] == ["0.00", "/", f"{rubric.total:g}"], total_line
    card = proc.stdout.split("lmgrade scorecard")[1].split("TOTAL")[0].strip().splitlines()[1:]
    assert len(card) == len(rubric.items)
    for line, item in zip(card, rubric.items):
        assert line.split()[:4] == [item.id, "0.00", "/", f"{item.points:g}"] and "not implemented" in line, line
    hidden = sum(i.points for i in load_rubric().items if not i.visible)  # the instructor's rubric
    assert (f"visible items: 0 / {rubric.total:g} points; {hidden:g} more points are in hidden tests, graded when you "
            "submit") in proc.stdout, proc.stdout[-1500:]


# (d) -------------------------------------------------------------------------------------------


def test_the_reference_as_a_submission_passes_every_reference_comparison_from_snapshots(handout, tmp_path):
    """Every visible test that asks the reference finds its answer in the shipped data file.

    Only those tests run (the others never read the snapshots); the reference, copied in as a
    submission, must pass them all, which it can only do if every case is in the file.
    """
    submission = handout.parent / "reference_submission"  # the reference copied as student/ (see the fixture)
    plugin = write_oracle_only_plugin(tmp_path / "plugins")
    outcomes = tmp_path / "outcomes.json"
    proc = run_in_handout(handout, [
        "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", plugin, f"--submission={submission}",
        f"--lmgrade-json={outcomes}",
    ], extra_path=[str(tmp_path / "plugins")])
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    records = json.loads(outcomes.read_text())["records"]
    passed = [r for r in records if r["outcome"] == "passed"]
    assert passed and all(r["outcome"] in ("passed", "skipped") for r in records)
    # Every visible test file with reference comparisons took part.
    rubric = load_rubric(handout / "lmgrade" / "core" / "rubric.toml")
    files_with_oracle = {f"tests/{p.name}" for p in (handout / "tests").glob("test_*.py") if "oracle" in p.read_text()}
    assert files_with_oracle
    for path in files_with_oracle:
        assert any(r["nodeid"].startswith(path + "::") for r in passed), path
    assert rubric.items
