"""Loads the grader's pytest plugin (options --impl/--adapters/--submission, fixtures, reporting)."""

pytest_plugins = ["lmgrade.pytest_plugin"]
