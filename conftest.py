"""Loads the grader's pytest plugin (options --impl/--adapters/--submission, fixtures, reporting)."""

import pytest

pytest_plugins = ["lmgrade.pytest_plugin"]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Make ``--dist loadgroup`` group again under pytest >= 9.

    pytest-xdist's worker tags a grouped test by assigning ``item._nodeid = "<id>@<group>"``; pytest 9
    keeps the id in ``Node._id``, so the tag is lost and every worker builds a group's module fixtures
    (a release handout: about a minute each) again. Setting the tag where pytest 9 reads it restores
    the schedule; on a pytest where the assignment still works the id already ends with the tag.
    """
    if not getattr(config.option, "loadgroup", False):
        return
    try:
        from _pytest.nodeid import coerce_node_id
    except ImportError:  # pytest < 9: xdist's own assignment took effect
        return
    for item in items:
        groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                         for m in item.iter_markers("xdist_group")})
        if groups and "@" not in item.nodeid:
            item._id = coerce_node_id(f"{item.nodeid}@{'_'.join(groups)}")
