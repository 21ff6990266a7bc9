"""Run-time detection of forbidden torch calls, by item, with the call site in the submission."""

from __future__ import annotations

import sys
import traceback
from functools import lru_cache
from pathlib import Path

from torch.overrides import TorchFunctionMode

from .rubric import tomllib

POLICY_PATH = Path(__file__).resolve().parent / "policy.toml"
_OURS = (str(Path(__file__).resolve().parent.parent / "adapters"), str(Path(__file__).resolve().parent), "/torch/", "/einx/", "/jaxtyping/", "/beartype/")


@lru_cache(maxsize=None)
def _policy() -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    data = tomllib.loads(POLICY_PATH.read_text())
    return frozenset(data["forbidden"]), {k: frozenset(v) for k, v in data.get("allow", {}).items()}


def forbidden_for(item_id: str | None) -> frozenset[str]:
    forbidden, allow = _policy()
    component = (item_id or "").split(".")[0]
    return forbidden - allow.get(component, frozenset())


def _call_site() -> str:
    """The innermost frame that is the submission's own code (not torch, not the grader)."""
    for frame in reversed(traceback.extract_stack(sys._getframe(2))):
        if not any(part in frame.filename for part in _OURS) and "<frozen" not in frame.filename:
            return f"{frame.filename}:{frame.lineno} ({frame.line})"
    return "unknown call site"


class ForbiddenCallDetector(TorchFunctionMode):
    """Records every forbidden torch function called while active; lets the call through."""

    def __init__(self, forbidden: frozenset[str]):
        super().__init__()
        self.forbidden = forbidden
        self.violations: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in self.forbidden and len(self.violations) < 5:
            self.violations.append(f"{name} called at {_call_site()}")
        return func(*args, **(kwargs or {}))

    def report(self, item_id: str | None) -> str | None:
        if not self.violations:
            return None
        where = f" (forbidden in item {item_id})" if item_id else ""
        return "forbidden torch function" + where + ": " + "; ".join(dict.fromkeys(self.violations))
