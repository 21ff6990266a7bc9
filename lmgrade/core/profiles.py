"""Hypothesis profiles, registered explicitly (CI=true would otherwise pick Hypothesis' own `ci`).

- fast (default): few examples, derandomized so that a run is repeatable and the suite quick.
- grading: derandomized and database-free, so the same submission always gets the same score.
- thorough: many random examples, for instructors hunting for a counterexample.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture], print_blob=False)

PROFILES = {
    "fast": dict(max_examples=6, derandomize=True, database=None, **_common),
    "grading": dict(max_examples=12, derandomize=True, database=None, **_common),
    "thorough": dict(max_examples=150, **_common),
}
DEFAULT_PROFILE = "fast"


def register_profiles() -> None:
    for name, options in PROFILES.items():
        settings.register_profile(name, **options)
    # CI=true makes Hypothesis load a profile called "ci" on import: make it ours.
    settings.register_profile("ci", **PROFILES[DEFAULT_PROFILE])
