"""Build the student handout: `lmgrade release OUT_DIR`.

The handout holds what a student needs to implement the stubs and grade them with `pytest`:

    student/  adapters/  tests/ (without tests/hidden/)  tests/data/reference_outputs.safetensors
    tests/data/bug_outputs.safetensors (what the catalogued bugs give on the same cases: offline diagnosis)
    lmgrade/ (the grader runtime, minus the instructor-only modules)  conftest.py
    pyproject.toml  README.md

The reference outputs are recorded by running the visible reference comparisons against
the live reference (`LMGRADE_RECORD_SNAPSHOTS`, see lmgrade/core/oracle.py). Only the tests
that use the `oracle` fixture run for that: the others never ask the reference anything.

Two checks guard the result, and the build fails if either finds something:
- no handout text file contains a line of reference/*.py (>= 25 characters once stripped)
  that is not also in student/*.py (shared signatures are fine);
- no file is a pickle (or a torch.save archive): data ships as safetensors only.

Instructor-only: this package is not part of the handout.
"""

from lmgrade.outputs.handout.build import HandoutSummary, build_handout
from lmgrade.outputs.handout.files import PROJECT_ROOT, ReleaseError, student_pyproject, visible_rubric_toml
from lmgrade.outputs.handout.leaks import (
    INSTRUCTOR_ONLY,
    check_handout,
    forbidden_reference_lines,
    leaked_paths,
    scan_for_pickles,
    scan_for_reference_code,
)
from lmgrade.outputs.handout.snapshots import (
    BUG_OUTPUTS_RELPATH,
    SNAPSHOT_RELPATH,
    record_bug_measurements,
    record_snapshots,
    visible_test_files,
    write_oracle_only_plugin,
)

__all__ = [
    "BUG_OUTPUTS_RELPATH", "INSTRUCTOR_ONLY", "PROJECT_ROOT", "SNAPSHOT_RELPATH", "HandoutSummary", "ReleaseError", "build_handout", "check_handout",
    "forbidden_reference_lines", "leaked_paths", "record_bug_measurements", "record_snapshots", "scan_for_pickles", "scan_for_reference_code",
    "student_pyproject", "visible_rubric_toml", "visible_test_files", "write_oracle_only_plugin",
]
