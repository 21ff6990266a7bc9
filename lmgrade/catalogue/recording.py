"""Record what the catalogued bugs produce on the visible tests, for the handout's offline diagnosis.

A pytest plugin (`-p lmgrade.catalogue.recording`), active where LMGRADE_RECORD_DIAGNOSES names
the file to write (lmgrade/outputs/handout/snapshots.py runs it):

- with the recording oracle (LMGRADE_RECORD_SNAPSHOTS, the reference as the submission), every
  case the visible tests ask the reference is also run through every candidate bug of its
  function's own component (and the dtype bugs), as `diagnose_outputs` would (float64, and float32,
  float16, bfloat16 where the inputs are values of that dtype), and each bug's outputs that differ
  from the reference's are kept;
- with a bug variant as the submission, every `diagnose_measurement` its failures reach records
  what every candidate bug measures at that site (keyed by `site_key`).

Only values and the bugs' descriptions are written, never code. Instructor-only.
"""

from __future__ import annotations

import atexit
import os
from pathlib import Path

import torch

from lmgrade.catalogue import diagnosis
from lmgrade.catalogue.diagnosis import bound_variant, candidate_groups, component, _values_of
from lmgrade.core import oracle as oracle_module
from lmgrade.core.compare import Tolerance, describe_difference
from lmgrade.core.evaluation import map_tensors
from lmgrade.core.offline_diagnoses import BugData, encode, site_key
from lmgrade.core.parts import COMPONENT_OF

# Closer than this to the reference, a bug explains nothing under any tolerance of the suite (≥ 1e-12).
SAME_AS_REFERENCE = Tolerance(rtol=1e-13, atol=1e-13)
# A float32 run this close to the float64 run adds nothing under a float32 row (rtol ≥ 1e-5 where there is
# arithmetic; embedding's 1e-6 row is a lookup, whose float32 run is exact).
SAME_AS_FLOAT64 = Tolerance(rtol=1e-6, atol=1e-6)

_data = BugData()
_sites: set[str] = set()


def _close(values: dict | None, base: dict | None, tol: Tolerance) -> bool:
    if values is None or base is None or set(values) != set(base):
        return values is None and base is None
    try:
        return all(describe_difference(values[n], base[n], tol) is None for n in base)
    except Exception:
        return False


def _values_in(args, dtype: torch.dtype) -> bool:
    """Whether every floating input is a value of dtype (the test ran in dtype, or could have)."""
    floats = []
    map_tensors(args, lambda t: floats.append(t) if t.is_floating_point() else None)
    return bool(floats) and all(torch.equal(t.to(dtype).to(t.dtype), t) for t in floats)


def _kept(values: dict, right: dict, as_float32: bool) -> dict[str, str]:
    named = {}
    for name, t in values.items():
        if name in right and describe_difference(t, right[name], SAME_AS_REFERENCE) is None:
            named[name] = "="
        else:
            named[name] = _data.tensors.intern(t.to(torch.float32) if as_float32 and t.dtype == torch.float64 else t)
    return named


def record_outputs(oracle, fn: str, args: dict, wrt, cotangent_seed: int, right: dict) -> None:
    try:
        groups = candidate_groups(fn)
        _data.sections["groups"][fn] = [[_data.bug(b.description) for b in group] for group in groups]
        dtype_group = candidate_groups(fn, torch.float16)
        dtype_group = dtype_group[0] if len(dtype_group) > len(groups) else []
        _data.sections["dtype_group"] = [_data.bug(b.description) for b in dtype_group]
        key = oracle_module.case_key(fn, args, wrt, cotangent_seed)
        own = COMPONENT_OF.get(fn)
        as_float32 = _values_in(args, torch.float32)
        low = [d for d in (torch.float32, torch.float16, torch.bfloat16) if _values_in(args, d)]
        runs = _data.sections["outputs"].setdefault(key, {})
        # Only the bugs of fn's own component (and dtype's) are run: a composite that uses a wrong part passes
        # as the composition of its own parts (the part's item pays, and its own tests name the bug), so the
        # parts' bugs almost never name a composite's failure; recording them would take ~5x the time and space.
        own_bugs = [b for b in [*dtype_group, *(groups[0] if groups else [])] if component(b.item) in (own, "dtype")]
        for bug in own_bugs:
            bound = bound_variant(bug)
            if bound is None:
                continue
            v64 = _values_of(bound, fn, args, wrt, cotangent_seed, torch.float64)
            differs = v64 is not None and not _close(v64, right, SAME_AS_REFERENCE)
            if differs:
                runs.setdefault("float64", {})[_data.bug(bug.description)] = _kept(v64, right, as_float32)
            for run in low:  # the test's own dtype: float32, or 16-bit (the dtype item)
                low_values = _values_of(bound, fn, args, wrt, cotangent_seed, run)
                if low_values is not None and not _close(low_values, v64 if differs else right, SAME_AS_FLOAT64):
                    runs.setdefault(str(run).removeprefix("torch."), {})[_data.bug(bug.description)] = \
                        _kept(low_values, right, False)
    except Exception as error:  # recording must never change what the run finds
        print(f"lmgrade recording: the bug outputs of a {fn} case were not recorded: {type(error).__name__}: {error}")


def record_measurement(oracle, fn: str, measure, same, own: str | None) -> None:
    try:
        key = site_key(fn, own, measure)
        if key in _sites:
            return
        _sites.add(key)
        right = measure(oracle.reference)
        groups, values = [], {}
        for group in candidate_groups(fn, own=own):
            groups.append([_data.bug(b.description) for b in group])
            for bug in group:
                bound = bound_variant(bug)
                try:
                    value = measure(bound)
                    if bound is None or bool(same(right, value)):
                        continue
                    values[_data.bug(bug.description)] = encode(value, _data.tensors)
                except Exception:  # it crashes, or what it measures cannot be written: it explains nothing offline
                    continue
        _data.sections["measurements"][key] = {"groups": groups, "values": values}
    except Exception as error:
        print(f"lmgrade recording: a {fn} measurement was not recorded: {type(error).__name__}: {error}")


def _record_raises() -> None:
    from lmgrade.catalogue.bugs import BUGS

    _data.sections["raises"] = sorted([component(b.item), b.raises, _data.bug(b.description)] for b in BUGS if b.raises)


def _flush(path: Path) -> None:
    _record_raises()
    _data.save(path)


_target = os.environ.get("LMGRADE_RECORD_DIAGNOSES")
if _target:
    oracle_module.RECORD_HOOKS.append(record_outputs)
    diagnosis.MEASUREMENT_HOOKS.append(record_measurement)
    atexit.register(_flush, Path(_target))
