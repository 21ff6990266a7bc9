"""Reading the child's replies. Nothing the child says is trusted as text: an exception is rebuilt
from its type name (when it is a plain built-in) and a bounded message, a forbidden call from
function names and file:line, and the detector's and FLOP counter's canaries must be intact."""

from __future__ import annotations

import os
import re
import threading

from lmgrade.core.outcomes import ForbiddenCall, NotImplementedInSubmission, SubmissionBroken

OUTPUT_KEEP_BYTES = 64 << 10

# Built-in exceptions a test may expect from the submission; others arrive as SubmissionError.
_REBUILT_EXCEPTIONS = {e.__name__: e for e in (ValueError, TypeError, IndexError, KeyError, RuntimeError,
                                               ZeroDivisionError, OverflowError, MemoryError, AttributeError)}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,80}")


class SubmissionError(Exception):
    """The submission raised an exception; its type and message come as text."""


def raise_for(reply: dict, item: str | None):
    """Raise what the child reported, rebuilt from its structured reply: its text never becomes a category."""
    kind, message = reply.get("kind"), str(reply.get("message", ""))[:2000]
    if kind == "not_implemented":
        raise NotImplementedInSubmission(message)
    if kind == "import":
        raise SubmissionBroken(message)
    if kind == "forbidden":
        raise ForbiddenCall(forbidden_message(reply, item))
    detail = str(reply.get("traceback", ""))[:4000]
    kind = str(reply.get("type", "Error"))
    kind = kind if _NAME.fullmatch(kind) else "Error"  # the child's text never becomes a category
    text = f"{kind}: {message}" + (f"\n{detail}" if detail else "")
    if kind in _REBUILT_EXCEPTIONS:  # the test may expect it, e.g. pytest.raises(ValueError)
        raise _REBUILT_EXCEPTIONS[kind](text)
    raise SubmissionError(text)


def forbidden_message(reply: dict, item: str | None) -> str:
    """Rebuilt from the child's structured report: function names and file:line only, never free text."""
    found = []
    for v in reply.get("violations", [])[:5] if isinstance(reply.get("violations"), list) else []:
        if not isinstance(v, dict):
            continue
        function = str(v.get("function", "?"))
        function = function if _NAME.fullmatch(function) else "?"
        file = os.path.basename(str(v.get("file", "?")))[:80]
        file = file if re.fullmatch(r"[\w.<>-]+", file) else "?"
        line = v.get("line") if isinstance(v.get("line"), int) else 0
        found.append(f"{function} called at {file}:{line}")
    where = f" (forbidden in item {item})" if item else ""
    return "forbidden torch function" + where + ": " + ("; ".join(dict.fromkeys(found)) or "?")


def check_canaries(reply: dict, canary: list[int], count_flops: bool) -> int:
    """The child's detector and counter must have seen the grader's own calls made around the submission's.

    Returns the FLOPs the submission's call used (0 when they are not counted)."""
    if reply.get("kind") in ("import", "not_implemented"):
        return 0
    if reply.get("detector_canary") is not True:
        raise ForbiddenCall("the grader's forbidden-call detector was disabled or replaced while your code ran")
    if count_flops:
        m, n, k = canary
        expected = 2 * m * n * k
        flops, seen = reply.get("flops"), reply.get("canary_flops")
        if not (isinstance(flops, int) and seen == [expected, expected]):
            raise ForbiddenCall("the grader's FLOP counter was disabled or replaced while your code ran")
        flops = max(0, flops - 2 * expected)
    if reply.get("threads_started"):
        raise ForbiddenCall("your code started a thread or process that outlived the call "
                            "(work done there escapes the checks)")
    return flops if count_flops else 0


class OutputDrain(threading.Thread):
    """Reads the child's stdout/stderr to the end; keeps the first OUTPUT_KEEP_BYTES."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.kept, self.total = stream, bytearray(), 0

    def run(self):
        for chunk in iter(lambda: self.stream.read1(1 << 16), b""):
            self.total += len(chunk)
            if len(self.kept) < OUTPUT_KEEP_BYTES:
                self.kept += chunk[: OUTPUT_KEEP_BYTES - len(self.kept)]

    def tail(self) -> str:
        text = self.kept.decode(errors="replace")[-1500:]
        cut = f"\n[{self.total - len(self.kept)} more bytes of output dropped]" if self.total > len(self.kept) else ""
        return text + cut
