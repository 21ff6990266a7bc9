"""Build the student handout: `lmgrade release OUT_DIR`.

The handout holds what a student needs to implement the stubs and grade them with `pytest`:

    student/  adapters/  tests/ (without tests/hidden/)  tests/data/reference_outputs.safetensors
    lmgrade/ (the grader runtime, minus the instructor-only modules)  conftest.py
    pyproject.toml  README.md

The reference outputs are recorded by running the visible reference comparisons against
the live reference (`LMGRADE_RECORD_SNAPSHOTS`, see lmgrade/oracle.py). Only the tests
that use the `oracle` fixture run for that: the others never ask the reference anything.

Two checks guard the result, and the build fails if either finds something:
- no handout text file contains a line of reference/*.py (>= 25 characters once stripped)
  that is not also in student/*.py (shared signatures are fine);
- no file is a pickle (or a torch.save archive): data ships as safetensors only.

Instructor-only: this module is not part of the handout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from string import Template

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .rubric import RUBRIC_PATH, load_rubric

PROJECT_ROOT = Path(__file__).resolve().parent.parent
README_TEMPLATE = Path(__file__).resolve().parent / "handout_README.md"
SNAPSHOT_RELPATH = Path("tests") / "data" / "reference_outputs.safetensors"

# Modules of lmgrade that stay with the instructor: they hold, quote or build from reference code.
INSTRUCTOR_ONLY = frozenset({
    "bugs", "variants.py", "selfcheck.py", "release.py", "bundle.py", "gradebook.py", "handout_README.md",
})
# Never copied anywhere into the handout (caches, build output, local state).
JUNK = ("__pycache__", "*.pyc", "*.pyo", ".hypothesis", ".pytest_cache", "*.egg-info", ".DS_Store")

MIN_LINE = 25  # a reference line at least this long (stripped) must not appear in the handout
# Lines that occur in the reference and, written independently, in a handout file, and that are
# public API rather than solution: each needs a reason.
ALLOWED_SHARED_LINES = frozenset({
    "kv_cache = model.make_kv_cache()",  # adapters/package.py: the documented way to get a cache (student/model.py)
})

PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".bin", ".npy", ".npz", ".joblib")

# A pytest plugin (written to a temporary folder and loaded with `-p`) that keeps only the tests
# using the `oracle` fixture: those are the ones whose reference outputs the handout must ship.
ORACLE_ONLY_PLUGIN_NAME = "lmgrade_oracle_only"
ORACLE_ONLY_PLUGIN = '''\
"""Keep only the tests that ask the reference (use the `oracle` fixture)."""


def pytest_collection_modifyitems(config, items):
    keep = [item for item in items if "oracle" in getattr(item, "fixturenames", ())]
    dropped = [item for item in items if "oracle" not in getattr(item, "fixturenames", ())]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep
'''


class ReleaseError(RuntimeError):
    """The handout could not be built, or it would leak something."""


def write_oracle_only_plugin(folder: Path) -> str:
    """Write the oracle-only selection plugin into folder; return its module name (for `-p`)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{ORACLE_ONLY_PLUGIN_NAME}.py").write_text(ORACLE_ONLY_PLUGIN)
    return ORACLE_ONLY_PLUGIN_NAME


def visible_test_files(project_root: Path = PROJECT_ROOT) -> list[Path]:
    return sorted((project_root / "tests").glob("test_*.py"))


# --------------------------------------------------------------------------- reference outputs


def record_snapshots(out_path: Path, project_root: Path = PROJECT_ROOT) -> dict:
    """Run the visible reference comparisons with the live reference; save every case to out_path.

    Returns {"seconds", "cases", "tensors", "passed"} for the build summary.
    """
    from safetensors import safe_open

    out_path = Path(out_path).resolve()
    if out_path.exists():
        out_path.unlink()
    files = [str(f.relative_to(project_root)) for f in visible_test_files(project_root)]
    if not files:
        raise ReleaseError(f"no visible test files under {project_root / 'tests'}")
    with tempfile.TemporaryDirectory(prefix="lmgrade-release-") as tmp:
        plugin = write_oracle_only_plugin(Path(tmp))
        outcome_json = Path(tmp) / "outcomes.json"
        env = dict(os.environ, LMGRADE_PROFILE="grading", LMGRADE_RECORD_SNAPSHOTS=str(out_path), PYTHONDONTWRITEBYTECODE="1")
        env["PYTHONPATH"] = os.pathsep.join([tmp, str(project_root), *filter(None, [os.environ.get("PYTHONPATH")])])
        command = [
            sys.executable, "-m", "pytest", *files, "--impl", "reference", "-q", "-p", "no:cacheprovider",
            "--no-scorecard", "-p", plugin, f"--lmgrade-json={outcome_json}",
        ]
        start = time.perf_counter()
        proc = subprocess.run(command, cwd=project_root, capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - start
        log = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise ReleaseError(
                f"recording the reference outputs failed: the reference does not pass its own visible "
                f"comparisons (pytest exit {proc.returncode}):\n{log[-4000:]}"
            )
        passed = 0
        if outcome_json.exists():
            passed = sum(1 for r in json.loads(outcome_json.read_text())["records"] if r["outcome"] == "passed")
    if not out_path.exists():
        raise ReleaseError("the visible tests asked the reference nothing: no reference outputs were recorded")
    with safe_open(str(out_path), framework="pt") as f:
        names = list(f.keys())
    cases = {name.split("/", 1)[0] for name in names}
    return {"seconds": round(seconds, 1), "cases": len(cases), "tensors": len(names), "passed": passed}


# --------------------------------------------------------------------------- files


def _ignore_for(src_root: Path, extra_top_level: set[str]):
    patterns = shutil.ignore_patterns(*JUNK)

    def ignore(directory: str, names: list[str]) -> set[str]:
        ignored = set(patterns(directory, names))
        if Path(directory).resolve() == src_root.resolve():
            ignored |= extra_top_level & set(names)
        return ignored

    return ignore


def copy_tree(src: Path, dst: Path, leave_out: set[str] = frozenset()) -> None:
    """Copy src to dst without caches; `leave_out` names entries directly under src to skip."""
    shutil.copytree(src, dst, ignore=_ignore_for(src, set(leave_out)))


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def visible_rubric_toml(rubric_path: Path = RUBRIC_PATH) -> tuple[str, float]:
    """The rubric restricted to its visible items, with total = their sum; and that total."""
    data = tomllib.loads(Path(rubric_path).read_text())
    items = [raw for raw in data["items"] if raw.get("visible", True)]
    visible_ids = {raw["id"] for raw in items}
    total = sum(float(raw["points"]) for raw in items)
    lines = [
        "# The rubric of the visible tests: every item, its points, and the tests that decide it.",
        "#",
        "# - `tests`: path prefixes of pytest node ids (files, or file::test_name).",
        "# - Partial credit: an item's points are shared equally among its test functions; a test",
        "#   function earns its share only if every one of its cases (parametrizations, Hypothesis",
        "#   examples) passes. Cases skipped here (e.g. CUDA on a machine without a GPU) are left",
        "#   out of that count; an item whose every test is skipped scores 0 and says why.",
        "# - The hidden items (graded by your instructor, not listed here) use the same rules.",
        "",
        f"total = {_toml_value(total if total != int(total) else int(total))}",
    ]
    for raw in items:
        lines += ["", "[[items]]"]
        for key, value in raw.items():
            if key == "builds_on":
                value = [r for r in value if r in visible_ids]
                if not value:
                    continue
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n", total


def student_pyproject(project_root: Path = PROJECT_ROOT) -> str:
    """pyproject.toml of the handout: the same dependencies, only the packages that ship."""
    data = tomllib.loads((project_root / "pyproject.toml").read_text())
    project = data["project"]
    include = data.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {}).get(
        "include", ["student*", "adapters*", "lmgrade*"])
    include = [p for p in include if not p.startswith(("reference", "interop"))]
    scripts = project.get("scripts", {"lmgrade": "lmgrade.cli:main"})
    lines = [
        "[build-system]",
        'requires = ["setuptools>=68"]',
        'build-backend = "setuptools.build_meta"',
        "",
        "[project]",
        f"name = {_toml_value(project['name'] + '-assignment')}",
        f"version = {_toml_value(project.get('version', '0.1.0'))}",
        'description = "Build a Transformer language model from scratch: your implementation and its visible tests"',
        'readme = "README.md"',
        f"requires-python = {_toml_value(project.get('requires-python', '>=3.10'))}",
        "dependencies = [",
        *[f"    {_toml_value(dep)}," for dep in project["dependencies"]],
        "]",
        "",
        "[project.scripts]",
        *[f"{name} = {_toml_value(target)}" for name, target in scripts.items()],
        "",
        "[tool.setuptools.packages.find]",
        f"include = {_toml_value(include)}",
        "",
        "[tool.setuptools.package-data]",
        'lmgrade = ["rubric.toml"]',
        "",
        "[tool.pytest.ini_options]",
        'testpaths = ["tests"]',
        'addopts = "-p no:cacheprovider"',
    ]
    return "\n".join(lines) + "\n"


def student_readme(visible_total: float, rubric_path: Path = RUBRIC_PATH) -> str:
    rubric = load_rubric(rubric_path)
    visible = [i for i in rubric.items if i.visible]
    hidden = [i for i in rubric.items if not i.visible]
    table = "\n".join(f"| `{i.id}` | {i.title} | {i.points:g} | `{', '.join(i.tests)}` |" for i in visible)
    hidden_list = "\n".join(f"- {i.title} ({i.points:g} point{'' if i.points == 1 else 's'})" for i in hidden)
    return Template(README_TEMPLATE.read_text()).substitute(
        visible_total=f"{visible_total:g}",
        course_total=f"{rubric.total:g}",
        hidden_total=f"{sum(i.points for i in hidden):g}",
        items_table=table,
        hidden_items=hidden_list,
    )


# --------------------------------------------------------------------------- checks


def _lines_of(folder: Path) -> set[str]:
    return {line.strip() for f in sorted(Path(folder).glob("*.py")) for line in f.read_text().splitlines()}


def forbidden_reference_lines(project_root: Path = PROJECT_ROOT) -> set[str]:
    """Lines of reference/*.py (stripped, >= MIN_LINE chars) that are not also lines of student/*.py."""
    reference = {line for line in _lines_of(project_root / "reference") if len(line) >= MIN_LINE}
    return reference - _lines_of(project_root / "student") - ALLOWED_SHARED_LINES


def _text_of(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def scan_for_reference_code(handout: Path, forbidden: set[str], shared: set[str] = frozenset()) -> list[str]:
    """Every place in a handout text file that contains a forbidden reference line: 'path:line: the line'.

    A handout line that is itself a line of the stubs (`shared`, e.g. an import list that
    extends the reference's) is fine even when a shorter reference line is part of it.
    """
    found = []
    forbidden = sorted(forbidden, key=len, reverse=True)
    for path in sorted(p for p in Path(handout).rglob("*") if p.is_file()):
        text = _text_of(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if len(stripped) < MIN_LINE or stripped in shared:
                continue
            hit = next((f for f in forbidden if f in stripped), None)
            if hit is not None:
                found.append(f"{path.relative_to(handout)}:{number}: {hit}")
    return found


def _looks_pickled(path: Path) -> bool:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return True
    with path.open("rb") as f:
        head = f.read(4)
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # pickle protocol 2-5
        return True
    if head.startswith(b"PK\x03\x04"):  # torch.save writes a zip with a data.pkl inside
        import zipfile

        try:
            with zipfile.ZipFile(path) as archive:
                return any(name.endswith(".pkl") for name in archive.namelist())
        except zipfile.BadZipFile:
            return False
    return False


def scan_for_pickles(handout: Path) -> list[str]:
    return sorted(str(p.relative_to(handout)) for p in Path(handout).rglob("*") if p.is_file() and _looks_pickled(p))


def leaked_paths(handout: Path) -> list[str]:
    """Instructor-only things that must not be in the handout, by path."""
    handout = Path(handout)
    problems = []
    for relative in ("reference", "interop", "tests/hidden", "selftests", ".ci", ".git"):
        if (handout / relative).exists():
            problems.append(relative)
    for name in INSTRUCTOR_ONLY:
        if (handout / "lmgrade" / name).exists():
            problems.append(f"lmgrade/{name}")
    return problems


def check_handout(handout: Path, project_root: Path = PROJECT_ROOT) -> None:
    """Raise ReleaseError if the handout holds reference code, pickles or instructor-only files."""
    problems = []
    leaks = leaked_paths(handout)
    if leaks:
        problems.append("instructor-only paths: " + ", ".join(leaks))
    quoted = scan_for_reference_code(handout, forbidden_reference_lines(project_root), _lines_of(project_root / "student"))
    if quoted:
        problems.append("reference code in the handout:\n  " + "\n  ".join(quoted[:40]))
    pickles = scan_for_pickles(handout)
    if pickles:
        problems.append("pickled files (ship safetensors only): " + ", ".join(pickles))
    if problems:
        raise ReleaseError("the handout is not safe to publish:\n" + "\n".join(problems))


def files_changed_since_copy(stage: Path, project_root: Path, folders: tuple[str, ...]) -> list[str]:
    """Files of the staged copies of `folders` that now differ from (or are gone from) the project."""
    changed = []
    for folder in folders:
        for copied in sorted((stage / folder).rglob("*")):
            relative = copied.relative_to(stage)
            if copied.is_file() and relative not in (SNAPSHOT_RELPATH, Path("lmgrade") / "rubric.toml"):
                original = project_root / relative
                if not original.is_file() or original.read_bytes() != copied.read_bytes():
                    changed.append(str(relative))
    return changed


# --------------------------------------------------------------------------- build


@dataclass
class HandoutSummary:
    path: Path
    visible_total: float
    snapshot_cases: int
    snapshot_tensors: int
    reference_tests_passed: int
    seconds: float


def build_handout(out_dir: Path, project_root: Path = PROJECT_ROOT, snapshots: Path | None = None) -> HandoutSummary:
    """Write the student handout into out_dir (which must not exist or be empty).

    `snapshots`: an already recorded reference_outputs.safetensors to reuse (else recorded now).
    """
    start = time.perf_counter()
    out_dir = Path(out_dir).resolve()
    project_root = Path(project_root).resolve()
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ReleaseError(f"{out_dir} exists and is not empty: choose a new folder")
    if not README_TEMPLATE.exists():
        raise ReleaseError(f"missing the README template {README_TEMPLATE}")

    with tempfile.TemporaryDirectory(prefix="lmgrade-handout-") as tmp:
        stage = Path(tmp) / "handout"
        stage.mkdir()
        copy_tree(project_root / "student", stage / "student")
        copy_tree(project_root / "adapters", stage / "adapters")
        copy_tree(project_root / "tests", stage / "tests", leave_out={"hidden", "data"})
        copy_tree(project_root / "lmgrade", stage / "lmgrade", leave_out=set(INSTRUCTOR_ONLY) | {"rubric.toml", "rubric_cs336.toml"})
        shutil.copy2(project_root / "conftest.py", stage / "conftest.py")

        rubric_text, visible_total = visible_rubric_toml(project_root / "lmgrade" / "rubric.toml")
        (stage / "lmgrade" / "rubric.toml").write_text(rubric_text)
        (stage / "pyproject.toml").write_text(student_pyproject(project_root))
        (stage / "README.md").write_text(student_readme(visible_total, project_root / "lmgrade" / "rubric.toml"))
        (stage / ".gitignore").write_text("__pycache__/\n*.egg-info/\n.venv/\n.hypothesis/\n.pytest_cache/\n")

        snapshot_path = stage / SNAPSHOT_RELPATH
        if snapshots is not None:
            snapshot_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(snapshots, snapshot_path)
            recorded = {"cases": -1, "tensors": -1, "passed": -1}
        else:
            recorded = record_snapshots(snapshot_path, project_root)

        changed = files_changed_since_copy(stage, project_root, ("tests", "student", "adapters", "lmgrade"))
        if changed:
            raise ReleaseError("these files changed while the handout was built, so the recorded reference outputs "
                               "may not match them; build again: " + ", ".join(changed))
        check_handout(stage, project_root)

        out_dir.mkdir(parents=True, exist_ok=True)
        for entry in stage.iterdir():
            shutil.move(str(entry), out_dir / entry.name)

    summary = HandoutSummary(out_dir, visible_total, recorded["cases"], recorded["tensors"], recorded["passed"],
                             round(time.perf_counter() - start, 1))
    print(f"handout written to {out_dir} in {summary.seconds:.0f} s: visible total {visible_total:g} points, "
          f"{summary.snapshot_cases} reference cases recorded; no reference code, no hidden tests, no pickles")
    return summary
