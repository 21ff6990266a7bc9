"""The adapter functions as the tests call them, for the rubric item that is running."""

from __future__ import annotations

from collections.abc import Callable

from torch.utils.flop_counter import FlopCounterMode

from lmgrade.core.outcomes import ForbiddenCall, NotImplementedInSubmission
from lmgrade.sandbox.forbidden import ForbiddenCallDetector
from lmgrade.sandbox.policy import forbidden_for
from lmgrade.sandbox.processes import peak_growth_here


class GradedCalls:
    """The bound adapters as the tests see them.

    NotImplementedError becomes an outcome Hypothesis will not shrink, and forbidden torch
    calls are detected (in this process, or in the child when isolated).
    """

    def __init__(self, bound, isolated: bool, current_item: Callable[[], str | None]):
        self._bound, self._isolated, self._current_item = bound, isolated, current_item

    def count_flops(self, name: str, **kwargs) -> tuple[int, Exception | None]:
        """FLOPs (torch.utils.flop_counter) of one adapter call where the submission runs, and its error if any."""
        if not self._isolated:
            with FlopCounterMode(display=False) as counter:
                try:
                    getattr(self, name)(**kwargs)
                except Exception as error:  # noqa: BLE001 - the caller decides what the error means
                    return counter.get_total_flops(), error
            return counter.get_total_flops(), None
        backend = self._bound.backend
        backend.count_flops, backend.last_flops = True, 0
        try:
            getattr(self, name)(**kwargs)
            return backend.last_flops, None
        except Exception as error:  # noqa: BLE001
            return backend.last_flops, error
        finally:
            backend.count_flops = False

    def peak_memory(self, name: str, **kwargs) -> tuple[int, Exception | None]:
        """How far one adapter call raised the peak resident memory of the process the submission
        runs in (bytes, read from /proc by this process), and its error if any."""
        if not self._isolated:
            return peak_growth_here(lambda: getattr(self, name)(**kwargs))
        backend = self._bound.backend
        backend.measure_peak, backend.last_peak_growth = True, 0
        try:
            getattr(self, name)(**kwargs)
            return backend.last_peak_growth, None
        except Exception as error:  # noqa: BLE001
            return backend.last_peak_growth, error
        finally:
            backend.measure_peak = False

    def __getattr__(self, name: str):
        function = getattr(self._bound, name)
        item = self._current_item()

        def call(*args, **kwargs):
            if self._isolated:
                self._bound.backend.current_item = item
                try:
                    return function(*args, **kwargs)
                except NotImplementedError as error:
                    raise NotImplementedInSubmission(str(error)) from None
            detector = ForbiddenCallDetector(forbidden_for(item))
            try:
                with detector:
                    result = function(*args, **kwargs)
            except NotImplementedError as error:
                raise NotImplementedInSubmission(str(error) or f"{name} raises NotImplementedError") from None
            violation = detector.report(item)
            if violation:
                raise ForbiddenCall(violation)
            return result

        return call
