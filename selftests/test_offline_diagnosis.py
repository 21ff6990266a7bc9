"""The handout names a catalogued bug offline, as the instructor's grader does, from shipped data only.

`lmgrade release` records what every catalogued bug gives on the visible cases and at the
visible measurement sites (tests/data/bug_outputs.safetensors in the handout); the handout's
own pytest then diagnoses from that file. The fast tests here build a handout whose
measurements are recorded for a handful of bugs (about a minute), check that the file adds no
input and no code, and compare the handout's diagnoses with the grader's for those bugs.

The full measurement (every bug, every visible test of its item, about half an hour) is
`python -m selftests.test_offline_diagnosis OUT_DIR [--jobs N]`, or this file's last test with
LMGRADE_OFFLINE_FULL=OUT_DIR: it prints, per bug, whether the handout's diagnosis texts equal
the grader's, and the share that do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lmgrade.catalogue.bugs import BUGS
from selftests.conftest import HANDOUT_BUGS
from lmgrade.catalogue.record_runs import merge_reference_outputs, reference_outputs_of, run_bug, visible_tests
from lmgrade.catalogue.variants import materialise
from lmgrade.core.compare import LIKELY_CAUSE
from lmgrade.core.offline_diagnoses import BugData
from lmgrade.outputs.handout import (
    BUG_OUTPUTS_RELPATH,
    PROJECT_ROOT,
    SNAPSHOT_RELPATH,
    build_handout,
    check_handout,
    forbidden_reference_lines,
    scan_for_reference_code,
)

pytestmark = pytest.mark.xdist_group("handout")  # shares the session's handout with test_release.py

def fast_bugs() -> list:
    """The handful whose measurements the session's handout records (selftests/conftest.py: HANDOUT_BUGS)."""
    chosen = [b for b in BUGS if b.name in HANDOUT_BUGS]
    assert len(chosen) == len(HANDOUT_BUGS), f"renamed in the catalogue: {set(HANDOUT_BUGS) - {b.name for b in chosen}}"
    return chosen


# --- running and comparing --------------------------------------------------------------------------


def library_path() -> list[str]:
    root = PROJECT_ROOT.resolve()
    return [str(Path(e).resolve()) for e in sys.path if e and Path(e).exists() and Path(e).resolve() != root]


def handout_pytest(handout: Path, submission: Path, tests: list[str], outcomes: Path, timeout: float = 900) -> None:
    """The handout's own pytest (python -S: only the handout and the installed libraries) on a submission."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LMGRADE_"))}
    env.update(PYTHONPATH=os.pathsep.join([str(handout), *library_path()]), PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, "-S", "-m", "pytest", *tests, "-q", "-p", "no:cacheprovider", "--no-scorecard",
                    f"--submission={submission}", f"--lmgrade-json={outcomes}"],
                   cwd=handout, env=env, capture_output=True, text=True, timeout=timeout)


def causes(outcomes: Path) -> dict[str, str | None]:
    """nodeid -> the likely-cause line of each failed test (None: failed, no diagnosis)."""
    if not outcomes.exists():
        return {}
    found = {}
    for record in json.loads(outcomes.read_text())["records"]:
        if record["outcome"] in ("passed", "skipped"):
            continue
        text = record.get("category") or ""
        text = text if LIKELY_CAUSE in text else record.get("message") or ""
        found[record["nodeid"]] = text.split(LIKELY_CAUSE, 1)[1].splitlines()[0].strip() if LIKELY_CAUSE in text else None
    return found


def compare(bug, handout: Path, instructor_json: Path, workdir: Path) -> dict:
    """The bug run through the handout's pytest on its item's visible tests vs the grader's run (instructor_json)."""
    tests = visible_tests(bug, all_tests=True)
    submission = materialise(bug, workdir)
    offline_json = workdir / f"{bug.name}.handout.json"
    handout_pytest(handout, submission, tests, offline_json)
    grader, offline = causes(instructor_json), causes(offline_json)
    named = [n for n, c in grader.items() if c]
    return {"bug": bug.name, "item": bug.item, "same": grader == offline, "grader_names_it": any(
        bug.description in (c or "") for c in grader.values()), "grader_diagnosed": len(named),
        "offline_diagnosed": sum(1 for n in named if offline.get(n) == grader[n]),
        "differs": {n: (grader.get(n), offline.get(n)) for n in set(grader) | set(offline) if grader.get(n) != offline.get(n)}}


def measure_one(bug, base: Path, work: Path) -> dict:
    """One bug, as the release records it and as a student meets it: its record run (the grader's own run of
    its item's visible tests, every measurement its failures reach recorded), merged into a copy of the
    handout's data, then the handout's pytest on the same tests."""
    folder = work / bug.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    partial = run_bug(bug, folder, all_tests=True, keep_json=folder)
    handout = folder / "handout"
    shutil.copytree(base, handout)
    if partial is not None:  # as record_bug_measurements merges it in a release
        data = BugData.load(handout / BUG_OUTPUTS_RELPATH)
        data.merge(BugData.load(partial))
        data.save(handout / BUG_OUTPUTS_RELPATH)
        merge_reference_outputs([reference_outputs_of(partial)], handout / SNAPSHOT_RELPATH)
    if partial is not None:  # kept: their union with the handout's is what a release ships (see release_size)
        (work / "partials").mkdir(exist_ok=True)
        for path in (partial, reference_outputs_of(partial)):
            if path.exists():
                shutil.copy2(path, work / "partials" / path.name)
    try:
        return compare(bug, handout, folder / f"{bug.name}.json", folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def release_size(out: Path) -> dict:
    """The data files a release of every bug would ship: the handout's, merged with every bug run's records."""
    merged = out / "release_data"
    merged.mkdir(exist_ok=True)
    data = BugData.load(out / "handout" / BUG_OUTPUTS_RELPATH)
    partials = sorted((out / "work" / "partials").glob("*.safetensors"))
    for path in partials:
        if not path.name.endswith(".reference.safetensors"):
            data.merge(BugData.load(path))
    data.save(merged / "bug_outputs.safetensors")
    shutil.copy2(out / "handout" / SNAPSHOT_RELPATH, merged / "reference_outputs.safetensors")
    merge_reference_outputs([p for p in partials if p.name.endswith(".reference.safetensors")], merged / "reference_outputs.safetensors")
    return {"bug_outputs_bytes": (merged / "bug_outputs.safetensors").stat().st_size,
            "reference_outputs_bytes": (merged / "reference_outputs.safetensors").stat().st_size,
            "cases": len(data.sections["outputs"]), "measurement_sites": len(data.sections["measurements"])}


def measure(out: Path, names: list[str] | None = None, jobs: int = 2, snapshots: Path | None = None,
            bug_outputs: Path | None = None) -> list[dict]:
    """Build the handout (reference outputs and the bugs' outputs on them; `snapshots`, `bug_outputs`: reuse
    those a release recorded), then per bug (measure_one) compare the handout's diagnoses with the grader's.
    Rows are appended to OUT/measurement.jsonl as they come (a bug already there is not run again)."""
    out.mkdir(parents=True, exist_ok=True)
    base, rows_file = out / "handout", out / "measurement.jsonl"
    if not base.exists():
        build_handout(base, bugs=[], snapshots=snapshots, bug_outputs=bug_outputs)
    done = {json.loads(line)["bug"]: json.loads(line) for line in rows_file.read_text().splitlines()} if rows_file.exists() else {}
    bugs = [b for b in BUGS if (names is None or b.name in names) and b.name not in done and visible_tests(b, all_tests=True)]

    def one(bug) -> dict:
        row = measure_one(bug, base, out / "work")
        with open(rows_file, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(("SAME    " if row["same"] else "DIFFERS ") + bug.name, flush=True)
        return row

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        rows = list(pool.map(one, bugs))
    return [*done.values(), *rows]


def summary(rows: list[dict], catalogue: int = len(BUGS)) -> str:
    same = [r for r in rows if r["same"]]
    lines = [f"{len(same)} of {catalogue} catalogued bugs ({100 * len(same) / catalogue:.1f} %) get the grader's diagnosis "
             f"texts offline on every visible test of their item ({len(rows)} have visible tests)"]
    lines += [f"  DIFFERS {r['bug']} ({r['item']}): {json.dumps(r['differs'])[:600]}" for r in rows if not r["same"]]
    return "\n".join(lines)


# --- the fast tests ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded(released) -> tuple[Path, Path]:
    """The session's handout (selftests/conftest.py: measurements recorded for HANDOUT_BUGS) and the instructor's runs."""
    return released[0], released[1]


def test_the_bug_outputs_add_no_input_and_no_code(recorded):
    handout, _ = recorded
    data = BugData.load(handout / BUG_OUTPUTS_RELPATH)
    from safetensors import safe_open

    with safe_open(str(handout / SNAPSHOT_RELPATH), framework="pt") as f:
        snapshot_cases = {name.split("/", 1)[0] for name in f.keys()}
    assert data.sections["outputs"] and set(data.sections["outputs"]) <= snapshot_cases  # the visible cases, nothing new
    assert data.sections["measurements"]  # the measurement sites of the recorded bugs' visible failures
    assert all(d in {b.description for b in BUGS} for d in data.descriptions)  # descriptions, never edits
    edits = {e.new.strip() for b in BUGS for e in b.edits if len(e.new.strip()) >= 25}
    header = (handout / BUG_OUTPUTS_RELPATH).read_bytes()[:1 << 24].decode("latin-1")
    assert not [e for e in edits if e in header]
    check_handout(handout)  # no reference line anywhere, the data file's header included
    size = (handout / BUG_OUTPUTS_RELPATH).stat().st_size
    print(f"bug outputs: {size / 1e6:.2f} MB, {len(data.sections['outputs'])} cases, "
          f"{len(data.sections['measurements'])} measurement sites")


def test_the_scan_reads_the_data_files_header(recorded, tmp_path):
    handout, _ = recorded
    copy = tmp_path / "data"
    copy.mkdir()
    data = BugData.load(handout / BUG_OUTPUTS_RELPATH)
    planted = sorted(forbidden_reference_lines())[0]
    data.descriptions.append(planted)
    data.save(copy / "bug_outputs.safetensors")
    assert any(hit.endswith(planted) for hit in scan_for_reference_code(copy, {planted}))


def test_the_handout_diagnoses_a_handful_of_bugs_as_the_grader_does(recorded, tmp_path):
    handout, instructor = recorded
    rows = [compare(b, handout, instructor / f"{b.name}.json", tmp_path) for b in fast_bugs()]
    print(summary(rows, len(rows)))
    assert all(r["grader_diagnosed"] for r in rows), [r["bug"] for r in rows if not r["grader_diagnosed"]]
    assert all(r["same"] for r in rows), summary(rows, len(rows))


@pytest.mark.skipif(not os.environ.get("LMGRADE_OFFLINE_FULL"), reason="the full measurement: LMGRADE_OFFLINE_FULL=OUT_DIR")
def test_at_least_nine_tenths_of_the_catalogue_is_diagnosed_offline_as_by_the_grader():
    rows = measure(Path(os.environ["LMGRADE_OFFLINE_FULL"]))
    print(summary(rows))
    assert sum(r["same"] for r in rows) >= 0.9 * len(BUGS), summary(rows)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m selftests.test_offline_diagnosis")
    parser.add_argument("out", type=Path)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--bugs", default=None)
    parser.add_argument("--snapshots", type=Path, default=None)
    parser.add_argument("--bug-outputs", type=Path, default=None)
    args = parser.parse_args()
    result = measure(args.out, args.bugs.split(",") if args.bugs else None, args.jobs, args.snapshots, args.bug_outputs)
    print(summary(result))
    print(release_size(args.out))
