"""Feedback a student can act on: bad input is an error, failures speak of the student's code,
and a local run says what the visible tests are worth and how many points are hidden."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import Phase, settings

from lmgrade import cli
from lmgrade.catalogue.bugs import BUGS
from lmgrade.catalogue.variants import materialise
from lmgrade.core.profiles import PROFILES, register_profiles
from lmgrade.core.rubric import load_rubric
from lmgrade.grading.calls import describe_call, without_grader_frames

ROOT = Path(__file__).resolve().parents[1]


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, LMGRADE_PROFILE="fast", PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, **kwargs)


# 1. Bad input to the grader is an error, not a grade ----------------------------------------------


def test_grade_with_a_missing_adapters_file_exits_2_with_one_line():
    proc = run(["-m", "lmgrade", "grade", "--adapters", "/no/such/adapters.py"])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "/no/such/adapters.py" in lines[0] and "no such file" in lines[0], proc.stderr
    assert "TOTAL" not in proc.stdout and "/ " not in proc.stdout  # no scorecard of "file not found" items


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    (tmp / "notes.txt").write_text("run_linear")
    marker = tmp / "imported"
    (tmp / "no_adapters.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n\ndef helper():\n    return 1\n")
    (tmp / "empty").mkdir()
    (tmp / "no_package" / "student").mkdir(parents=True)
    (tmp / "no_package" / "student" / "layers.py").write_text("")
    return {
        "adapters missing": (["--adapters", str(tmp / "missing.py")], "no such file"),
        "adapters not .py": (["--adapters", str(tmp / "notes.txt")], "not a Python"),
        "adapters a folder": (["--adapters", str(tmp)], "not a Python"),
        "no run_ function": (["--adapters", str(tmp / "no_adapters.py")], "defines no run_"),
        "submission missing": (["--submission", str(tmp / "nowhere")], "no such folder"),
        "submission empty": (["--submission", str(tmp / "empty")], "empty"),
        "no student/__init__.py": (["--submission", str(tmp / "no_package")], "student/__init__.py"),
    }


@pytest.mark.parametrize("case", ["adapters missing", "adapters not .py", "adapters a folder", "no run_ function",
                                  "submission missing", "submission empty", "no student/__init__.py"])
def test_bad_input_is_one_line_on_stderr_and_exit_2(case, tmp_path, capsys, monkeypatch):
    def must_not_grade(*args, **kwargs):
        raise AssertionError("grading started on bad input")

    monkeypatch.setattr(cli, "grade", must_not_grade)
    argv, expected = _bad_inputs(tmp_path)[case]
    assert cli.main(["grade", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "imported").exists()  # the adapters file was read, never run


def test_what_is_there_but_wrong_is_still_graded(tmp_path):
    broken = tmp_path / "adapters.py"
    broken.write_text("def run_linear(:\n")  # a syntax error is the student's mistake: graded, each item says so
    imported = tmp_path / "imports.py"
    imported.write_text("from mypackage.adapters import run_linear as run_linear\n")
    (tmp_path / "sub" / "student").mkdir(parents=True)
    (tmp_path / "sub" / "student" / "__init__.py").write_text("")
    parser = cli.build_parser()
    for argv in (["--adapters", str(broken)], ["--adapters", str(imported)], ["--submission", str(tmp_path / "sub")],
                 ["--impl", "reference"]):
        assert cli.bad_grade_input(parser.parse_args(["grade", *argv])) is None, argv


# 2. Messages without the grader's insides -----------------------------------------------------------


def test_no_profile_runs_the_explain_phase():
    register_profiles()
    for name in PROFILES:
        assert Phase.explain not in settings.get_profile(name).phases, name
        assert Phase.shrink in settings.get_profile(name).phases, name


def _softmax_submission(tmp: Path, name: str, raising: bool = False) -> Path:
    bug = next(b for b in BUGS if b.item == "softmax" and b.name == name)
    submission = materialise(bug, tmp)
    if raising:  # an error inside a torch call of the student's own helper (under the forbidden-call detector)
        layers = submission / "student" / "layers.py"
        source = layers.read_text()
        old = "    return exp.div_(exp.sum(dim=-1, keepdim=True))"
        assert source.count(old) == 1
        layers.write_text(source.replace(old, "    return _my_helper(exp)\n\n\ndef _my_helper(t):\n    return t.view(-1, 3)"))
    return submission


def test_a_failure_shows_the_students_call_not_the_graders_insides(tmp_path):
    submission = _softmax_submission(tmp_path, "softmax_over_last_dim_always")
    proc = run(["-m", "pytest", "tests/test_softmax.py", "-x", "-q", "-p", "no:cacheprovider", f"--submission={submission}"])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "your adapter call: run_softmax(in_features=<float32 tensor of shape (" in out, out
    assert "Explanation:" not in out and "always and only run by failing test cases" not in out, out
    assert "GradedCalls object at" not in out and "impl=<your adapters>" in out, out
    for inside in ("lmgrade/core/compare.py", "lmgrade/grading/calls.py", "lmgrade/sandbox/forbidden.py", "adapters/bound.py",
                   "site-packages/"):
        assert inside not in out, f"{inside} in:\n{out}"
    assert "tests/test_softmax.py:" in out  # the test's own frame stays
    rubric = load_rubric()
    visible = sum(i.points for i in rubric.items if i.visible)
    hidden = sum(i.points for i in rubric.items if not i.visible)
    n_visible = sum(1 for i in rubric.items if i.visible)
    # 3. the local estimate, after the scorecard
    assert (f"visible items: 0 / {visible:g} points (1 of {n_visible} visible items ran); "
            f"{hidden:g} more points are in hidden tests, graded when you submit") in out, out


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "isolated"])
def test_an_error_in_the_students_code_keeps_the_students_frames_only(tmp_path, isolate):
    """In process, pytest's traceback is filtered; isolated, the child's traceback (text) is."""
    submission = _softmax_submission(tmp_path, "softmax_over_last_dim_always", raising=True)
    proc = run(["-m", "pytest", "tests/test_softmax.py::test_softmax_is_unchanged_by_adding_1000", "-x", "-q",
                "-p", "no:cacheprovider", f"--submission={submission}", *(["--isolate"] if isolate else [])])
    out = proc.stdout + proc.stderr
    if isolate and "the submission could not be run" in out:
        pytest.skip("no sandbox tier on this machine")
    assert proc.returncode == 1, out
    assert "student/layers.py" in out and "_my_helper" in out and "RuntimeError" in out, out
    assert "your adapter call: run_softmax(in_features=<float32 tensor of shape (" in out, out
    for inside in ("lmgrade/sandbox/forbidden.py", "__torch_function__", "lmgrade/grading/calls.py", "adapters/", "site-packages/"):
        assert inside not in out, f"{inside} in:\n{out}"


def test_a_child_traceback_keeps_the_students_frames_and_drops_the_graders():
    text = "\n".join([
        "RuntimeError: boom",
        '  File "/tmp/lmgrade-child-x/runtime/adapters/package.py", line 79, in run_softmax',
        "    return self.pkg.softmax(in_features, dim)",
        "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
        '  File "/tmp/lmgrade-child-x/submission/student/layers.py", line 89, in _helper',
        "    return x.view(-1, 3)",
        '  File "/tmp/lmgrade-child-x/runtime/lmgrade/sandbox/forbidden.py", line 56, in __torch_function__',
        "    return func(*args, **(kwargs or {}))",
        "RuntimeError: boom",
    ])
    assert without_grader_frames(text).splitlines() == [
        "RuntimeError: boom",
        '  File "/tmp/lmgrade-child-x/submission/student/layers.py", line 89, in _helper',
        "    return x.view(-1, 3)",
        "RuntimeError: boom",
    ]


def test_a_call_is_described_as_a_student_would_write_it():
    import torch

    x = torch.zeros(4, 3).t()
    assert describe_call("run_softmax", (x,), {"dim": -1}) == (
        "run_softmax(in_features=<float32 tensor of shape (3, 4), not contiguous>, dim=-1)")
    assert describe_call("run_unknown", (1, [torch.ones(2, dtype=torch.int64)]), {}) == (
        "run_unknown(1, [<int64 tensor of shape (2,)>])")


# 3. A local estimate -----------------------------------------------------------------------------


def test_a_handout_run_ends_with_the_visible_points_and_the_hidden_ones(tmp_path):
    """The handout's rubric lists its visible items only; `hidden_points` says what the hidden ones hold."""
    rubric = tmp_path / "rubric.toml"
    rubric.write_text('total = 3\nhidden_points = 54\n\n[[items]]\nid = "softmax"\ntitle = "Softmax"\npoints = 3\n'
                      'visible = true\ntests = ["tests/test_softmax.py"]\n')
    proc = run(["-m", "pytest", "tests/test_softmax.py", "-q", "-p", "no:cacheprovider", "--impl=reference", f"--rubric={rubric}"])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "visible items: 3 / 3 points; 54 more points are in hidden tests, graded when you submit" in out, out
    assert out.index("lmgrade scorecard") < out.index("visible items:")


def test_a_failure_shows_its_items_hint_in_pytest_and_in_the_reports(tmp_path):
    """The HINT of tests/test_softmax.py follows a softmax failure: in pytest's output, in results.json and in
    the Markdown report; an item that is only not implemented gets no hint (there is nothing to interpret)."""
    from lmgrade.core.hints import hint_for
    from lmgrade.grading.grade import Selection, grade
    from lmgrade.outputs.report import gradescope_results, markdown_report

    hint = hint_for("softmax")
    assert hint and "?" in hint and hint_for("softmax.hidden") == hint
    submission = _softmax_submission(tmp_path, "softmax_over_last_dim_always")
    proc = run(["-m", "pytest", "tests/test_softmax.py", "-x", "-q", "-p", "no:cacheprovider", f"--submission={submission}"])
    assert "hint" in proc.stdout and hint.splitlines()[-1] in proc.stdout, proc.stdout[-3000:]
    result = grade(Selection(submission=str(submission)), tests=["tests/test_softmax.py", "tests/test_linear.py"], profile="fast")
    softmax = next(s for s in result.scores if s.item.id == "softmax")
    assert softmax.score < softmax.max_score
    output = next(t["output"] for t in gradescope_results(result.scores)["tests"] if t["name"].startswith("softmax:"))
    assert f"Hint: {hint}" in output and f"Hint: {hint}" in markdown_report(result.scores, "r", with_pictures=False)
    stubbed = grade(Selection(impl="student"), tests=["tests/test_softmax.py"], profile="fast")
    assert all("Hint:" not in t["output"] for t in gradescope_results(stubbed.scores)["tests"])
