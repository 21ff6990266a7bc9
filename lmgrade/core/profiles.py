"""Hypothesis profiles, registered explicitly (CI=true would otherwise pick Hypothesis' own `ci`).

- fast (default): few examples, derandomized so that a run is repeatable and the suite quick.
- grading: derandomized and database-free, so the same submission always gets the same score.
- thorough: many random examples, for instructors hunting for a counterexample.

None of them runs Hypothesis' `explain` phase: its "these lines were always and only run by
failing test cases" names lines of the grader (lmgrade/core/compare.py), not of the submission.
"""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings

# Every phase but Phase.explain, listed explicitly (see the docstring).
PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink)

_common = dict(deadline=None, phases=PHASES, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture], print_blob=False)

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
