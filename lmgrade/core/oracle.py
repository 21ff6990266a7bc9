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

from lmgrade.core.evaluation import map_tensors, outputs_and_grads


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

    # Where the reference is, the bug catalogue is too: a failure can be diagnosed.
    diagnoses = True

    def __init__(self, reference_bound):
        self.reference = reference_bound

    def expected(self, fn: str, args: dict, wrt: Sequence[str] = (), cotangent_seed: int = 0) -> dict[str, Tensor]:
        def to_ground_truth(t: Tensor) -> Tensor:
            t = t.detach().to("cpu")
            return t.to(torch.float64) if t.is_floating_point() else t

        return outputs_and_grads(self.reference, fn, map_tensors(args, to_ground_truth), wrt, cotangent_seed)



PROJECT_ROOT = Path(__file__).resolve().parents[2]


def reference_fingerprint(root: Path = PROJECT_ROOT) -> str:
    """A digest of everything the expected values depend on besides the case itself."""
    digest = hashlib.sha256(f"torch {torch.__version__}".encode())
    for path in sorted([*(root / "reference").glob("*.py"), *(root / "adapters").glob("*.py"), root / "lmgrade" / "core" / "oracle.py", root / "lmgrade" / "core" / "evaluation.py"]):
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
    """Expected values shipped with the student handout, keyed by `case_key`.

    With them ships what the catalogued bugs produce on the same cases (`offline`, see
    lmgrade/core/offline_diagnoses.py), so a failure is diagnosed as the grader would: `diagnoses`.
    """

    def __init__(self, path: Path = SNAPSHOT_PATH):
        from safetensors.torch import load_file

        from lmgrade.core.offline_diagnoses import BUG_OUTPUTS_NAME, BugData

        self.path = path
        self.tensors = load_file(str(path)) if path.exists() else {}
        bugs = Path(path).parent / BUG_OUTPUTS_NAME
        try:
            self.offline = BugData.load(bugs) if bugs.exists() else None
        except Exception:  # an unreadable file: no diagnosis, never a failed test
            self.offline = None
        self.diagnoses = self.offline is not None

    def expected(self, fn: str, args: dict, wrt: Sequence[str] = (), cotangent_seed: int = 0) -> dict[str, Tensor]:
        key = case_key(fn, args, wrt, cotangent_seed)
        found = {name[len(key) + 1 :]: t for name, t in self.tensors.items() if name.startswith(key + "/")}
        if "output" not in found:
            raise LookupError(
                f"the reference output of this {fn} case is not in {self.path.name}: "
                "the visible tests must stay as they were handed out"
            )
        return found


# Called as hook(oracle, fn, args, wrt, cotangent_seed, expected) for every case a RecordingOracle answers
# (lmgrade/catalogue/recording.py records the catalogued bugs' outputs on it).
RECORD_HOOKS: list = []


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
        if not any(name.startswith(key + "/") for name in self.saved):
            for hook in RECORD_HOOKS:
                hook(self, fn, args, wrt, cotangent_seed, result)
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
