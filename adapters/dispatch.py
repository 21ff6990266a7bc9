"""The seam between the tests and the implementation under test: whose `run_*` answers this call.

A *backend* is any object with `run_*` attributes: a foreign adapters module, a
`PackageAdapters` over the student or reference package, or a proxy to a child process.
The canonical, type-checked functions in `adapters.signatures` look up the backend of the
current call here; tests hold a `adapters.bound.Bound` handle and never see the backend.
"""

from __future__ import annotations

import contextvars
import inspect
from types import ModuleType
from typing import Any

current_backend: contextvars.ContextVar[Any] = contextvars.ContextVar("adapters_backend")


class MissingAdapter(NotImplementedError):
    """The implementation under test does not provide this adapter at all."""


def dispatch(name: str, *args: Any) -> Any:
    backend = current_backend.get(None)
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
    return call_adapter(name, function, args, backend)


def call_adapter(name: str, function: Any, args: list, backend: Any) -> Any:
    """function(*args); an adapter written before an optional argument existed (e.g. CS336's
    run_transformer_lm, without attention_mask) and now called with it has not implemented that
    extension: MissingAdapter, not a crash."""
    try:
        return function(*args)
    except TypeError:
        try:
            inspect.signature(function).bind(*args)
        except TypeError:
            raise MissingAdapter(f"not implemented: {describe(backend)}'s {name} does not take the {len(args)} arguments "
                                 f"this test passes (an optional one it predates, e.g. attention_mask)") from None
        except ValueError:  # no signature to check (a builtin): the TypeError is the function's own
            pass
        raise


def describe(backend: Any) -> str:
    if isinstance(backend, ModuleType):
        return getattr(backend, "__file__", None) or backend.__name__
    return getattr(backend, "description", type(backend).__name__)
