"""The two kinds of check every component file uses: against the reference, and properties.

float32 is the working dtype (SPEC §4.1): the implementation under test gets float32 weights
and inputs; the oracle is the reference in float64 on those very float32 values. A composite
(attention, block, LM, KV cache) passes when it equals the reference composite OR the
reference composition of the submission's own parts (SPEC §4.6): a wrong softmax is charged to
the softmax item, not to everything built on it.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from lmgrade.core.compare import Mismatch, Tolerance, assert_close, dependence_profile, describe_difference
from lmgrade.catalogue.diagnosis import diagnose_measurement, diagnose_outputs, explained
from lmgrade.core.layouts import apply as apply_layout
from lmgrade.core.layouts import broadcast_values
from lmgrade.core.evaluation import is_weight_path, outputs_and_grads
from lmgrade.core.no_dynamo import flop_counter_mode
from lmgrade.core.outcomes import ForbiddenCall, GradingTimeout, NotImplementedInSubmission, SubmissionBroken, SubmissionCrashed

from .tolerances import EXACT64, property_tolerance, tolerance

F32 = torch.float32
CPU = torch.device("cpu")

# Raised by a part the submission has not written (or may not call): then there is no
# composition of its own parts to compare with, and only the reference decides.
NO_RESULT = (Exception, NotImplementedInSubmission, ForbiddenCall, SubmissionCrashed, SubmissionBroken)


def _map_paths(args, fn, path: str = ""):
    if isinstance(args, Tensor):
        return fn(path, args)
    if isinstance(args, dict):
        return {key: _map_paths(value, fn, f"{path}/{key}" if path else key) for key, value in args.items()}
    if isinstance(args, (list, tuple)):
        return type(args)(_map_paths(value, fn, path) for value in args)
    return args


def on(args: dict, dtype: torch.dtype = F32, device: torch.device = CPU, layout: str = "contiguous") -> dict:
    """args with floating tensors in dtype, everything on device, laid out as `layout`.

    Weights never get the "expanded" layout (their rows must differ to tell a transposed weight);
    they get "sliced" instead.
    """

    def convert(path: str, t: Tensor) -> Tensor:
        t = t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype)
        if layout == "expanded" and is_weight_path(path):
            return apply_layout(t, "sliced")
        if layout == "expanded":
            t = broadcast_values(t)
        return apply_layout(t, layout) if layout != "contiguous" else t

    return _map_paths(args, convert)


def ground_truth(args: dict, dtype: torch.dtype = F32, layout: str = "contiguous") -> dict:
    """The values the implementation will see, as float64 CPU tensors (what the reference gets)."""

    def convert(path: str, t: Tensor) -> Tensor:
        t = t.detach().to("cpu")
        if layout == "expanded" and not is_weight_path(path):
            t = broadcast_values(t)
        return t.to(dtype).to(torch.float64) if t.is_floating_point() else t

    return _map_paths(args, convert)


class _Composed:
    """A bound-like object whose `fn` is the reference composition of the submission's own parts."""

    def __init__(self, impl, fn: str, composition: Callable):
        self.impl, self.fn, self.composition = impl, fn, composition

    def __getattr__(self, name: str):
        if name != self.fn:
            raise AttributeError(name)
        return lambda **kwargs: self.composition(self.impl, **kwargs)


def _agree(got: dict, expected: dict, tol: Tolerance) -> bool:
    return all(name in got and describe_difference(got[name], value, tol) is None for name, value in expected.items())


def own_composition_agrees(impl, fn: str, composition: Callable, impl_args: dict, got: dict, tol: Tolerance,
                           wrt: Sequence[str] = (), cotangent_seed: int = 0) -> bool:
    """Does `got` (outputs and gradients of the composite) equal the composition of the submission's own parts?

    Both sides may lack a gradient (a part that detaches its weight): then they agree only if
    they lack the same ones and agree on the rest."""
    try:
        own = outputs_and_grads(_Composed(impl, fn, composition), fn, impl_args, wrt, cotangent_seed)
    except Mismatch as partial:  # a gradient that does not reach its input: what was produced still counts
        own = partial.outputs
    except NO_RESULT:
        return False
    if not own or "output" not in own or set(own) != set(got):
        return False
    return _agree(got, own, tol)


def call_or_own_parts(impl, fn: str, composition: Callable | None, **kwargs):
    """Call a composite; if it crashes, and the composition of its own parts crashes with the same kind
    of error on the same inputs, return None: the part that crashes pays in its own item."""
    try:
        return getattr(impl, fn)(**kwargs)
    except Exception as crash:
        if composition is None:
            raise
        try:
            composition(impl, **kwargs)
        except type(crash):
            return None
        except NO_RESULT:
            pass
        raise crash


def check_against_reference(
    impl,
    oracle,
    fn: str,
    args: dict,
    *,
    component: str,
    device: torch.device = CPU,
    dtype: torch.dtype = F32,
    wrt: Sequence[str] = (),
    layout: str = "contiguous",
    cotangent_seed: int = 0,
    tol: Tolerance | None = None,
    composition: Callable | Sequence[Callable] | None = None,
) -> None:
    """Output (and gradients w.r.t. each path in wrt) of impl equal the float64 reference's.

    args: float64 CPU tensors (a description of the case). The implementation under test sees
    them in `dtype` on `device` laid out as `layout`; the reference sees the same values in
    float64. composition(impl, **args): the reference composition of the submission's own parts,
    for a composite; the composite passes if it equals either. A mismatch names the common bug
    it matches, if any.
    """
    tol = tol or tolerance(component, dtype, device)
    truth = ground_truth(args, dtype, layout)
    impl_args = on(truth, dtype, device, layout)
    got = None
    try:
        # The implementation first: if it is missing or crashes, no reference time is spent.
        try:
            got = outputs_and_grads(impl, fn, impl_args, wrt, cotangent_seed)
        except Mismatch as missing_gradient:
            got = missing_gradient.outputs
            raise
        except Exception:
            if composition is not None and any(call_or_own_parts(impl, fn, c, **impl_args) is None for c in
                                               ((composition,) if callable(composition) else composition)):
                return  # it crashes where its own parts crash: charged to the part
            raise
        output = got["output"]
        if output.dtype != dtype:
            raise Mismatch(f"{fn}: output dtype is {output.dtype} for {dtype} inputs; it must follow the input dtype")
        if output.device.type != device.type:
            raise Mismatch(f"{fn}: output is on {output.device} for inputs on {device}")
        expected = oracle.expected(fn, truth, wrt, cotangent_seed)
        for name, value in expected.items():
            if name not in got and is_weight_path(name):
                continue  # the adapter copied the weights into its module: no gradient to compare
            what = f"{fn} {'output' if name == 'output' else 'gradient w.r.t. ' + name[5:]} vs the reference"
            assert_close(got[name], value, tol, what)
    except Mismatch as error:
        compositions = (composition,) if callable(composition) else tuple(composition or ())
        if got is not None and any(own_composition_agrees(impl, fn, c, impl_args, got, tol, wrt, cotangent_seed)
                                   for c in compositions):
            return  # right composition of the submission's own parts: a part's mistake is charged in its own item
        produced = got if got is not None else error.outputs
        if composition is not None and got is not None:
            error.args = (f"{error.args[0]}\n(it also differs from the composition of your own parts through your own "
                          f"adapters, so the mistake is in {fn} itself, not in a part it calls)",)
        explained(error, lambda: diagnose_outputs(oracle, fn, truth, produced, tol, wrt, cotangent_seed, dtype))
        # Attention: which keys (SDPA: rows of V) or tokens (MHA: rows of in_features) each query's
        # output depends on, the submission's against the reference's (queries × keys): a mask bug
        # draws its triangle. Only for a failure that stands, and where the reference is at hand.
        reference = getattr(oracle, "reference", None)
        path = "V" if "V" in truth else "in_features"
        if "attention" in fn and got is not None and reference is not None and isinstance(truth.get(path), Tensor):
            for profile in error.profiles:
                if profile.get("title", "").startswith(f"{fn} output") and len(profile["axes"]) == 2:
                    profile["axes"] = ["query", "d"]

            def perturbed(j):
                if j is None:
                    return truth
                rows = truth[path].clone()
                rows[..., j, :] += 1.0
                return {**truth, path: rows}

            try:
                with torch.no_grad():
                    dependence = dependence_profile(
                        lambda j: getattr(impl, fn)(**on(perturbed(j), dtype, device, layout)),
                        lambda j: getattr(reference, fn)(**perturbed(j)),
                        (truth["Q"] if path == "V" else truth[path]).shape[-2], truth[path].shape[-2],
                        f"{fn}: which {'keys' if path == 'V' else 'tokens'} each query uses, yours vs the reference",
                        "query", "key" if path == "V" else "token")
            except (*NO_RESULT, GradingTimeout):  # the probe only draws a picture; the mismatch stands either way
                dependence = None
            if dependence is not None:
                error.profiles.append(dependence)
        raise


def assert_unchanged(got: Tensor, expected: Tensor, what: str, tol: Tolerance | None = None, component: str | None = None) -> None:
    """A reference-free property: float32 results to the component's row, float64 ones to float64 precision."""
    if tol is None:
        tol = property_tolerance(component) if component else EXACT64
    assert_close(got, expected, tol, what)


def property_or_own_parts(check: Callable[[], None], impl, fn: str, composition: Callable | Sequence[Callable],
                          calls: Sequence[dict], component: str) -> None:
    """Run a property check of a composite; if it fails, excuse it when, on every call it made, the
    composite equals the composition of the submission's own parts (then a part is at fault, and
    that part's own item pays for it)."""
    compositions = (composition,) if callable(composition) else tuple(composition)
    try:
        check()
    except AssertionError as failure:  # a Mismatch, or a property's own assert
        tol = property_tolerance(component)
        for kwargs in calls:
            try:
                got = {"output": getattr(impl, fn)(**kwargs).detach()}
                explained_by_parts = any(own_composition_agrees(impl, fn, c, kwargs, got, tol) for c in compositions)
            except NO_RESULT:
                explained_by_parts = False
            if not explained_by_parts:
                raise failure from None
    except Exception:
        # A crash: excused where the composition of its own parts crashes the same way on one of the calls.
        if not any(call_or_own_parts(impl, fn, c, **kwargs) is None for kwargs in calls for c in compositions):
            raise


def raise_unless_own_parts_crash(error: Exception, impl, fn: str, composition, **kwargs) -> bool:
    """For a crash met outside a comparison (a FLOP count): True when the composition of the
    submission's own parts crashes the same way (a part pays for it), else re-raise it."""
    compositions = (composition,) if callable(composition) else tuple(composition)
    for c in compositions:
        try:
            c(impl, **kwargs)
        except type(error):
            return True
        except NO_RESULT:
            pass
    raise error


def count_flops(bound, fn: str, **kwargs) -> tuple[int, Exception | None]:
    """FLOPs of one adapter call and the exception it raised, if any.

    The implementation under test counts where it runs (in a child process when isolated);
    any other bound (the reference, a catalogued bug) is counted here.
    """
    if hasattr(bound, "count_flops"):
        return bound.count_flops(fn, **kwargs)
    with flop_counter_mode() as counter:
        try:
            getattr(bound, fn)(**kwargs)
        except Exception as error:  # noqa: BLE001 - the caller decides what the error means
            return counter.get_total_flops(), error
    return counter.get_total_flops(), None


def same_values(got: Any, expected: Any, tol: Tolerance | None) -> bool:
    """Nested tensors, lists, dicts and numbers equal: within tol (as assert_close judges), or exactly if None."""
    if isinstance(expected, Tensor):
        if not isinstance(got, Tensor) or got.shape != expected.shape:
            return False
        if tol is None or not expected.is_floating_point():
            # As int64: torch.equal is not implemented for every dtype (uint16, the dtype of token files).
            return got.dtype == expected.dtype and torch.equal(
                got.cpu().to(torch.float64 if got.is_floating_point() else torch.int64),
                expected.cpu().to(torch.float64 if expected.is_floating_point() else torch.int64))
        got, expected = got.double().cpu(), expected.double().cpu()
        scale = float(expected.abs().max()) if expected.numel() else 0.0
        return bool(((got - expected).abs() <= tol.atol * max(scale, 1e-30) + tol.rtol * expected.abs()).all())
    if isinstance(expected, dict):
        return isinstance(got, dict) and got.keys() == expected.keys() and all(
            same_values(got[k], expected[k], tol) for k in expected)
    if isinstance(expected, (list, tuple)):
        return isinstance(got, (list, tuple)) and len(got) == len(expected) and all(
            same_values(g, e, tol) for g, e in zip(got, expected))
    if isinstance(expected, float) and isinstance(got, (int, float)) and tol is not None:
        return abs(got - expected) <= tol.atol * max(abs(expected), 1e-30) + tol.rtol * abs(expected)
    return got == expected


@contextlib.contextmanager
def diagnosed(oracle, fn: str, kwargs: dict, got: Any, tol: Tolerance | None = None, measure: Callable | None = None,
              component: str | None = None):
    """A failure inside the block, about `got` (what impl.fn(**kwargs) returned, or `measure(impl)`), is
    explained by the catalogued bug that gives the same (within tol; exactly if None) on the same call:
    a bug of `component` first (default: fn's own part), then of the parts it builds on.

    For the checks that are not a comparison with the reference (properties, comparisons with torch):
    the diagnosis then works as check_against_reference's does.
    """
    try:
        yield
    except AssertionError as error:
        mismatch = error if isinstance(error, Mismatch) else Mismatch(str(error))
        how = measure or (lambda bound: getattr(bound, fn)(**kwargs))
        raise explained(mismatch, lambda: diagnose_measurement(oracle, fn, how, got, lambda a, b: same_values(a, b, tol),
                                                               own=component)) from None


def peak_memory(bound, fn: str, **kwargs) -> tuple[int, Exception | None]:
    """How far one adapter call raised the peak resident memory where the implementation runs
    (bytes, the kernel's VmHWM read from outside that process when isolated), and its error if any."""
    if hasattr(bound, "peak_memory"):
        return bound.peak_memory(fn, **kwargs)
    from lmgrade.sandbox.processes import peak_growth_here

    return peak_growth_here(lambda: getattr(bound, fn)(**kwargs))


def own_lm_crashes_like(impl, crash: Exception, model: str = "llama") -> bool:
    """Does the submission's own LM (`model`: "llama" or "gpt2"), on a small standard case, raise the same
    kind of error, or give NaN/Inf logits (from which no generation or perplexity can be right)?"""
    from .strategies import GPT2_CONFIGS, LM_CONFIGS, gpt2_weights, lm_weights, randint

    config, weights, fn = ((LM_CONFIGS[0], lm_weights, "run_transformer_lm") if model == "llama"
                           else (GPT2_CONFIGS[0], gpt2_weights, "run_gpt2_lm"))
    # GPT-2 at its full context: a position table read past its end shows only there.
    seq = 5 if model == "llama" else config.context_length
    args = on(dict(**config.args(), weights=weights(config, 0), in_indices=randint(config.vocab_size, (2, seq), 1)))
    try:
        logits = getattr(impl, fn)(**args)
    except type(crash):
        return True
    except NO_RESULT:
        return False
    return not bool(torch.isfinite(logits).all())


def excuse_crashes_of_the_own_lm(namespace: dict, model: str = "llama") -> None:
    """Wrap every test_* function of a module built on the LM (generation, perplexity): a crash is not
    charged there when the submission's own LM crashes the same way (the LM's items pay for it)."""
    for name, test in list(namespace.items()):
        if name.startswith("test_") and callable(test):
            namespace[name] = _excused(test, model)


def _excused(test, model: str):
    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        try:
            return test(*args, **kwargs)
        except Exception as crash:
            impl = kwargs.get("impl")
            if impl is not None and own_lm_crashes_like(impl, crash, model):
                return None
            raise

    return wrapper
