"""Grade one submission: run the suite in a child pytest process, score it against the rubric.

The child runs the tests; this process reads only the JSON outcome file and owns the score.
Every rubric item is scored, whatever ran: an item with no outcome scores 0 and says why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .rubric import Rubric, load_rubric, rubric_path
from .scoring import ItemScore, TestRecord, score_items

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Selection:
    impl: str | None = "student"
    adapters: str | None = None
    submission: str | None = None

    def pytest_args(self) -> list[str]:
        if self.adapters:
            return [f"--adapters={Path(self.adapters).resolve()}"]
        if self.submission:
            return [f"--submission={Path(self.submission).resolve()}"]
        return [f"--impl={self.impl}"]

    def describe(self) -> str:
        return self.adapters or self.submission or f"the bundled {self.impl} package"


@dataclass
class Grade:
    scores: list[ItemScore]
    rubric: Rubric
    seconds: float
    pytest_exit_code: int
    log: str

    @property
    def score(self) -> float:
        return sum(s.score for s in self.scores)


def _selectors(rubric: Rubric) -> list[str]:
    """The tests a rubric counts (file paths or file::test node ids), each once."""
    return list(dict.fromkeys(selector for item in rubric.items for selector in item.tests))


class GradingFailed(RuntimeError):
    """The grader itself could not run (not the submission's fault)."""


def grade(
    selection: Selection,
    profile: str = "grading",
    per_test_timeout: float = 120.0,
    tests: list[str] | None = None,
    extra_pytest_args: list[str] | None = None,
    isolate: bool = True,
    rubric: str | None = None,
) -> Grade:
    """rubric: a name ("default", "cs336") or a .toml path; the suite runs the tests it counts."""
    rubric_file = rubric_path(rubric)
    rubric = load_rubric(rubric_file)
    with tempfile.TemporaryDirectory(prefix="lmgrade-") as tmp:
        results_path = Path(tmp) / "outcomes.json"
        command = [
            sys.executable, "-m", "pytest", *(tests or _selectors(rubric)), "-q", "-p", "no:cacheprovider", "--no-scorecard",
            f"--lmgrade-json={results_path}", f"--per-test-timeout={per_test_timeout}", *selection.pytest_args(),
            f"--rubric={rubric_file}",
            *(["--isolate"] if isolate else []), *(extra_pytest_args or []),
        ]
        env = dict(os.environ, LMGRADE_PROFILE=profile, PYTHONDONTWRITEBYTECODE="1")
        start = time.perf_counter()
        proc = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - start
        log = proc.stdout + proc.stderr
        if proc.returncode in (3, 4) or (proc.returncode == 2 and not results_path.exists()):
            raise GradingFailed(f"pytest could not run the suite (exit {proc.returncode}):\n{log[-3000:]}")
        if results_path.exists():
            outcome = json.loads(results_path.read_text())
            records = [TestRecord(**r) for r in outcome["records"]]
            collection_errors = outcome["collection_errors"]
        else:  # the child died before writing its outcomes: nothing it ran counts
            records, collection_errors = [], {}
    return Grade(score_items(rubric, records, collection_errors), rubric, seconds, proc.returncode, log)
