"""`Bound`: the adapter functions bound to one backend, and loading a submission's module.

`Bound.run_linear(...)` calls the canonical, checked `adapters.signatures.run_linear` with the
bound backend as the one answering (`adapters.dispatch`).
"""

from __future__ import annotations

import importlib.util
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

from . import signatures
from .dispatch import current_backend, describe


class Bound:
    """The adapter functions, bound to one backend: `impl.run_linear(...)`."""

    def __init__(self, backend: Any):
        self.backend = backend

    def __getattr__(self, name: str):
        checked = getattr(signatures, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            token = current_backend.set(self.backend)
            try:
                return checked(*args, **kwargs)
            finally:
                current_backend.reset(token)

        call.__name__ = name
        return call

    def __repr__(self) -> str:
        return f"Bound({describe(self.backend)})"


def load_module_from_path(path: str | Path, package_name: str | None = None) -> ModuleType:
    """Import a file (or a package folder) under a fresh, unique module name."""
    path = Path(path).resolve()
    is_package = path.is_dir()
    init = path / "__init__.py" if is_package else path
    if not init.is_file():
        raise FileNotFoundError(f"expected a Python file or a package folder with __init__.py, got {path}")
    name = package_name or f"_graded_{path.stem}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(
        name, init, submodule_search_locations=[str(path)] if is_package else None
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
