# The hostile submissions are data for test_hostile.py: never collect them, and never load
# the conftest.py one of them ships.
collect_ignore = ["hostile"]
