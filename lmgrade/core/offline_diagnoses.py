"""The catalogued bugs' outputs on the visible cases, shipped as data so the handout can diagnose offline.

The instructor's grader names the common bug a wrong output matches by re-running every
catalogued bug variant on the failing case (lmgrade/catalogue/diagnosis.py). The handout has
neither the catalogue nor the reference, so `lmgrade release` records, for the visible tests
only, what each candidate bug produces (lmgrade/catalogue/recording.py) into one safetensors
file beside the reference snapshots (`BUG_OUTPUTS_PATH`): tensors, and in its metadata (JSON)
the bugs' descriptions and which values belong to which case. Never code.

- outputs: {case_key: {run dtype: {bug: {name: tensor or "="}}}}, "=" meaning the reference's
  own tensor; for the bugs of the case's own component and the dtype bugs (a part's bug passes
  a composite as the composition of its own parts, and is named in the part's own tests). A bug
  equal to the reference (or crashing) on a case explains nothing there and is left out; so is
  a float32 run within 1e-6 of the float64 one. Values of float32 cases are kept in float32.
- measurements: {site_key: {"groups": [[bug, ...], ...], "values": {bug: encoded}}}: a
  `diagnose_measurement` call site, keyed by a digest of the measurement's closure (the
  inputs it captured), and what each candidate bug measures there (those measuring the same
  as the reference are left out).
- groups: {fn: candidate groups of diagnose_outputs}, dtype_group, raises: [[component,
  substring of the error, bug]].
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

BUG_OUTPUTS_NAME = "bug_outputs.safetensors"
SECTIONS = ("outputs", "measurements", "groups", "dtype_group", "raises")


# --- values as JSON + tensors ----------------------------------------------------------------------------


class Tensors:
    """The tensors of one file, deduplicated by content: intern(t) -> its name."""

    def __init__(self):
        self.by_name: dict[str, Tensor] = {}
        self._by_digest: dict[str, str] = {}

    def intern(self, t: Tensor) -> str:
        t = t.detach().to("cpu").contiguous()
        digest = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode() + (t.reshape(-1).view(torch.uint8).numpy().tobytes()
                                                                          if t.numel() else b"")).hexdigest()
        if digest not in self._by_digest:
            name = f"t{len(self.by_name)}"
            self.by_name[name] = t.clone()
            self._by_digest[digest] = name
        return self._by_digest[digest]


def encode(value: Any, tensors: Tensors) -> Any:
    """A measured value as JSON (tensors interned); TypeError for what cannot be written."""
    if isinstance(value, Tensor):
        return {"t": tensors.intern(value)}
    if isinstance(value, bool):
        return {"b": value}
    if isinstance(value, int):
        return {"i": value}
    if isinstance(value, float):
        return {"f": repr(value)}
    if isinstance(value, str) or value is None:
        return {"s": value}
    if isinstance(value, (list, tuple)):
        return {"l" if isinstance(value, list) else "u": [encode(v, tensors) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"d": {k: encode(v, tensors) for k, v in value.items()}}
    raise TypeError(f"cannot record a {type(value).__name__}")


def decode(obj: Any, tensors: dict[str, Tensor]) -> Any:
    (kind, value), = obj.items()
    if kind == "t":
        return tensors[value].clone()
    if kind == "f":
        return float(value)
    if kind in ("b", "i", "s"):
        return value
    if kind in ("l", "u"):
        items = [decode(v, tensors) for v in value]
        return items if kind == "l" else tuple(items)
    return {k: decode(v, tensors) for k, v in value.items()}


# --- where a measurement is taken ---------------------------------------------------------------------


def _feed(digest, value: Any, depth: int, seen: set[int]) -> None:
    """Feed what determines a measurement: captured data, never object identities or devices."""
    if depth > 8 or id(value) in seen:
        digest.update(b"^")
        return
    if isinstance(value, Tensor):
        t = value.detach().to("cpu").contiguous()
        digest.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(value, (bool, int, float, str, bytes, type(None), torch.dtype)):
        digest.update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, torch.device):
        digest.update(b"device;")  # recorded on the CPU, equally valid on CUDA
    elif isinstance(value, (list, tuple, dict, set, frozenset, types.FunctionType, types.MethodType)) or \
            dataclasses.is_dataclass(value) or hasattr(value, "func") and hasattr(value, "keywords"):
        seen = seen | {id(value)}
        if isinstance(value, dict):
            items = sorted(value.items(), key=lambda kv: repr(kv[0]))
            digest.update(f"D{len(items)}(".encode())
            for key, item in items:
                _feed(digest, key, depth + 1, seen)
                _feed(digest, item, depth + 1, seen)
        elif isinstance(value, (set, frozenset)):
            digest.update(f"S{sorted(map(repr, value))};".encode())
        elif isinstance(value, (list, tuple)):
            digest.update(f"L{len(value)}(".encode())
            for item in value:
                _feed(digest, item, depth + 1, seen)
        elif isinstance(value, types.MethodType):
            digest.update(f"M{value.__func__.__qualname__};".encode())
        elif isinstance(value, types.FunctionType):
            digest.update(f"F{value.__qualname__};".encode())
            for cell in value.__closure__ or ():
                try:
                    _feed(digest, cell.cell_contents, depth + 1, seen)
                except ValueError:  # an empty cell
                    digest.update(b"-")
        elif dataclasses.is_dataclass(value):
            digest.update(f"C{type(value).__qualname__}(".encode())
            for f in dataclasses.fields(value):
                _feed(digest, getattr(value, f.name), depth + 1, seen)
        else:  # functools.partial
            _feed(digest, (value.func, value.args, value.keywords), depth + 1, seen)
        digest.update(b")")
    else:  # an implementation, an oracle (live here, snapshots in the handout), a generator: not data
        digest.update(b"O;")


def site_key(fn: str, own: str | None, measure: Any) -> str:
    digest = hashlib.sha256(f"{fn}|{own}|".encode())
    _feed(digest, measure, 0, set())
    return digest.hexdigest()[:24]


# --- the file ------------------------------------------------------------------------------------------


class BugData:
    """One bug-outputs file in memory: descriptions by index, the sections, the tensors."""

    def __init__(self):
        self.descriptions: list[str] = []
        self.sections: dict[str, Any] = {"outputs": {}, "measurements": {}, "groups": {}, "dtype_group": [], "raises": []}
        self.tensors = Tensors()

    def bug(self, description: str) -> str:
        if description not in self.descriptions:
            self.descriptions.append(description)
        return str(self.descriptions.index(description))

    @classmethod
    def load(cls, path: Path) -> BugData:
        from safetensors.torch import safe_open

        data = cls()
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            data.tensors.by_name = {name: f.get_tensor(name) for name in f.keys()}
        data.descriptions = json.loads(meta.get("descriptions", "[]"))
        for section in SECTIONS:
            data.sections[section] = json.loads(meta.get(section, json.dumps(data.sections[section])))
        return data

    def referenced(self) -> set[str]:
        """The tensors a record points to (a record replaced by a merge may leave others behind)."""
        found: set[str] = set()

        def walk(obj) -> None:
            (kind, value), = obj.items()
            if kind == "t":
                found.add(value)
            elif kind in ("l", "u"):
                for v in value:
                    walk(v)
            elif kind == "d":
                for v in value.values():
                    walk(v)

        for runs in self.sections["outputs"].values():
            found.update(t for bugs in runs.values() for named in bugs.values() for t in named.values() if t != "=")
        for site in self.sections["measurements"].values():
            for v in site["values"].values():
                walk(v)
        return found

    def save(self, path: Path) -> None:
        from safetensors.torch import save_file

        meta = {"descriptions": json.dumps(self.descriptions), **{s: json.dumps(v) for s, v in self.sections.items()}}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        kept = self.referenced()
        save_file({n: t for n, t in self.tensors.by_name.items() if n in kept}, str(path), metadata=meta)

    def merge(self, other: BugData) -> None:
        """Add other's records (bugs matched by description, tensors re-interned)."""
        def bug(i) -> str:
            return self.bug(other.descriptions[int(i)])

        def tensor(name: str) -> str:
            return name if name == "=" else self.tensors.intern(other.tensors.by_name[name])

        def value(obj):
            (kind, v), = obj.items()
            return {"t": tensor(v)} if kind == "t" else {kind: [value(x) for x in v]} if kind in ("l", "u") else \
                {kind: {k: value(x) for k, x in v.items()}} if kind == "d" else obj

        for key, runs in other.sections["outputs"].items():
            mine = self.sections["outputs"].setdefault(key, {})
            for run, bugs in runs.items():
                for i, named in bugs.items():
                    mine.setdefault(run, {})[bug(i)] = {name: tensor(t) for name, t in named.items()}
        for key, site in other.sections["measurements"].items():
            self.sections["measurements"][key] = {"groups": [[bug(i) for i in g] for g in site["groups"]],
                                                  "values": {bug(i): value(v) for i, v in site["values"].items()}}
        for fn, groups in other.sections["groups"].items():
            self.sections["groups"][fn] = [[bug(i) for i in g] for g in groups]
        if other.sections["dtype_group"]:
            self.sections["dtype_group"] = [bug(i) for i in other.sections["dtype_group"]]
        raises = {tuple(r) for r in self.sections["raises"]} | {(c, s, bug(i)) for c, s, i in other.sections["raises"]}
        self.sections["raises"] = sorted(map(list, raises))

    # --- the handout's lookups

    def output_groups(self, fn: str, dtype: torch.dtype | None) -> list[list[str]]:
        groups = list(self.sections["groups"].get(fn, []))
        if dtype is not None and dtype != torch.float32 and self.sections["dtype_group"]:
            groups.insert(0, self.sections["dtype_group"])
        return groups

    def outputs(self, key: str, run: torch.dtype, bug: str, right: dict[str, Tensor]) -> dict[str, Tensor] | None:
        """What bug produced on the case in the run's dtype (the float64 run where that one was left out)."""
        runs = self.sections["outputs"].get(key, {})
        named = runs.get(str(run).removeprefix("torch."), {}).get(bug) or runs.get("float64", {}).get(bug)
        if named is None:
            return None
        return {name: right[name] if t == "=" else self.tensors.by_name[t] for name, t in named.items()}

    def measured(self, key: str) -> tuple[list[list[str]], dict[str, Any]]:
        site = self.sections["measurements"].get(key)
        if site is None:
            return [], {}
        return site["groups"], site["values"]

    def value(self, encoded: Any) -> Any:
        return decode(encoded, self.tensors.by_name)

    def raised(self, component: str, message: str) -> list[str]:
        return [self.descriptions[int(i)] for c, text, i in self.sections["raises"] if c == component and text in message]
