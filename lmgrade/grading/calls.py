"""The adapter functions as the tests call them, for the rubric item that is running."""

from __future__ import annotations

import functools
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from lmgrade.core.no_dynamo import flop_counter_mode

from lmgrade.core.outcomes import ForbiddenCall, NotImplementedInSubmission
from lmgrade.sandbox.forbidden import ForbiddenCallDetector
from lmgrade.sandbox.policy import forbidden_for
from lmgrade.sandbox.processes import peak_growth_here


class GradedCalls:
    """The bound adapters as the tests see them.

    NotImplementedError becomes an outcome Hypothesis will not shrink, and forbidden torch
    calls are detected (in this process, or in the child when isolated).
    """

    def __init__(self, bound, isolated: bool, current_item: Callable[[], str | None]):
        self._bound, self._isolated, self._current_item = bound, isolated, current_item
        self.last_call: str | None = None  # the test's latest adapter call, as a student would write it

    def __repr__(self) -> str:  # what a failing test's arguments (and Hypothesis' failing example) show
        return "<your adapters>"

    def count_flops(self, name: str, **kwargs) -> tuple[int, Exception | None]:
        """FLOPs (torch.utils.flop_counter) of one adapter call where the submission runs, and its error if any."""
        if not self._isolated:
            with flop_counter_mode() as counter:
                try:
                    getattr(self, name)(**kwargs)
                except Exception as error:  # noqa: BLE001 - the caller decides what the error means
                    return counter.get_total_flops(), error
            return counter.get_total_flops(), None
        backend = self._bound.backend
        backend.count_flops, backend.last_flops = True, 0
        try:
            getattr(self, name)(**kwargs)
            return backend.last_flops, None
        except Exception as error:  # noqa: BLE001
            return backend.last_flops, error
        finally:
            backend.count_flops = False

    def peak_memory(self, name: str, **kwargs) -> tuple[int, Exception | None]:
        """How far one adapter call raised the peak resident memory of the process the submission
        runs in (bytes, read from /proc by this process), and its error if any."""
        if not self._isolated:
            return peak_growth_here(lambda: getattr(self, name)(**kwargs))
        backend = self._bound.backend
        backend.measure_peak, backend.last_peak_growth = True, 0
        try:
            getattr(self, name)(**kwargs)
            return backend.last_peak_growth, None
        except Exception as error:  # noqa: BLE001
            return backend.last_peak_growth, error
        finally:
            backend.measure_peak = False

    def __getattr__(self, name: str):
        function = getattr(self._bound, name)
        item = self._current_item()

        def call(*args, **kwargs):
            if not sys._getframe(1).f_code.co_filename.endswith("compositions.py"):  # not a part of a composite
                self.last_call = describe_call(name, args, kwargs)  # described now: no reference to its tensors is kept
            if self._isolated:
                self._bound.backend.current_item = item
                try:
                    return function(*args, **kwargs)
                except NotImplementedError as error:
                    raise NotImplementedInSubmission(str(error)) from None
                except Exception as error:  # the child's traceback, as text: the student's frames only
                    if error.args and isinstance(error.args[0], str) and 'File "' in error.args[0]:
                        error.args = (without_grader_frames(error.args[0]), *error.args[1:])
                    raise
            detector = ForbiddenCallDetector(forbidden_for(item))
            try:
                with detector:
                    result = function(*args, **kwargs)
            except NotImplementedError as error:
                raise NotImplementedInSubmission(str(error) or f"{name} raises NotImplementedError") from None
            violation = detector.report(item)
            if violation:
                raise ForbiddenCall(violation)
            return result

        return call


MAX_CALL = 300  # characters of a described call


def describe_value(value, depth: int = 0) -> str:
    """A short, paste-able picture of one argument: tensors as dtype and shape, plain values as repr."""
    if isinstance(value, torch.Tensor):
        dtype = str(value.dtype).removeprefix("torch.")
        where = "" if value.device.type == "cpu" else f" on {value.device}"
        layout = "" if value.is_contiguous() else ", not contiguous"
        return f"<{dtype} tensor of shape {tuple(value.shape)}{where}{layout}>"
    if isinstance(value, (list, tuple)) and depth < 2:
        if len(value) > 4:
            return f"<{type(value).__name__} of {len(value)}>"
        inner = ", ".join(describe_value(v, depth + 1) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, dict):
        return f"<dict of {len(value)} entries>"
    if isinstance(value, (bytes, bytearray, str)) and len(value) > 40:
        return f"<{type(value).__name__} of length {len(value)}>"
    if hasattr(value, "dtype") and hasattr(value, "shape"):  # a NumPy array (a memory-mapped dataset, …)
        return f"<{value.dtype} array of shape {tuple(value.shape)}>"
    text = repr(value)
    return text if len(text) <= 60 else f"<{type(value).__name__}>"


@functools.lru_cache(maxsize=None)
def _signature(name: str) -> inspect.Signature:
    import adapters.signatures

    return inspect.signature(getattr(adapters.signatures, name))


def describe_call(name: str, args: tuple, kwargs: dict) -> str:
    """`run_softmax(in_features=<float32 tensor of shape (3, 4)>, dim=-1)`: positional arguments get
    their names from the canonical signature (adapters/signatures.py) where it is known."""
    try:
        bound = _signature(name).bind_partial(*args, **kwargs)
        args, kwargs = (), dict(bound.arguments)
    except Exception:  # noqa: BLE001 - unknown adapter or arguments that do not bind: shown as given
        pass
    parts = [describe_value(a) for a in args] + [f"{key}={describe_value(v)}" for key, v in kwargs.items()]
    text = f"{name}({', '.join(parts)})"
    return text if len(text) <= MAX_CALL else text[:MAX_CALL] + " …)"


_ROOT = Path(__file__).resolve().parents[2]
_GRADER_DIRS = tuple(f"{folder}/" for folder in (_ROOT / "lmgrade", _ROOT / "adapters"))


def _library_dirs() -> tuple[str, ...]:
    import sysconfig

    paths = sysconfig.get_paths()
    return tuple(dict.fromkeys(f"{Path(paths[key]).resolve()}/" for key in ("stdlib", "platstdlib", "purelib", "platlib")
                               if key in paths))


_LIBRARY_DIRS = _library_dirs()


def is_grader_frame(path) -> bool:
    """A traceback frame a student need not see: the grader (lmgrade/, adapters/) or an installed
    library (hypothesis, pluggy, pytest, torch, the standard library)."""
    path = str(Path(path).resolve()) if path else ""
    return (path.startswith(_GRADER_DIRS) or path.startswith(_LIBRARY_DIRS)
            or "/site-packages/" in path or "/dist-packages/" in path)


_FRAME = re.compile(r'^(\s*)File "([^"]+)", line \d+, in ')


def without_grader_frames(text: str) -> str:
    """A traceback written as text (the isolated child's) without the frames of the grader's staged
    copy (runtime/lmgrade/, runtime/adapters/) and of libraries; every other line is kept."""
    kept, skipping = [], None  # skipping: the indentation of a dropped frame's File line
    for line in text.splitlines():
        match = _FRAME.match(line)
        if match:
            path = match.group(2)
            grader = "/runtime/lmgrade/" in path or "/runtime/adapters/" in path or is_grader_frame(path)
            skipping = match.group(1) if grader else None
            if grader:
                continue
        elif skipping is not None and line.startswith(skipping + " ") and line.strip():
            continue  # the dropped frame's source line and its ^^^ marks
        else:
            skipping = None
        kept.append(line)
    return "\n".join(kept)
