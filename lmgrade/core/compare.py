"""Tensor comparison with messages a student can act on."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Tolerance:
    """|got − expected| ≤ atol · scale + rtol · |expected|, where scale = max |expected| (at least 1e-30).

    The absolute part is relative to the size of the whole tensor, so one tolerance serves
    inputs of any magnitude, and elements near zero are not judged by relative error alone.
    """

    rtol: float
    atol: float
    row: str = ""  # which row of the tolerance table, e.g. "rmsnorm, float32, cpu"
    reason: str = ""  # why the row is that wide


# Prefix of the diagnosis line in failure messages (and in the category of hidden items).
LIKELY_CAUSE = "likely cause: your output matches a known common bug: "


class Mismatch(AssertionError):
    """The output of the implementation under test disagrees with what was expected.

    `outputs`: what the implementation did produce, when it produced something (e.g. its
    output when no gradient reached an input). `diagnose`: set by lmgrade.catalogue.diagnosis, a
    callable naming the common bug the output matches; it runs once, when the message is
    first shown, and its answer is added to the message (and is `diagnosis`).
    """

    def __init__(self, *args, outputs=None, profiles=None):
        super().__init__(*args)
        self.outputs = outputs
        self.diagnose = None
        # Where the error is, for pictures (error_profile, dependence_profile): small JSON-able dicts.
        self.profiles: list[dict] = list(profiles or [])

    @property
    def diagnosis(self) -> str | None:
        if getattr(self, "diagnose", None) is not None:
            diagnose, self.diagnose = self.diagnose, None
            try:
                self._diagnosis = diagnose()
            except Exception:
                self._diagnosis = None
        return getattr(self, "_diagnosis", None)

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}\n{LIKELY_CAUSE}{self.diagnosis}" if self.diagnosis else text

    def __reduce__(self):  # across processes: the message, diagnosis included, and the pictures' data
        return (type(self), (str(self),), {"profiles": self.profiles})


def _fmt_index(flat_index: int, shape: torch.Size) -> tuple[int, ...]:
    return tuple(int(i) for i in torch.unravel_index(torch.tensor(flat_index), shape)) if len(shape) else ()


def describe_difference(got: Tensor, expected: Tensor, tol: Tolerance) -> str | None:
    """None when `got` is within tolerance of `expected`, else a human-readable report."""
    if got.shape != expected.shape:
        return f"shape mismatch: got {tuple(got.shape)}, expected {tuple(expected.shape)}"
    got64 = got.detach().to("cpu", torch.float64)
    exp64 = expected.detach().to("cpu", torch.float64)
    if got64.numel() == 0:
        return None
    nan_got, inf_got = int(got64.isnan().sum()), int(got64.isinf().sum())
    nan_exp = exp64.isnan()
    finite_exp = exp64[exp64.isfinite()]
    scale = float(finite_exp.abs().max()) if finite_exp.numel() else 0.0
    allowed = tol.atol * max(scale, 1e-30) + tol.rtol * exp64.abs()
    err = (got64 - exp64).abs()
    # NaN where the reference is NaN is agreement (e.g. cross-entropy with every target ignored).
    same_nan = got64.isnan() & nan_exp
    same_inf = got64.isinf() & exp64.isinf() & (got64.sign() == exp64.sign())
    bad = ~(same_nan | same_inf) & ~(err <= allowed)
    if not bool(bad.any()):
        return None
    badness = torch.where(bad, torch.nan_to_num(err / allowed.clamp_min(1e-300), nan=float("inf")), 0.0)
    worst = int(badness.flatten().argmax())
    index = _fmt_index(worst, got64.shape)
    g, e = got64.flatten()[worst].item(), exp64.flatten()[worst].item()
    finite = (err.isfinite()) & ~nan_exp
    max_abs = float(err[finite].max()) if finite.any() else float("nan")
    rel = err / exp64.abs().clamp_min(1e-300)
    max_rel = float(rel[finite].max()) if finite.any() else float("nan")
    times = float(badness.flatten()[worst])
    row = f" for {tol.row}" if tol.row else ""
    lines = [
        f"{int(bad.sum())} of {got64.numel()} elements differ (shape {tuple(got64.shape)}, dtype {got.dtype}, device {got.device.type})",
        f"worst element at index {list(index)}: got {g:.10g}, expected {e:.10g}: error {abs(g - e):.3g} = "
        + (f"{times:.3g} × the tolerance" if math.isfinite(times) else "not a finite number, against the tolerance")
        + f"{row} (rtol={tol.rtol:g}, atol={tol.atol:g} × max|expected|={scale:.3g})",
        f"max abs error {max_abs:.3g}, max rel error {max_rel:.3g}",
    ]
    if nan_got or inf_got:
        lines.append(f"your output has {nan_got} NaN and {inf_got} Inf values (expected {int(nan_exp.sum())} NaN)")
    hint = precision_hint(got.dtype, max_rel, nan_got + inf_got)
    if hint:
        lines.append(hint)
    return "\n".join(lines)


def precision_hint(dtype: torch.dtype, max_rel: float, non_finite: int) -> str | None:
    """A line naming lost precision when the size of the error is that of a lower precision's rounding."""
    if dtype == torch.float64 and 1e-9 < max_rel < 1e-4:
        return ("precision: these errors are the size of float32 rounding (~1e-7 relative) in a float64 result: "
                "something in your computation is float32 (a table or buffer made in float32, a .float() cast, "
                "a float32 constant tensor)")
    if dtype == torch.float32 and 1e-4 < max_rel < 3e-2 and not non_finite:
        return ("precision: these errors are the size of bfloat16/float16 rounding (~1e-3 relative) in a float32 "
                "result: is some intermediate computed in 16-bit?")
    if dtype in (torch.float16, torch.bfloat16) and non_finite:
        return ("precision: Inf/NaN in a 16-bit result: x² overflows float16 above ~256; compute sums of squares "
                "and exps in float32 and cast back")
    return None


def assert_close(got: Tensor, expected: Tensor, tol: Tolerance, what: str, axes: tuple[str, ...] | None = None) -> None:
    """axes: names of got's dimensions (e.g. ("batch", "query", "d")), for the error profile."""
    report = describe_difference(got, expected, tol)
    if report is not None:
        profiles = []
        try:
            profile = error_profile(got, expected, tol, what, axes)
            profiles = [profile] if profile else []
        except Exception:  # a picture is a help, never a reason for the check itself to fail otherwise
            pass
        raise Mismatch(f"{what}:\n{report}", profiles=profiles)


PROFILE_SIDE = 64  # an error profile has at most this many values along each of its (at most 2) axes


def _sig(x: float) -> float | None:
    """3 significant digits; None for NaN/Inf (JSON has no such numbers)."""
    return float(f"{x:.3g}") if math.isfinite(x) else None


def _pool(err: Tensor, dim: int) -> tuple[Tensor, int]:
    """Max over bins of `dim` so that it has at most PROFILE_SIDE entries; (pooled, bin width)."""
    n = err.shape[dim]
    width = -(-n // PROFILE_SIDE)
    if width == 1:
        return err, 1
    pad = width * -(-n // width) - n
    moved = err.movedim(dim, -1)
    moved = torch.nn.functional.pad(moved, (0, pad), value=0.0)
    return moved.reshape(*moved.shape[:-1], -1, width).amax(-1).movedim(-1, dim), width


def error_profile(got: Tensor, expected: Tensor, tol: Tolerance, what: str = "",
                  axes: tuple[str, ...] | None = None) -> dict | None:
    """Where |got − expected| is: the max error over all but the last two dims (one for 1-D
    tensors), each kept dim max-pooled to at most PROFILE_SIDE values. NaN/Inf errors count as
    infinite (stored as None). None when there is nothing to draw (a scalar, a shape mismatch)."""
    if got.shape != expected.shape or got.dim() == 0 or got.numel() == 0:
        return None
    got64 = got.detach().to("cpu", torch.float64)
    exp64 = expected.detach().to("cpu", torch.float64)
    agree = (got64.isnan() & exp64.isnan()) | (got64 == exp64)
    err = torch.where(agree, 0.0, torch.nan_to_num((got64 - exp64).abs(), nan=math.inf, posinf=math.inf))
    shape = tuple(got64.shape)
    names = list(axes) if axes and len(axes) == len(shape) else [f"dim {d}" for d in range(len(shape))]
    keep = [d for d in range(len(shape)) if shape[d] > 1][-2:] or [len(shape) - 1]  # a dim of size 1 is no axis
    reduced = [d for d in range(len(shape)) if d not in keep]
    if reduced:
        err = err.amax(dim=reduced)
    widths = []
    for i in range(err.dim()):
        err, width = _pool(err, i)
        widths.append(width)
    finite = torch.nan_to_num(err, posinf=0.0)
    scale = float(exp64[exp64.isfinite()].abs().max()) if exp64.isfinite().any() else 0.0
    values = [[_sig(v) for v in row] for row in err.tolist()] if err.dim() == 2 else [_sig(v) for v in err.tolist()]
    return {
        "kind": "map" if err.dim() == 2 else "line",
        "title": what,
        "values": values,
        "axes": [names[d] for d in keep],
        "sizes": [shape[d] for d in keep],
        "bins": widths,  # each value is the max over this many consecutive indices
        "reduced": f"max |got − expected| over {', '.join(names[d] for d in reduced if shape[d] > 1)} of shape {shape}"
        if any(shape[d] > 1 for d in reduced) else f"|got − expected|, shape {shape}",
        "threshold": _sig(tol.atol * max(scale, 1e-30)),  # the absolute part of the tolerance
        "max": _sig(float(finite.max())),
    }


def dependence_profile(run_impl, run_reference, n_queries: int, n_keys: int, what: str,
                       query_axis: str = "query", key_axis: str = "key") -> dict | None:
    """Which outputs depend on which inputs, the implementation's against the reference's.

    run_x(j): the output (..., queries, d) with input j (a key, a token) perturbed, j=None: unperturbed.
    The map, queries × keys: +1 where the implementation's query uses key j and the reference's
    does not (a mask that lets the future in), −1 the other way round, 0 where they agree.
    None when they agree everywhere (then the error is not in what each query attends to).
    """
    if not 0 < n_keys <= PROFILE_SIDE or not 0 < n_queries <= PROFILE_SIDE:
        return None

    def uses(run) -> Tensor:
        base = run(None).detach().to("cpu", torch.float64)
        changes = torch.stack([(run(j).detach().to("cpu", torch.float64) - base).abs()
                               .movedim(-2, 0).reshape(n_queries, -1).amax(-1) for j in range(n_keys)], dim=1)
        return changes > 1e-4 * float(changes.max()) if float(changes.max()) > 0 else changes > 0

    difference = uses(run_impl).to(torch.int8) - uses(run_reference).to(torch.int8)
    if not bool(difference.any()):
        return None
    return {
        "kind": "dependence",
        "title": what,
        "values": difference.tolist(),
        "axes": [query_axis, key_axis],
        "sizes": [n_queries, n_keys],
        "bins": [1, 1],
        "reduced": f"+1: your {query_axis} uses this {key_axis} and the reference's does not; "
                   f"−1: the reference's uses it and yours does not",
    }
