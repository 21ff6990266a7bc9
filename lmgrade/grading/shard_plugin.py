"""The pytest plugin of a grading split over several processes (`-p lmgrade.grading.shard_plugin`).

`lmgrade grade` may start two pytest processes on the same tests (lmgrade.grading.grade,
`workers`), one walking the test files from the first, the other from the last (each file's tests
in their order). Before a process runs a test it claims it in a folder the processes share (an
exclusive create, so exactly one of them wins); a test claimed by the other process is passed
over. The two meet wherever the work happens to balance, whatever each test costs, and every
test runs exactly once. Claims are per test, not per file: whole files left the two finishing up
to 1.5 s apart. (The suite has no module-scoped fixture; one would be built in both processes.)
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--shard-claims", default=None, metavar="DIR",
                     help="(lmgrade grade) the folder where the processes of one grading claim tests")
    parser.addoption("--shard-from-end", action="store_true",
                     help="(lmgrade grade) walk the test files from the last one")


def _file(item: pytest.Item) -> str:
    return item.nodeid.split("::")[0]


@pytest.hookimpl(trylast=True)  # after every other ordering: the order within a file is kept
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("shard_from_end"):
        files = list(dict.fromkeys(_file(item) for item in items))
        rank = {name: -i for i, name in enumerate(files)}
        items.sort(key=lambda item: rank[_file(item)])  # a stable sort: each file's tests stay in order


def _claim(claims: Path, nodeid: str) -> bool:
    name = hashlib.sha1(nodeid.encode()).hexdigest()  # node ids hold any character and any length
    try:
        os.close(os.open(claims / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        return True
    except FileExistsError:
        return False


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    claims = item.config.getoption("shard_claims")
    if claims is None or _claim(Path(claims), item.nodeid):
        return None  # pytest runs it as usual
    # The other process runs this test. Nothing was set up for it; what the previous one left set
    # up that the next one does not need is torn down here, as pytest does after a test.
    item.session._setupstate.teardown_exact(nextitem)
    return True  # handled: no report, no outcome; the other process records it
