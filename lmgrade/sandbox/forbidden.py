"""Run-time detection of forbidden torch calls, by item, with the call site in the submission."""

from __future__ import annotations

import sys
import traceback
from functools import lru_cache
from pathlib import Path

from torch.overrides import TorchFunctionMode


_OURS = (str(Path(__file__).resolve().parents[2] / "adapters"), str(Path(__file__).resolve().parents[1]), "/torch/", "/einx/", "/jaxtyping/", "/beartype/")


def _call_site_frame():
    for frame in reversed(traceback.extract_stack(sys._getframe(3))):
        if not any(part in frame.filename for part in _OURS) and "<frozen" not in frame.filename:
            return frame
    return None


def _call_site() -> str:
    """The innermost frame that is the submission's own code (not torch, not the grader)."""
    frame = _call_site_frame()
    return f"{frame.filename}:{frame.lineno} ({frame.line})" if frame else "unknown call site"


@lru_cache(maxsize=1)
def _canary_input():
    import torch

    return torch.zeros(2)


class ForbiddenCallDetector(TorchFunctionMode):
    """Records every forbidden torch function called while active; lets the call through."""

    def __init__(self, forbidden: frozenset[str]):
        super().__init__()
        self.forbidden = forbidden
        self.violations: list[str] = []
        self.sites: list[dict] = []  # the same, structured: {"function", "file", "line"}
        self._in_canary = self.canary_seen = False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in self.forbidden or self._in_canary:  # every other call of the submission goes straight through
            if self._in_canary:
                self.canary_seen = self.canary_seen or name == "softmax"
            elif len(self.violations) < 5:
                frame = _call_site_frame()
                where = f"{frame.filename}:{frame.lineno} ({frame.line})" if frame else "unknown call site"
                self.violations.append(f"{name} called at {where}")
                self.sites.append({"function": name, "file": frame.filename if frame else "?",
                                   "line": frame.lineno if frame else 0})
        return func(*args, **kwargs) if kwargs else func(*args)

    def canary(self) -> bool:
        """Calls a forbidden function itself: True if this detector (still) sees it."""
        import torch

        self._in_canary, self.canary_seen = True, False
        try:
            torch.softmax(_canary_input(), 0)
        finally:
            self._in_canary = False
        return self.canary_seen

    def report(self, item_id: str | None) -> str | None:
        if not self.violations:
            return None
        where = f" (forbidden in item {item_id})" if item_id else ""
        return "forbidden torch function" + where + ": " + "; ".join(dict.fromkeys(self.violations))
