"""`lmgrade release OUT_DIR`: stage the handout, record the reference outputs, check, publish."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from lmgrade.outputs.handout.files import PROJECT_ROOT, README_TEMPLATE, ReleaseError, copy_tree, student_pyproject, student_readme, visible_rubric_toml
from lmgrade.outputs.handout.leaks import CS336_RUBRIC_RELPATH, INSTRUCTOR_ONLY, RUBRIC_RELPATH, check_handout, files_changed_since_copy
from lmgrade.outputs.handout.snapshots import BUG_OUTPUTS_RELPATH, SNAPSHOT_RELPATH, record_bug_measurements, record_snapshots


@dataclass
class HandoutSummary:
    path: Path
    visible_total: float
    snapshot_cases: int
    snapshot_tensors: int
    reference_tests_passed: int
    seconds: float
    bug_outputs_bytes: int = 0
    measurement_sites: int = 0


def build_handout(out_dir: Path, project_root: Path = PROJECT_ROOT, snapshots: Path | None = None,
                  bugs: list[str] | None = None, all_tests: bool = True, keep_json: Path | None = None,
                  bug_outputs: Path | None = None) -> HandoutSummary:
    """Write the student handout into out_dir (which must not exist or be empty).

    `snapshots`: an already recorded reference_outputs.safetensors to reuse (else recorded now,
    with the catalogued bugs' outputs on its cases; `bug_outputs`: those to reuse with it). `bugs`: the bugs (names) whose visible tests run
    once each to record the measurements their failures reach, and the reference outputs only a
    failure asks for (None: every bug; [] none); all_tests=False runs only the files holding a
    measurement site; keep_json keeps each run's outcomes (see lmgrade/catalogue/record_runs.py).
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
        copy_tree(project_root / "lmgrade", stage / "lmgrade", leave_out=set(INSTRUCTOR_ONLY) | {RUBRIC_RELPATH, CS336_RUBRIC_RELPATH})
        shutil.copy2(project_root / "conftest.py", stage / "conftest.py")

        rubric_text, visible_total = visible_rubric_toml(project_root / "lmgrade" / RUBRIC_RELPATH)
        (stage / "lmgrade" / RUBRIC_RELPATH).write_text(rubric_text)
        (stage / "pyproject.toml").write_text(student_pyproject(project_root))
        (stage / "README.md").write_text(student_readme(visible_total, project_root / "lmgrade" / RUBRIC_RELPATH))
        (stage / ".gitignore").write_text("__pycache__/\n*.egg-info/\n.venv/\n.hypothesis/\n.pytest_cache/\n")

        snapshot_path = stage / SNAPSHOT_RELPATH
        measured = {"sites": 0}
        if snapshots is not None:
            snapshot_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(snapshots, snapshot_path)
            if bug_outputs is not None:
                shutil.copy2(bug_outputs, stage / BUG_OUTPUTS_RELPATH)
            recorded = {"cases": -1, "tensors": -1, "passed": -1}
        else:
            recorded = record_snapshots(snapshot_path, project_root, bug_outputs=stage / BUG_OUTPUTS_RELPATH)
        if (bugs is None or bugs) and (snapshots is None or bug_outputs is not None):
            measured = record_bug_measurements(stage / BUG_OUTPUTS_RELPATH, project_root, bugs, all_tests, keep_json,
                                               snapshots=snapshot_path)
        bug_bytes = (stage / BUG_OUTPUTS_RELPATH).stat().st_size if (stage / BUG_OUTPUTS_RELPATH).exists() else 0

        changed = files_changed_since_copy(stage, project_root, ("tests", "student", "adapters", "lmgrade"))
        if changed:
            raise ReleaseError("these files changed while the handout was built, so the recorded reference outputs "
                               "may not match them; build again: " + ", ".join(changed))
        check_handout(stage, project_root)

        out_dir.mkdir(parents=True, exist_ok=True)
        for entry in stage.iterdir():
            shutil.move(str(entry), out_dir / entry.name)

    summary = HandoutSummary(out_dir, visible_total, recorded["cases"], recorded["tensors"], recorded["passed"],
                             round(time.perf_counter() - start, 1), bug_bytes, measured["sites"])
    print(f"handout written to {out_dir} in {summary.seconds:.0f} s: visible total {visible_total:g} points, "
          f"{summary.snapshot_cases} reference cases recorded, the catalogued bugs' outputs on them and at "
          f"{summary.measurement_sites} measurement sites ({bug_bytes / 1e6:.1f} MB); no reference code, no hidden tests, no pickles")
    return summary
