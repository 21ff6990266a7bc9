"""Adapters: the one seam between the tests and any implementation.

    impl = adapters.select(impl="student")          # or "reference"
    impl = adapters.select(adapters_file="path/to/adapters.py")   # CS336-style file
    impl = adapters.select(submission="path/to/dir")  # a folder holding a student/ package
    impl.run_linear(d_in, d_out, weights, x)         # checked against the canonical signature
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from .bound import Bound, load_module_from_path
from .dispatch import MissingAdapter
from .package import PackageAdapters
from .signatures import ADAPTER_NAMES


def select(impl: str | None = "student", adapters_file: str | None = None, submission: str | None = None) -> Bound:
    """Bind the adapter functions to one implementation. Import errors propagate to the caller."""
    if adapters_file is not None:
        # Its own package is imported by name (CS336: `import cs336_basics` from repo/tests/adapters.py):
        # the folder of the file, and the folder above a tests/ folder, go on the import path.
        folder = Path(adapters_file).resolve().parent
        for root in ([folder, folder.parent] if folder.name == "tests" else [folder]):
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))
        return Bound(load_module_from_path(adapters_file))
    if submission is not None:
        package_dir = Path(submission) / "student"
        package = load_module_from_path(package_dir)
        return Bound(PackageAdapters(package, description=str(package_dir)))
    if impl not in ("student", "reference"):
        raise ValueError(f"impl must be 'student' or 'reference', got {impl!r}")
    return Bound(PackageAdapters(importlib.import_module(impl)))


__all__ = ["ADAPTER_NAMES", "Bound", "MissingAdapter", "PackageAdapters", "load_module_from_path", "select"]
