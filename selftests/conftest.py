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
