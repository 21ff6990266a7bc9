"""`lmgrade bundle`: the Gradescope autograder zip, and a dry run of it in a fake /autograder."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lmgrade.outputs.bundle import build_bundle
from lmgrade.grading.grade import PROJECT_ROOT
from lmgrade.core.rubric import load_rubric
from lmgrade.outputs.report import GRADESCOPE_VISIBILITY

# Its module-scoped fixtures are built once: every test of this file runs on one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("test_bundle")

SCRIPTS = ("setup.sh", "run_autograder")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "autograder.zip"
    build_bundle(out)
    return out


def names_in(bundle: Path) -> list[str]:
    with zipfile.ZipFile(bundle) as archive:
        return archive.namelist()


def test_the_zip_holds_the_scripts_at_its_root_and_the_whole_instructor_project(bundle):
    names = names_in(bundle)
    for needed in (*SCRIPTS, "pyproject.toml", "conftest.py", "lmgrade/cli.py", "lmgrade/core/rubric.toml", "reference/__init__.py",
                   "student/__init__.py", "adapters/__init__.py", "tests/test_linear.py", "tests/hidden/test_linear.py"):
        assert needed in names, needed
    assert len(names) == len(set(names))
    for name in names:
        parts = name.split("/")
        assert not {".git", "__pycache__", ".hypothesis", ".pytest_cache", ".venv", "venv"} & set(parts), name
        assert not name.endswith((".pyc", ".pyo")) and ".egg-info" not in name, name


def test_the_scripts_are_executable_in_the_zip_and_valid_bash(bundle, tmp_path):
    with zipfile.ZipFile(bundle) as archive:
        for script in SCRIPTS:
            mode = archive.getinfo(script).external_attr >> 16
            assert stat.S_ISREG(mode) and mode & 0o111 == 0o111, f"{script}: mode {oct(mode)}"
            text = archive.read(script).decode()
            assert text.startswith("#!/usr/bin/env bash\n")
            (tmp_path / script).write_text(text)
            proc = subprocess.run(["bash", "-n", str(tmp_path / script)], capture_output=True, text=True)
            assert proc.returncode == 0, f"{script}: {proc.stderr}"
    setup = (tmp_path / "setup.sh").read_text()
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in setup
    assert 'pip install -e "$SOURCE"' in setup
    script = (tmp_path / "run_autograder").read_text()
    assert "lmgrade grade --rubric" in script and '--submission "$WORK/submission"' in script


def fake_autograder(bundle: Path, root: Path) -> Path:
    """Lay the bundle out as Gradescope does: zip -> root/source, run_autograder -> root/run_autograder."""
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(root / "source")
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    (root / "submission").mkdir()
    return root


def run_autograder(root: Path) -> tuple[subprocess.CompletedProcess, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LMGRADE_"))}
    env.update(AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(root / "run_autograder")], cwd=root, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((root / "results" / "results.json").read_text())
    return proc, results


def test_an_empty_submission_gets_score_0_and_a_message_saying_what_to_upload(bundle, tmp_path):
    root = fake_autograder(bundle, tmp_path / "autograder")
    (root / "submission" / "README.txt").write_text("oops, forgot the code")
    _, results = run_autograder(root)
    assert results["score"] == 0 and results["tests"] == []
    assert "No student/ folder" in results["output"]


def test_the_stubs_uploaded_as_top_level_files_are_graded_0_with_every_rubric_item_listed(bundle, tmp_path):
    """The whole pipeline: the extracted source grades the upload in its own child process."""
    root = fake_autograder(bundle, tmp_path / "autograder")
    for module in (PROJECT_ROOT / "student").glob("*.py"):
        shutil.copy(module, root / "submission" / module.name)
    proc, results = run_autograder(root)
    rubric = load_rubric(root / "source" / "lmgrade" / "core" / "rubric.toml")
    assert results["score"] == 0, proc.stdout[-3000:]
    tests = results["tests"]
    assert [t["name"].split(":")[0] for t in tests] == [item.id for item in rubric.items]
    assert sum(t["max_score"] for t in tests) == rubric.total
    for test, item in zip(tests, rubric.items):
        assert test["score"] == 0 and test["output"].startswith("not implemented"), test
        assert test["visibility"] == GRADESCOPE_VISIBILITY[item.feedback]
    assert "grading the package from submission" in proc.stdout


def test_when_the_grader_itself_fails_the_student_gets_score_0_and_a_clear_message(bundle, tmp_path):
    """Also: a repository uploaded one folder down is found (submission/my-repo/student/)."""
    root = fake_autograder(bundle, tmp_path / "autograder")
    shutil.copytree(PROJECT_ROOT / "student", root / "submission" / "my-repo" / "student",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (root / "source" / "lmgrade" / "core" / "rubric.toml").unlink()  # break the grader, not the submission
    proc, results = run_autograder(root)
    assert "grading the package from submission/my-repo/student" in proc.stdout
    assert results["score"] == 0 and results["tests"] == []
    assert "could not grade this submission" in results["output"] and "tell your instructor" in results["output"]
    assert "FileNotFoundError" in proc.stdout  # the details are for the instructor (stdout), not in the output
    assert "Traceback" not in results["output"]


def test_a_submission_linking_to_the_graders_reference_is_refused_with_score_0(bundle, tmp_path):
    """`student -> <grader>/reference` used to be followed by the copy and scored 100/100."""
    root = fake_autograder(bundle, tmp_path / "autograder")
    (root / "submission" / "student").symlink_to(root / "source" / "reference")
    proc, results = run_autograder(root)
    assert results["score"] == 0 and results["tests"] == [], proc.stdout[-2000:]
    assert "symbolic link" in results["output"] and "not accepted" in results["output"]


def test_the_bundle_grades_with_the_rubric_it_was_built_for(tmp_path):
    out = tmp_path / "cs336.zip"
    build_bundle(out, rubric="cs336")
    with zipfile.ZipFile(out) as archive:
        script = archive.read("run_autograder").decode()
        assert "lmgrade/core/rubric_cs336.toml" in archive.namelist()
    assert '--rubric "${LMGRADE_RUBRIC:-cs336}"' in script
    with pytest.raises(FileNotFoundError):
        build_bundle(tmp_path / "bad.zip", rubric="no-such-rubric")
