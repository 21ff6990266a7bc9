"""The seam between the tests and the implementation under test.

A *backend* is any object with `run_*` attributes: a foreign adapters module, a
`PackageAdapters` over the student or reference package, or later a proxy to a child
process. The canonical, type-checked functions in `adapters.signatures` look up the
backend of the current call here; tests hold a `Bound` handle and never see the backend.
"""

from __future__ import annotations

import contextvars
import importlib.util
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

_current: contextvars.ContextVar[Any] = contextvars.ContextVar("adapters_backend")


class MissingAdapter(NotImplementedError):
    """The implementation under test does not provide this adapter at all."""


def dispatch(name: str, *args: Any) -> Any:
    backend = _current.get(None)
    if backend is None:
        raise RuntimeError(f"{name} was called outside a bound adapters handle")
    function = getattr(backend, name, None)
    if function is None:
        raise MissingAdapter(f"not implemented: {describe(backend)} defines no {name}")
    # Leave off trailing optional arguments that are None so that adapters written
    # against an older signature (e.g. CS336's run_cross_entropy(inputs, targets)) still work.
    args = list(args)
    while args and args[-1] is None:
        args.pop()
    return function(*args)


def describe(backend: Any) -> str:
    if isinstance(backend, ModuleType):
        return getattr(backend, "__file__", None) or backend.__name__
    return getattr(backend, "description", type(backend).__name__)


class Bound:
    """The adapter functions, bound to one backend: `impl.run_linear(...)`."""

    def __init__(self, backend: Any):
        self.backend = backend

    def __getattr__(self, name: str):
        from . import signatures

        checked = getattr(signatures, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            token = _current.set(self.backend)
            try:
                return checked(*args, **kwargs)
            finally:
                _current.reset(token)

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
