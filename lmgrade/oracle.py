"""Expected outputs and gradients: from the live reference (instructors) or from shipped snapshots.

A comparison case is (adapter name, keyword arguments, which tensors to differentiate,
cotangent seed). Its expected values are a dict {"output": ..., "grad/<path>": ...}, a
pure function of the case and of the reference's code, so the student handout can ship them
as data files, and the grader can keep them on disk (`CachingOracle`): grading the next
submission, a case the suite draws again costs a file read instead of a reference run.
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .compare import Mismatch


def get_path(args: dict, path: str) -> Any:
    value = args
    for part in path.split("/"):
        value = value[part]
    return value


def set_path(args: dict, path: str, new: Any) -> dict:
    """A copy of args with the value at path replaced (nested dicts are copied, tensors are not)."""
    head, _, rest = path.partition("/")
    copied = dict(args)
    copied[head] = set_path(args[head], rest, new) if rest else new
    return copied


def map_tensors(args: Any, fn) -> Any:
    if isinstance(args, Tensor):
        return fn(args)
    if isinstance(args, dict):
        return {key: map_tensors(value, fn) for key, value in args.items()}
    if isinstance(args, (list, tuple)):
        return type(args)(map_tensors(value, fn) for value in args)
    return args


def cotangent(shape, seed: int, like: Tensor) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(tuple(shape), generator=g, dtype=torch.float64).to(like.dtype).to(like.device)


def outputs_and_grads(bound, fn: str, args: dict, wrt: Sequence[str], cotangent_seed: int = 0) -> dict[str, Tensor]:
    """Run one adapter; differentiate Σ output ⊙ cotangent w.r.t. each path in wrt."""
    leaves = []
    for path in wrt:
        leaf = get_path(args, path).detach().requires_grad_(True)
        args = set_path(args, path, leaf)
        leaves.append(leaf)
    output = getattr(bound, fn)(**args)
    result = {"output": output.detach()}
    if not leaves:
        return result
    if not output.requires_grad:
        raise Mismatch(
            f"{fn}: the output does not depend differentiably on {list(wrt)}; "
            "did you use .detach(), .data, torch.no_grad() or a non-differentiable op?", outputs=result
        )
    grads = torch.autograd.grad(output, leaves, cotangent(output.shape, cotangent_seed, output), allow_unused=True)
    result.update({f"grad/{path}": grad for path, grad in zip(wrt, grads) if grad is not None})
    pairs = list(zip(wrt, grads))
    weights = [path for path in wrt if is_weight_path(path)]
    if weights and all(grad is None for path, grad in pairs if path in weights):
        # The output is differentiable, yet no weight tensor we passed gets a gradient: the adapter
        # copied the weights into its module (CS336's load_state_dict), so the gradients went to the
        # module's own parameters. Legitimate; only the input gradients can be compared.
        pairs = [(path, grad) for path, grad in pairs if path not in weights]
    for path, grad in pairs:
        if grad is None:  # what was produced goes with the error: a diagnosis can still match it
            raise Mismatch(f"{fn}: no gradient flows back to {path!r}: the output does not use it", outputs=result)
    return result


def is_weight_path(path: str) -> bool:
    """A differentiated argument that is a weight (`weights`, `weights/<name>`, `q_proj_weight`), not an input."""
    return "weight" in path


def case_key(fn: str, args: dict, wrt: Sequence[str], cotangent_seed: int) -> str:
    """A digest of everything that determines the expected values of a case."""
    digest = hashlib.sha256(f"{fn}|{','.join(wrt)}|{cotangent_seed}".encode())

    def feed(value: Any, name: str) -> None:
        if isinstance(value, dict):
            for key in sorted(value):
                feed(value[key], f"{name}/{key}")
        elif isinstance(value, Tensor):
            t = value.detach().to("cpu").contiguous()
            digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            digest.update(t.flatten().view(torch.uint8).numpy().tobytes())
        else:
            digest.update(f"{name}={value!r}".encode())

    feed(args, "")
    return digest.hexdigest()[:24]


class LiveOracle:
    """The hidden reference, run in float64 on the CPU: the ground truth."""

    def __init__(self, reference_bound):
        self.reference = reference_bound

    def expected(self, fn: str, args: dict, wrt: Sequence[str] = (), cotangent_seed: int = 0) -> dict[str, Tensor]:
        def to_ground_truth(t: Tensor) -> Tensor:
            t = t.detach().to("cpu")
            return t.to(torch.float64) if t.is_floating_point() else t

        return outputs_and_grads(self.reference, fn, map_tensors(args, to_ground_truth), wrt, cotangent_seed)

    def catalogued_bugs(self, fn: str):
        """Bug variants that may explain a wrong `fn`: groups of [(description, bound adapters)], likeliest first."""
        from .diagnosis import catalogued_bugs

        return catalogued_bugs(fn)


PROJECT_ROOT = Path(__file__).resolve().parent.parent


def reference_fingerprint(root: Path = PROJECT_ROOT) -> str:
    """A digest of everything the expected values depend on besides the case itself."""
    digest = hashlib.sha256(f"torch {torch.__version__}".encode())
    for path in sorted([*(root / "reference").glob("*.py"), *(root / "adapters").glob("*.py"), root / "lmgrade" / "oracle.py"]):
        digest.update(f"{path.parent.name}/{path.name}".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def default_cache_dir() -> Path | None:
    """LMGRADE_ORACLE_CACHE (empty: no cache), else ~/.cache/lmgrade/oracle (XDG_CACHE_HOME respected)."""
    configured = os.environ.get("LMGRADE_ORACLE_CACHE")
    if configured is not None:
        return Path(configured) if configured else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lmgrade" / "oracle"


class CachingOracle(LiveOracle):
    """The live reference, its answers kept on disk: one file per case, read back when the case recurs.

    Files live under a directory named by `reference_fingerprint()`, so editing the reference,
    the adapters or this module (or another torch) starts an empty one: an answer is never
    served for code other than the code that computed it. Writes go to a temporary file renamed
    into place, so parallel graders (`grade-all --jobs`) never read half a file; a cache that
    cannot be written or read only costs speed.

    Trust: only the grading process reads and writes it, outside every sandbox (the child never
    sees it: it is not mounted in tier 1, and it is owner-only, 0700, in tier 2). Every entry is
    also verified before use: it carries its case key and an HMAC-SHA256 of the key and every
    tensor's name, dtype, shape and bytes, under a secret kept in the cache root (0600). An
    entry that does not verify (edited, moved to another key, truncated) is recomputed.
    """

    def __init__(self, reference_bound, root: Path):
        super().__init__(reference_bound)
        self.root = Path(root)
        self.dir = self.root / reference_fingerprint()
        self.hits = self.misses = self.rejected = 0
        self._secret: bytes | None = None

    def _key(self) -> bytes | None:
        """The cache's secret (created on first use, owner-only); None if it cannot be had."""
        if self._secret is None:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                os.chmod(self.root, 0o700)
                path = self.root / "secret.key"
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "wb") as f:
                        f.write(os.urandom(32))
                except FileExistsError:
                    pass
                secret = path.read_bytes()
                self._secret = secret if len(secret) == 32 else None
            except OSError:
                return None
        return self._secret

    @staticmethod
    def _mac(secret: bytes, key: str, tensors: dict[str, Tensor]) -> str:
        mac = hmac.new(secret, key.encode(), hashlib.sha256)
        for name in sorted(tensors):
            t = tensors[name].detach().to("cpu").contiguous()
            mac.update(f"|{name}:{t.dtype}:{tuple(t.shape)}|".encode())
            mac.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return mac.hexdigest()

    def _load(self, path: Path, key: str, secret: bytes) -> dict[str, Tensor] | None:
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                found = {name: f.get_tensor(name) for name in f.keys()}
        except Exception:  # absent, or unreadable
            return None
        if "output" not in found or meta.get("key") != key or not hmac.compare_digest(
                meta.get("mac", ""), self._mac(secret, key, found)):
            self.rejected += 1
            return None
        return found

    def expected(self, fn: str, args: dict, wrt: Sequence[str] = (), cotangent_seed: int = 0) -> dict[str, Tensor]:
        from safetensors.torch import save_file

        key = case_key(fn, args, wrt, cotangent_seed)
        path = self.dir / f"{key}.safetensors"
        secret = self._key()
        if secret is not None:
            found = self._load(path, key, secret)
            if found is not None:
                self.hits += 1
                return found
        self.misses += 1
        result = super().expected(fn, args, wrt, cotangent_seed)
        if secret is None:
            return result
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
            tensors = {name: t.detach().contiguous() for name, t in result.items()}
            save_file(tensors, str(partial), metadata={"key": key, "mac": self._mac(secret, key, tensors)})
            os.replace(partial, path)
        except OSError:
            pass
        return result


SNAPSHOT_PATH = PROJECT_ROOT / "tests" / "data" / "reference_outputs.safetensors"


class SnapshotOracle:
    """Expected values shipped with the student handout, keyed by `case_key`."""

    def __init__(self, path: Path = SNAPSHOT_PATH):
        from safetensors.torch import load_file

        self.path = path
        self.tensors = load_file(str(path)) if path.exists() else {}

    def expected(self, fn: str, args: dict, wrt: Sequence[str] = (), cotangent_seed: int = 0) -> dict[str, Tensor]:
        key = case_key(fn, args, wrt, cotangent_seed)
        found = {name[len(key) + 1 :]: t for name, t in self.tensors.items() if name.startswith(key + "/")}
        if "output" not in found:
            raise LookupError(
                f"the reference output of this {fn} case is not in {self.path.name}: "
                "the visible tests must stay as they were handed out"
            )
        return found


class RecordingOracle(LiveOracle):
    """The live reference, also saving every case it answers (to build the handout's snapshots)."""

    def __init__(self, reference_bound, path: Path):
        super().__init__(reference_bound)
        self.path = Path(path)
        self.saved: dict[str, Tensor] = {}
        atexit.register(self.flush)

    def expected(self, fn, args, wrt=(), cotangent_seed=0):
        result = super().expected(fn, args, wrt, cotangent_seed)
        key = case_key(fn, args, wrt, cotangent_seed)
        for name, tensor in result.items():
            self.saved[f"{key}/{name}"] = tensor.detach().contiguous()
        return result

    def flush(self) -> None:
        from safetensors.torch import save_file

        if self.saved:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            save_file(self.saved, str(self.path))


def load_oracle():
    """The live reference where it is installed (instructors), else the shipped snapshots (students)."""
    try:
        import adapters

        reference = adapters.select(impl="reference")
    except ImportError:
        return SnapshotOracle()
    record_to = os.environ.get("LMGRADE_RECORD_SNAPSHOTS")
    if record_to:
        return RecordingOracle(reference, Path(record_to))
    cache = default_cache_dir()
    return CachingOracle(reference, cache) if cache else LiveOracle(reference)
