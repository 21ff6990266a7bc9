"""Name the common bug that a wrong output matches.

When a comparison with the reference fails, the same inputs go through every catalogued bug
of the component under test (`lmgrade.catalogue.bugs`), computed like the reference: on the CPU, in
float64. If the output under test agrees with one of them within the test's tolerance, the
failure message says so, in the words of the catalogue ("RMSNorm adds eps after the square
root instead of inside it"). Hidden items get that sentence and nothing about the inputs.

The catalogue and the reference stay with the instructor. The handout instead ships what every
candidate bug produced on its visible cases and at its measurement sites (recorded by
`lmgrade release`, lmgrade/catalogue/recording.py), as data: its snapshot oracle carries them
(`oracle.offline`, lmgrade/core/offline_diagnoses.py) and the same rules run on them, so a
visible test's failure is named as the grader names it; a case or site that was not recorded
quietly finds nothing. A diagnosis never fails a test on its own, never raises, and runs only
once a test has already failed, when its message is first shown (so Hypothesis does not pay
for it while it shrinks).
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lmgrade.core.evaluation import map_tensors, outputs_and_grads
from lmgrade.core.offline_diagnoses import site_key
from lmgrade.core.oracle import case_key
from lmgrade.core.parts import COMPONENT_OF
from lmgrade.core.compare import LIKELY_CAUSE, Mismatch, Tolerance, describe_difference  # noqa: F401  (LIKELY_CAUSE: re-exported)

LOW_PRECISION = (torch.float16, torch.bfloat16)


def component(item_id: str) -> str:
    return item_id.split(".")[0]


def _catalogue():
    """(bugs, rubric), or None where the catalogue is not installed (the student handout)."""
    try:
        from lmgrade.catalogue.bugs import BUGS
        from lmgrade.core.rubric import load_rubric
    except ImportError:
        return None
    return BUGS, load_rubric()


def candidate_groups(fn: str, dtype: torch.dtype | None = None, own: str | None = None) -> list[list]:
    """Bugs that may explain a wrong `fn`, most likely first: dtype bugs when the case is not
    float32, then those of its own component (`own`: the item that checks it, when that is not
    fn's part, e.g. padding checking run_transformer_lm), then those of the components it builds
    on (transitively)."""
    found = _catalogue()
    own = own or COMPONENT_OF.get(fn)
    if found is None or own is None:
        return []
    bugs, rubric = found
    required: list[str] = []
    frontier = [own]
    while frontier:
        current = frontier.pop(0)
        for item in rubric.items:
            if component(item.id) == current:
                for requirement in item.builds_on:
                    if requirement != own and requirement not in required:
                        required.append(requirement)
                        frontier.append(requirement)
    groups = [[b for b in bugs if component(b.item) == own], [b for b in bugs if component(b.item) in required]]
    if dtype is not None and dtype != torch.float32:
        groups.insert(0, [b for b in bugs if component(b.item) == "dtype"])
    return [group for group in groups if group]


def diagnose_exception(item_id: str | None, message: str) -> str | None:
    """The description of a catalogued bug of the item's component that raises this error."""
    found = _catalogue()
    if not item_id or not message:
        return None
    if found is None:  # the handout: the shipped table of (component, error text, bug)
        offline = _shipped()
        matches = offline.raised(component(item_id), message) if offline is not None else []
    else:
        matches = [b.description for b in found[0] if b.raises and component(b.item) == component(item_id) and b.raises in message]
    return " — or equally — ".join(dict.fromkeys(matches)) or None


@functools.cache
def _shipped():
    """The handout's recorded bug outputs (lmgrade/core/offline_diagnoses.py), or None."""
    try:
        from lmgrade.core.oracle import SnapshotOracle

        return SnapshotOracle().offline
    except Exception:
        return None


class _Materialised:
    """Bug variants written out once per process and imported like a submission."""

    def __init__(self):
        self.root: Path | None = None
        self.bound: dict[str, Any] = {}

    def __call__(self, variant):
        if variant.name not in self.bound:
            import adapters

            from lmgrade.catalogue.variants import materialise

            if self.root is None:
                self.root = Path(tempfile.mkdtemp(prefix="lmgrade-diagnosis-"))
                atexit.register(shutil.rmtree, self.root, True)
            try:
                submission = materialise(variant, self.root)
                package = adapters.load_module_from_path(submission / "student")
                self.bound[variant.name] = adapters.Bound(adapters.PackageAdapters(package, description=variant.name))
            except Exception:  # a variant that cannot load explains nothing
                self.bound[variant.name] = None
        return self.bound[variant.name]


bound_variant = _Materialised()


def catalogued_bugs(fn: str, dtype: torch.dtype | None = None, own: str | None = None) -> Iterator[list[tuple[str, Any]]]:
    """[(description, bound adapters of the bug variant)] per candidate group (see candidate_groups),
    each group loaded only when the ones before it explained nothing."""
    for group in candidate_groups(fn, dtype, own):
        loaded = [(bug.description, bound) for bug in group if (bound := bound_variant(bug)) is not None]
        if loaded:
            yield loaded


def _values_of(bound, fn: str, args: dict, wrt: Sequence[str], cotangent_seed: int, dtype: torch.dtype) -> dict[str, Tensor] | None:
    """What a bug variant produces for the case (CPU, floating tensors in dtype); None if it crashes."""

    def convert(t: Tensor) -> Tensor:
        t = t.detach().to("cpu")
        return t.to(dtype) if t.is_floating_point() else t

    try:
        return outputs_and_grads(bound, fn, map_tensors(args, convert), wrt, cotangent_seed)
    except Mismatch as error:  # no gradient reaches some input: what it did produce still counts
        return error.outputs
    except Exception:
        return None


def _agrees(got: dict[str, Tensor], expected: dict[str, Tensor] | None, tol: Tolerance) -> bool:
    if not expected or set(got) != set(expected):
        return False
    try:
        return all(describe_difference(got[name], expected[name], tol) is None for name in expected)
    except Exception:
        return False


def _first_matches(oracle, fn: str, agrees: Callable[[Any], bool], dtype: torch.dtype | None = None,
                   own: str | None = None, groups=None) -> str | None:
    """The first group (live: catalogued_bugs; offline: `groups` of (description, recorded handle)) with a
    bug that agrees, its matching descriptions joined."""
    if not getattr(oracle, "diagnoses", False):  # no catalogue and nothing recorded: no diagnosis
        return None
    for group in (groups if groups is not None else catalogued_bugs(fn, dtype, own)):
        matches = [description for description, bound in group if agrees(bound)]
        if matches:
            return " — or equally — ".join(dict.fromkeys(matches))
    return None


def diagnose_outputs(
    oracle,
    fn: str,
    args: dict,
    got: dict[str, Tensor] | None,
    tol: Tolerance,
    wrt: Sequence[str] = (),
    cotangent_seed: int = 0,
    dtype: torch.dtype | None = None,
) -> str | None:
    """The description of the catalogued bug whose output (and gradients) `got` equals within tol.

    args: the case as float64 CPU tensors (as the reference sees it). got: {"output": …,
    "grad/<path>": …} from the implementation under test, possibly without the gradients that
    did not reach their input. Bugs that only show below float32 (no upcast) are also run in
    the 16-bit dtype of the test.
    """
    if not got or "output" not in got or not getattr(oracle, "diagnoses", False):
        return None
    # float64 first; then the test's own dtype, for bugs that show only there (an exp that overflows
    # float32 but not float64, a square that overflows float16).
    run_dtypes = [torch.float64] + ([dtype] if dtype is not None and dtype != torch.float64 else [])
    try:
        right = oracle.expected(fn, args, wrt, cotangent_seed)
    except Exception:
        return None
    offline, groups = getattr(oracle, "offline", None), None
    if offline is not None:  # the handout: the bugs' outputs recorded on this very case
        key = case_key(fn, args, wrt, cotangent_seed)
        groups = [[(offline.descriptions[int(i)], i) for i in group] for group in offline.output_groups(fn, dtype)]

    def agrees(bound) -> bool:
        for run_dtype in run_dtypes:
            values = (offline.outputs(key, run_dtype, bound, right) if offline is not None
                      else _values_of(bound, fn, args, wrt, cotangent_seed, run_dtype))
            # A bug explains the output only where it differs from the reference itself.
            if _agrees(got, values, tol) and not _agrees(values, right, tol):
                return True
        return False

    try:
        return _first_matches(oracle, fn, agrees, dtype, groups=groups)
    except Exception:
        return None


def diagnose_measurement(oracle, fn: str, measure: Callable[[Any], Any], got: Any, same: Callable[[Any, Any], bool],
                         own: str | None = None) -> str | None:
    """The description of the catalogued bug for which measure(bound adapters) is the same as `got`.

    For checks that are not an output comparison: a FLOP count, a perplexity, generated tokens.
    A bug that measures the same as the reference (`oracle.reference`) explains nothing.
    """

    offline = getattr(oracle, "offline", None)
    if offline is not None:  # the handout: what each bug measured at this site, recorded at release
        def agrees_offline(encoded) -> bool:  # bugs that measure the same as the reference were left out
            try:
                return bool(same(got, offline.value(encoded)))
            except Exception:
                return False

        try:
            groups, values = offline.measured(site_key(fn, own, measure))
            return _first_matches(oracle, fn, agrees_offline, groups=[
                [(offline.descriptions[int(i)], values[i]) for i in group if i in values] for group in groups])
        except Exception:
            return None

    def agrees(bound) -> bool:
        try:
            return bool(same(got, measure(bound))) and not bool(same(right, measure(bound)))
        except Exception:
            return False

    for hook in MEASUREMENT_HOOKS:  # `lmgrade release` records every candidate's measurement here
        hook(oracle, fn, measure, same, own)
    try:
        right = measure(oracle.reference)
        return _first_matches(oracle, fn, agrees, own=own)
    except Exception:
        return None


# Called as hook(oracle, fn, measure, same, own) before a live measurement diagnosis (lmgrade/catalogue/recording.py).
MEASUREMENT_HOOKS: list = []


def explained(error: Mismatch, diagnose: Callable[[], str | None]) -> Mismatch:
    """error, set to name its likely cause (computed once, when its message is first shown)."""
    if getattr(error, "diagnose", None) is None and getattr(error, "_diagnosis", None) is None:
        error.diagnose = diagnose
    return error
