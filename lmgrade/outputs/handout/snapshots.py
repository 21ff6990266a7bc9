"""The reference outputs of the visible tests, recorded for the handout's offline oracle.

They are recorded by running the visible reference comparisons against the live reference
(`LMGRADE_RECORD_SNAPSHOTS`, see lmgrade/core/oracle.py). Only the tests that use the
`oracle` fixture run for that: the others never ask the reference anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lmgrade.core.offline_diagnoses import BUG_OUTPUTS_NAME, BugData
from lmgrade.outputs.handout.files import PROJECT_ROOT, ReleaseError

SNAPSHOT_RELPATH = Path("tests") / "data" / "reference_outputs.safetensors"
BUG_OUTPUTS_RELPATH = SNAPSHOT_RELPATH.parent / BUG_OUTPUTS_NAME

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


def write_oracle_only_plugin(folder: Path) -> str:
    """Write the oracle-only selection plugin into folder; return its module name (for `-p`)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{ORACLE_ONLY_PLUGIN_NAME}.py").write_text(ORACLE_ONLY_PLUGIN)
    return ORACLE_ONLY_PLUGIN_NAME


def visible_test_files(project_root: Path = PROJECT_ROOT) -> list[Path]:
    return sorted((project_root / "tests").glob("test_*.py"))


# --------------------------------------------------------------------------- reference outputs


def record_snapshots(out_path: Path, project_root: Path = PROJECT_ROOT, bug_outputs: Path | None = None) -> dict:
    """Run the visible reference comparisons with the live reference; save every case to out_path,
    and (bug_outputs) what every candidate catalogued bug outputs on it (lmgrade/catalogue/recording.py).

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
        if bug_outputs is not None:
            env["LMGRADE_RECORD_DIAGNOSES"] = str(Path(bug_outputs).resolve())
            command += ["-p", "lmgrade.catalogue.recording", "--per-test-timeout=0"]  # the bugs run inside the tests
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


# --------------------------------------------------------------------------- the bugs' measurements


def record_bug_measurements(bug_outputs: Path, project_root: Path = PROJECT_ROOT, bugs: list[str] | None = None,
                            all_tests: bool = False, keep_json: Path | None = None, snapshots: Path | None = None) -> dict:
    """Run the visible tests once per catalogued bug (lmgrade/catalogue/record_runs.py) and merge what the
    candidate bugs measured at each diagnosis site into bug_outputs, and the reference outputs those runs
    asked for (cases only a failure reaches) into snapshots. bugs: names (None: all)."""
    with tempfile.TemporaryDirectory(prefix="lmgrade-release-") as tmp:
        measured = Path(tmp) / "measured.safetensors"
        command = [sys.executable, "-m", "lmgrade.catalogue.record_runs", str(measured)]
        command += [] if bugs is None else [f"--bugs={','.join(bugs)}"]
        command += (["--all-tests"] if all_tests else []) + ([f"--keep-json={keep_json}"] if keep_json else [])
        command += [f"--snapshots={snapshots}"] if snapshots else []
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(project_root), *filter(None, [os.environ.get("PYTHONPATH")])]))
        proc = subprocess.run(command, cwd=project_root, capture_output=True, text=True, env=env)
        if proc.returncode != 0 or not measured.exists():
            raise ReleaseError(f"recording the catalogued bugs' measurements failed:\n{(proc.stdout + proc.stderr)[-4000:]}")
        data = BugData.load(bug_outputs) if Path(bug_outputs).exists() else BugData()
        data.merge(BugData.load(measured))
        data.save(bug_outputs)
    return {"sites": len(data.sections["measurements"]), "bytes": Path(bug_outputs).stat().st_size}
