"""The forbidden-call policy (policy.toml): what students write themselves, per item, and what no
submission may touch. Read by the run-time detector in the child and by the static scan here."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from lmgrade.core.rubric import tomllib

POLICY_PATH = Path(__file__).resolve().parent / "policy.toml"


@dataclass(frozen=True)
class Policy:
    forbidden: frozenset[str]
    allow: dict[str, frozenset[str]]  # item component -> forbidden functions it may call
    aliases: dict[str, str]
    unsafe_modules: frozenset[str]
    unsafe_names: frozenset[str]
    unsafe_builtins: frozenset[str]
    unsafe_fragments: tuple[str, ...]


@functools.lru_cache(maxsize=None)
def policy() -> Policy:
    data = tomllib.loads(POLICY_PATH.read_text())
    unsafe = data.get("unsafe", {})
    return Policy(frozenset(data["forbidden"]), {k: frozenset(v) for k, v in data.get("allow", {}).items()},
                  dict(data.get("aliases", {})),
                  frozenset(unsafe.get("modules", [])), frozenset(unsafe.get("names", [])),
                  frozenset(unsafe.get("builtins", [])), tuple(f.lower() for f in unsafe.get("fragments", [])))


def forbidden_for(item_id: str | None) -> frozenset[str]:
    """The torch functions a test of this item may not reach (an item and its ".hidden" twin share them)."""
    component = (item_id or "").split(".")[0]
    return policy().forbidden - policy().allow.get(component, frozenset())
