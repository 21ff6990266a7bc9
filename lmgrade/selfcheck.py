"""Grade variants of the reference in child pytest processes and report what the suite caught."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from .variants import Variant, materialise

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = PROJECT_ROOT / "tests"


def test_files(item: str) -> list[Path]:
    """The visible and hidden test files of one component item."""
    files = [TESTS_DIR / f"test_{item}.py", TESTS_DIR / "hidden" / f"test_{item}.py"]
    found = [f for f in files if f.exists()]
    if not found:
        raise FileNotFoundError(f"no test file for item {item!r} under {TESTS_DIR}")
    return found


@dataclass
class Outcome:
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # collection errors and crashes
    log: str = ""


def run_pytest(args: list[str], junit: Path, stop_at_first_failure: bool = False) -> Outcome:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *args]
    if stop_at_first_failure:
        command.append("-x")
    env = dict(os.environ, LMGRADE_PROFILE=os.environ.get("LMGRADE_PROFILE", "grading"))
    proc = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, env=env)
    outcome = Outcome(log=proc.stdout[-4000:] + proc.stderr[-2000:])
    if not junit.exists():
        outcome.errors.append(f"pytest exited {proc.returncode} without a report")
        return outcome
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        if case.find("error") is not None:
            outcome.errors.append(name)
        elif case.find("failure") is not None:
            outcome.failed.append(name)
        elif case.find("skipped") is None:
            outcome.passed.append(name)
    return outcome


def grade_variant(variant: Variant, workdir: Path) -> Outcome:
    submission = materialise(variant, workdir)
    files = [str(f) for item in variant.items_to_run for f in test_files(item)]
    junit = workdir / f"{variant.name}.xml"
    return run_pytest([f"--submission={submission}", *files], junit, stop_at_first_failure=variant.is_bug)
