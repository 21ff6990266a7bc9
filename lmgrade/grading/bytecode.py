"""Compiled modules for the grader's own pytest processes, kept out of the source folders.

A grading starts a Python that imports the grader, torch's front end and about 170 test and
support modules; pytest also rewrites every test module's asserts. Without .pyc files (on a
machine that sets PYTHONDONTWRITEBYTECODE, or a read-only install) all of that is compiled again
by every run: about 2 of the 4.5 seconds before the first test. PYTHONPYCACHEPREFIX keeps the
compiled files in one private cache folder instead (never beside the sources, so a handout or a
submission folder gets no __pycache__), and pytest keeps its rewritten tests there too.

Only the grader's processes use it: the submission's child builds its own environment and
writes no bytecode (lmgrade.sandbox.isolation); the folder is the grader's user's alone (0700).
"""

from __future__ import annotations

import os
from pathlib import Path


def bytecode_cache_dir() -> Path | None:
    """LMGRADE_PYCACHE (empty: none), else ~/.cache/lmgrade/pycache (XDG_CACHE_HOME respected); None if it cannot be made."""
    configured = os.environ.get("LMGRADE_PYCACHE")
    if configured is not None and not configured:
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = Path(configured) if configured else Path(base) / "lmgrade" / "pycache"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if folder.stat().st_uid != os.getuid() or not os.access(folder, os.W_OK):
            return None  # someone else's folder: their .pyc files would run in the grader
        folder.chmod(0o700)
    except OSError:
        return None
    return folder


def with_bytecode_cache(env: dict[str, str]) -> dict[str, str]:
    """`env` for a grader pytest process: compiled modules in the cache folder, or none at all."""
    env = dict(env)
    folder = bytecode_cache_dir()
    if folder is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(folder)
    return env
