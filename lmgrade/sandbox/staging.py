"""The files a child may read: a staged copy of the grader's child-side code, owned for its gid;
and, in tier 2, the project's own files made root-only."""

from __future__ import annotations

import functools
import os
import shutil
import stat
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The child-side modules of lmgrade: all the child imports. Nothing else of the grader is staged.
CHILD_MODULES = ("__init__.py", "sandbox/__init__.py", "sandbox/child.py", "sandbox/wire.py", "sandbox/forbidden.py", "sandbox/policy.py",
                 "sandbox/policy.toml", "core/__init__.py", "core/no_dynamo.py", "core/layouts.py", "core/outcomes.py", "core/rubric.py")


def own_for_child(path: Path, gid: int | None) -> None:
    """Readable by the child's gid only (root-owned, read-only); by everyone where we are not root."""
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, f) for f in files)]:
            is_dir = os.path.isdir(name)
            if gid is not None and os.geteuid() == 0:
                os.chown(name, 0, gid, follow_symlinks=False)
                os.chmod(name, 0o750 if is_dir else 0o640)
            else:
                os.chmod(name, 0o755 if is_dir else 0o644)


def stage_runtime(dest: Path, trusted_package: str | None = None) -> Path:
    """Copy the child-side grader code (and a trusted bundled package) to dest; return dest."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(PROJECT_ROOT / "adapters", dest / "adapters", ignore=shutil.ignore_patterns("__pycache__"))
    for name in CHILD_MODULES:
        (dest / "lmgrade" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT_ROOT / "lmgrade" / name, dest / "lmgrade" / name)
    if trusted_package:
        shutil.copytree(PROJECT_ROOT / trusted_package, dest / trusted_package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@functools.lru_cache(maxsize=None)
def protect_grader_files() -> list[str]:
    """Tier 2: make the project's entries root-only (the venv excepted) and the project traverse-only."""
    changed = []
    if os.geteuid() != 0:
        return changed
    venv = os.path.realpath(sys.prefix)
    for entry in PROJECT_ROOT.iterdir():
        real = os.path.realpath(entry)
        if entry.is_symlink() or venv == real or venv.startswith(real + os.sep):
            continue
        mode = entry.lstat().st_mode
        if mode & 0o077:
            os.chmod(entry, stat.S_IMODE(mode) & 0o700)
            changed.append(str(entry))
    mode = stat.S_IMODE(PROJECT_ROOT.stat().st_mode)
    os.chmod(PROJECT_ROOT, (mode & 0o700) | 0o011)  # others may pass through to the venv, not list
    return changed
