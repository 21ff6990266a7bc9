"""A static scan of the submission, done in the grading process: what the child cannot hide.

Both source (.py, compiled here) and shipped bytecode (.pyc at any place Python may import
it from) are read as code objects and walked instruction by instruction (`dis`), so a
submission cannot hide a call by shipping bytecode that differs from its source.

Two kinds of findings:
- "torch": a function the policy forbids (lmgrade/policy.toml `forbidden`), or one of its
  private aliases (`[aliases]`: torch._softmax, torch._C._nn.cross_entropy_loss,
  torch.ops.aten._scaled_dot_product_attention_math, ...), reached as an attribute of torch
  (torch.softmax, F.softmax, torch.special.softmax, torch.ops.aten.softmax), imported from
  torch (`from torch.nn.functional import softmax as f`, then `f(...)`), bound at module
  level (`S = torch.softmax`), or named by a string (`getattr(torch, "softmax")`). An
  attribute that merely has a forbidden name (`x.softmax()` on a tensor) counts only if the
  submission does not define a function of that name itself; the run-time detector sees those.
  The policy's `[allow]` table applies: decoding may use softmax.
- "unsafe": never allowed anywhere (`[unsafe]` in the policy): threads, processes,
  ctypes, sockets, signals, frame and tracing hooks, exec/eval/compile/__import__, and any
  reference to the grader's detector, FLOP counter or modules (`lmgrade`, `__torch_function__`,
  `flop`...).

How a finding costs points (the rule, documented in the README): each finding belongs to
the top-level function or class it is written in. A call to adapter `run_X` in item I fails
as a forbidden call if a finding that I does not allow is in a definition reachable from
`run_X` (by name, over-approximated: any reference to a top-level name of the submission
counts). For packages, `run_X` reaches the names adapters/package.py uses for it
(`self.pkg.softmax`, `self.pkg.Linear`, ...). A finding outside every definition
(module-level code) is reachable from every adapter.
"""

from __future__ import annotations

import ast
import dis
import functools
import importlib.util
import marshal
import re
import types
from dataclasses import dataclass, field
from pathlib import Path

from lmgrade.sandbox.policy import Policy, policy

PACKAGE_ADAPTERS = Path(__file__).resolve().parents[2] / "adapters" / "package.py"
_LOADS = ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_FAST", "LOAD_DEREF", "LOAD_CLASSDEREF")
_ATTRS = ("LOAD_ATTR", "LOAD_METHOD", "IMPORT_FROM", "STORE_ATTR", "DELETE_ATTR", "LOAD_SUPER_ATTR")
_IDENT = re.compile(r"[A-Za-z_][\w.]*")
_STORES = ("STORE_NAME", "STORE_GLOBAL", "STORE_FAST", "STORE_DEREF")


@dataclass(frozen=True)
class Finding:
    kind: str  # "torch" or "unsafe"
    name: str  # the forbidden function (canonical), or what is unsafe
    file: str
    line: int
    owner: str | None  # the top-level definition it is in; None: module-level code

    def describe(self) -> str:
        what = f"{self.name}" if self.kind == "torch" else f"{self.name} (not allowed in any submission)"
        return f"{what} at {self.file}:{self.line}"


@dataclass
class ScanResult:
    findings: list[Finding] = field(default_factory=list)
    references: dict[str, set[str]] = field(default_factory=dict)  # top-level name -> top-level names it uses
    entries: dict[str, set[str]] = field(default_factory=dict)  # run_X -> the top-level names it starts from
    files: int = 0

    def reachable(self, adapter: str) -> set[str]:
        todo = list(self.entries.get(adapter, {adapter}))
        seen: set[str] = set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            todo.extend(self.references.get(name, ()))
        return seen

    def violations(self, adapter: str, forbidden: frozenset[str]) -> list[str]:
        reach = self.reachable(adapter)
        return list(dict.fromkeys(
            f.describe() for f in self.findings
            if (f.owner is None or f.owner in reach) and (f.kind == "unsafe" or f.name in forbidden)))


class _Walker:
    def __init__(self, result: ScanResult, file: str, defined: set[str], pol: Policy):
        self.result, self.file, self.defined, self.pol = result, file, defined, pol
        self.torchish = {"torch"}  # names bound to torch or one of its modules
        self.aliases: dict[str, str] = {}  # module-level names bound to a forbidden function
        self.unsafe_aliases: dict[str, str] = {}  # module-level names bound to an unsafe module

    def add(self, kind: str, name: str, line: int | None, owner: str | None) -> None:
        self.result.findings.append(Finding(kind, name, self.file, line or 0, owner))

    def torch_name(self, name: str, from_torch: bool) -> str | None:
        """The canonical forbidden function an attribute or string names, if any."""
        if name in self.pol.aliases:
            return self.pol.aliases[name]
        if name in self.pol.forbidden and (from_torch or name not in self.defined):
            return name
        return None

    def unsafe(self, name: str) -> bool:
        lowered = name.lower()
        return name in self.pol.unsafe_names or any(f in lowered for f in self.pol.unsafe_fragments)

    def walk(self, code: types.CodeType, owner: str | None, module_level: bool) -> None:
        line = code.co_firstlineno
        chain_torch = False  # the value on top comes from torch (torch, F, torch.ops.aten...)
        importing: str | None = None
        unsafe_import: str | None = None  # module level: an unsafe module being imported, bound by the next store
        pending: list[tuple[str, int]] = []  # module level: a forbidden function loaded, maybe to be bound to a name
        refs = self.result.references.setdefault(owner, set()) if owner else None
        for ins in dis.get_instructions(code):
            if ins.positions and ins.positions.lineno:
                line = ins.positions.lineno
            op, arg = ins.opname, ins.argval
            if op == "IMPORT_NAME":
                importing, unsafe_import = str(arg), None
                root = importing.split(".")[0]
                if root in self.pol.unsafe_modules or importing in self.pol.unsafe_modules or self.unsafe(importing):
                    if module_level:  # binds a name: its uses are the findings, in whatever they are in
                        unsafe_import = f"import {importing}"
                    else:
                        self.add("unsafe", f"import {importing}", line, owner)
                chain_torch = root == "torch"
                continue
            if op in _LOADS:
                name = str(arg)
                chain_torch = name in self.torchish
                if name in self.aliases:
                    self.add("torch", self.aliases[name], line, owner)
                if name in self.unsafe_aliases:
                    self.add("unsafe", self.unsafe_aliases[name], line, owner)
                if op in ("LOAD_GLOBAL", "LOAD_NAME") and name in self.pol.unsafe_builtins:
                    self.add("unsafe", f"{name}()", line, owner)
                if refs is not None and name in self.defined:
                    refs.add(name)
                continue
            if op in _ATTRS:
                name = str(arg)
                from_torch = chain_torch or (op == "IMPORT_FROM" and (importing or "").split(".")[0] == "torch")
                canonical = self.torch_name(name, from_torch)
                if module_level and op == "IMPORT_FROM" and (unsafe_import or self.unsafe(name)):
                    unsafe_import = f"{name} (from {importing})"  # bound by the store that follows
                elif self.unsafe(name):
                    self.add("unsafe", name, line, owner)
                elif canonical and module_level:
                    pending.append((canonical, line))
                elif canonical:
                    self.add("torch", canonical, line, owner)
                if op == "IMPORT_FROM" and (importing or "").split(".")[0] in self.pol.unsafe_modules:
                    pass  # already reported at the import
                chain_torch = from_torch and op != "STORE_ATTR"
                if refs is not None and name in self.defined:
                    refs.add(name)
                continue
            if op in _STORES:
                name = str(arg)
                if self.unsafe(name):  # e.g. defining __torch_function__ in a class body
                    self.add("unsafe", name, line, owner)
                if module_level and unsafe_import:
                    self.unsafe_aliases[name] = unsafe_import
                    if importing and not importing.split(".")[0] in self.pol.unsafe_modules:
                        unsafe_import = None
                if module_level:
                    if pending:
                        # `S = torch.softmax`: every use of S is a finding; and `class AdamW(torch.optim.AdamW)`:
                        # the class itself is one, for whatever reaches it.
                        self.aliases[name] = pending.pop()[0]
                        self.add("torch", self.aliases[name], line, name)
                        pending.clear()
                    elif chain_torch:
                        self.torchish.add(name)
                chain_torch = False
                continue
            if op == "LOAD_CONST":
                value = arg
                if isinstance(value, str) and len(value) <= 200 and _IDENT.fullmatch(value):
                    canonical = self.pol.aliases.get(value) or (
                        value if value in self.pol.forbidden and value not in self.defined else None)
                    if canonical and module_level:
                        pending.append((canonical, line))  # e.g. getattr(torch, "_softmax") bound to a name
                    elif canonical:
                        self.add("torch", canonical, line, owner)
                    elif self.unsafe(value) or value.split(".")[0] in self.pol.unsafe_modules:
                        self.add("unsafe", f"{value!r} as a name", line, owner)
                elif isinstance(value, types.CodeType):
                    nested_owner = owner if owner else value.co_name
                    if not module_level or value.co_name not in ("<lambda>", "<listcomp>", "<genexpr>",
                                                                  "<dictcomp>", "<setcomp>"):
                        self.walk(value, nested_owner, False)
                    else:
                        self.walk(value, owner, False)
                continue
            unsafe_import = None
            if op not in ("CACHE", "PRECALL", "CALL", "PUSH_NULL", "NOP", "RESUME", "EXTENDED_ARG", "COPY", "SWAP",
                          "KW_NAMES"):
                chain_torch = False
        for name, at in pending:  # loaded at module level and used right there
            self.add("torch", name, at, None)


def _code_objects(path: Path) -> types.CodeType | None:
    if path.suffix == ".py":
        try:
            return compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
        except (SyntaxError, ValueError):
            return None  # it cannot be imported either
    data = path.read_bytes()
    if data[:4] != importlib.util.MAGIC_NUMBER:
        return None  # another Python's bytecode: this Python will not import it
    try:
        code = marshal.loads(data[16:])
    except (ValueError, EOFError, TypeError):
        return None
    return code if isinstance(code, types.CodeType) else None


def _defined_names(code: types.CodeType) -> set[str]:
    names = set()
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.add(const.co_name)
            names |= _defined_names(const)
    return names


@functools.lru_cache(maxsize=None)
def package_entries() -> dict[str, frozenset[str]]:
    """run_X -> the names adapters/package.py looks up on the package for it (through its helpers)."""
    tree = ast.parse(PACKAGE_ADAPTERS.read_text())
    methods: dict[str, tuple[set[str], set[str]]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "PackageAdapters":
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    pkg_names, helpers = set(), set()
                    for sub in ast.walk(item):
                        if isinstance(sub, ast.Attribute):
                            value = sub.value
                            if isinstance(value, ast.Attribute) and value.attr == "pkg":
                                pkg_names.add(sub.attr)
                            elif isinstance(value, ast.Name) and value.id == "self" and sub.attr != "pkg":
                                helpers.add(sub.attr)
                    methods[item.name] = (pkg_names, helpers)

    def closure(name: str, seen: set[str]) -> set[str]:
        if name in seen or name not in methods:
            return set()
        seen.add(name)
        names, helpers = methods[name]
        found = set(names)
        for helper in helpers:
            found |= closure(helper, seen)
        return found

    return {name: frozenset(closure(name, set())) for name in methods if not name.startswith("_")}


def scan_path(path: str | Path, adapters_file: bool = False) -> ScanResult:
    """Scan an adapters file, or every .py/.pyc under a submission folder."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in (".py", ".pyc") and p.is_file())
    codes = [(p, _code_objects(p)) for p in files]
    defined: set[str] = set()
    for _, code in codes:
        if code is not None:
            defined |= _defined_names(code)
    if adapters_file and path.is_file():
        # Names its own package defines (cs336_basics.softmax is the student's softmax, not torch's):
        # the Python sources taken in beside it (lmgrade.sandbox.intake.take_in_adapters).
        folder = path.parent
        for root in ([folder, folder.parent] if folder.name == "tests" else [folder]):
            for source in sorted(root.rglob("*.py")):
                code = _code_objects(source) if source != path else None
                if code is not None:
                    defined |= _defined_names(code)
    result = ScanResult(files=len(files))
    pol = policy()
    for p, code in codes:
        if code is None:
            continue
        shown = p.name if path.is_file() else str(p.relative_to(path))
        _Walker(result, shown, defined, pol).walk(code, None, True)
    if not adapters_file:
        result.entries = {name: set(names) for name, names in package_entries().items()}
    return result
