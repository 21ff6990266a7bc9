"""Grade a folder of submissions into one CSV gradebook: `lmgrade grade-all DIR --jobs N --csv PATH`.

Every immediate subfolder of DIR that holds a `student/` package (or an `adapters.py` file,
CS336 style) is one submission, named after the subfolder. Submissions are graded in
parallel, each in its own child pytest process (`lmgrade.grading.grade.grade`); one that cannot be
graded becomes an error row and never stops the others.

CSV columns: submission, score, max_score, status, seconds, then one column per rubric item.
Next to the CSV, `<csv stem>_results/<submission>/` receives each submission's Gradescope
`results.json` and Markdown `report.md` (or `error.txt` when it could not be graded).

Instructor-only: this module is not part of the student handout.
"""

from __future__ import annotations

import csv
import json
import time
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from lmgrade.grading.grade import Grade, GradingFailed, Selection, grade, grade_notes
from lmgrade.outputs.report import gradescope_results, markdown_report
from lmgrade.core.rubric import load_rubric

FIXED_COLUMNS = ["submission", "score", "max_score", "status", "seconds"]
GRADED, ERROR = "graded", "error"


@dataclass
class Row:
    submission: str
    score: float | None
    max_score: float
    status: str
    seconds: float
    items: dict[str, float] = field(default_factory=dict)

    def as_csv(self, item_ids: list[str]) -> list[str]:
        def number(x: float | None) -> str:
            return "" if x is None else f"{x:.4g}"

        return [self.submission, number(self.score), f"{self.max_score:g}", self.status, f"{self.seconds:.1f}",
                *[number(self.items.get(i)) for i in item_ids]]


def find_submissions(directory: Path) -> list[tuple[str, Selection]]:
    """(name, selection) for every immediate subfolder that holds student/ or adapters.py, sorted by name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a folder")
    found = []
    for sub in sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (sub / "student").is_dir():
            found.append((sub.name, Selection(impl=None, submission=str(sub))))
        elif (sub / "adapters.py").is_file():
            found.append((sub.name, Selection(impl=None, adapters=str(sub / "adapters.py"))))
    return found


def _grade_one(name: str, selection: Selection, out_dir: Path, max_score: float, grade_kwargs: dict) -> Row:
    start = time.perf_counter()
    folder = out_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    try:
        result: Grade = grade(selection, **grade_kwargs)
    except Exception as error:  # the grader failed on this one: record it, go on with the others
        seconds = time.perf_counter() - start
        kind = "grader failed" if isinstance(error, GradingFailed) else f"grader crashed ({type(error).__name__})"
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        (folder / "error.txt").write_text(f"{kind}: {error}\n\n{traceback.format_exc()}")
        return Row(name, None, max_score, f"{ERROR}: {kind}: {message[:200]}", seconds)
    status = GRADED if result.pytest_exit_code in (0, 1) else f"{GRADED} (pytest exit {result.pytest_exit_code})"
    notes = grade_notes(result)
    (folder / "results.json").write_text(json.dumps(gradescope_results(result.scores, result.seconds, output=notes), indent=2))
    (folder / "report.md").write_text(markdown_report(result.scores, f"Grade of {name}", notes=notes.splitlines()))
    return Row(name, round(result.score, 4), max_score, status, result.seconds,
               {s.item.id: round(s.score, 4) for s in result.scores})


def grade_all(
    directory: Path,
    csv_path: Path,
    jobs: int = 2,
    profile: str = "grading",
    per_test_timeout: float = 120.0,
    tests: list[str] | None = None,
    isolate: bool = True,
    time_budget: float | None = None,
    sandbox_request: str | None = None,
) -> list[Row]:
    """Grade every submission folder in directory; write the CSV (rows in submission order); return the rows.

    `tests`: only these test files or node ids (e.g. to re-grade one component); items whose
    tests did not run score 0, as always. `isolate`: run each submission in its own sandboxed
    child process (the default; turn off only for trusted code).
    """
    rubric = load_rubric()
    item_ids = [item.id for item in rubric.items]
    submissions = find_submissions(directory)
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    out_dir = csv_path.parent / f"{csv_path.stem}_results"
    grade_kwargs = dict(profile=profile, per_test_timeout=per_test_timeout, tests=tests, time_budget=time_budget,
                        sandbox_request=sandbox_request)
    if not isolate:
        grade_kwargs["isolate"] = False
    print(f"grading {len(submissions)} submissions from {directory} with {max(1, jobs)} jobs")

    rows: dict[str, Row] = {}
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(_grade_one, name, selection, out_dir, rubric.total, grade_kwargs): name
                   for name, selection in submissions}
        for done, future in enumerate(as_completed(futures), start=1):
            name = futures[future]
            try:
                row = future.result()
            except BaseException as error:  # even the bookkeeping failed: still one row, and go on
                row = Row(name, None, rubric.total, f"{ERROR}: {type(error).__name__}: {error}"[:250], 0.0)
            rows[name] = row
            score = "—" if row.score is None else f"{row.score:.2f}"
            print(f"[{done}/{len(submissions)}] {name}: {score} / {row.max_score:g}  {row.status}  ({row.seconds:.0f} s)",
                  flush=True)

    ordered = [rows[name] for name, _ in submissions]
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(FIXED_COLUMNS + item_ids)
        for row in ordered:
            writer.writerow(row.as_csv(item_ids))
    errors = sum(1 for r in ordered if r.status.startswith(ERROR))
    print(f"gradebook written to {csv_path} ({len(ordered)} rows, {errors} errors) in {time.perf_counter() - start:.0f} s; "
          f"per-submission results in {out_dir}")
    return ordered
