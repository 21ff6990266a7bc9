# The hostile submissions are data for test_hostile.py: never collect them, and never load
# the conftest.py one of them ships.
collect_ignore = ["hostile"]

import pytest

from lmgrade.grading.warm import WarmPytest


@pytest.fixture(scope="session")
def warm_pytest():
    """One warm pytest server for the gradings of this session (lmgrade.grading.warm): each grading
    forks it instead of starting python, torch and the suite again. The command-line paths
    (`lmgrade grade`, grade-all, the bundle's run_autograder) keep their own new process."""
    with WarmPytest(profile="fast") as runner:  # the profile of these gradings (others start a new process)
        yield runner


# The catalogued bugs whose measurements the handout of test_offline_diagnosis.py records (it compares their
# offline diagnoses with the grader's): an output bug, a measurement bug, and one diagnosed from the error
# it raises. The full catalogue is the long run in that file.
HANDOUT_BUGS = ("rmsnorm_eps_outside_root", "lr_warmup_off_by_one", "checkpoint_pickles_whole_objects")


@pytest.fixture(scope="session")
def released(tmp_path_factory):
    """A handout built by the release code with HANDOUT_BUGS' measurements: (handout, the instructor's runs of
    those bugs, the folder holding the reference copied as a submission, as it was when the outputs were recorded)."""
    import shutil

    from lmgrade.catalogue.bugs import BUGS
    from lmgrade.outputs.handout import PROJECT_ROOT, build_handout

    folder = tmp_path_factory.mktemp("release")
    shutil.copytree(PROJECT_ROOT / "reference", folder / "reference_submission" / "student",
                    ignore=shutil.ignore_patterns("__pycache__"))
    names = [b.name for b in BUGS if b.name in HANDOUT_BUGS]
    summary = build_handout(folder / "handout", bugs=names, all_tests=True, keep_json=folder / "instructor")
    assert summary.snapshot_cases > 0
    return folder / "handout", folder / "instructor", folder
