"""pytest-xdist's ``--dist loadgroup`` under pytest 9.2: keep each group on one worker.

pytest-xdist 3.8 marks a grouped test by renaming it ``<nodeid>@<group>`` through the
``_nodeid`` attribute, which pytest 9.2 no longer reads (a node's id is now the structured
``_id``): every group was silently spread over the workers, and a module's shared server
was started by each of them. This hook, run after pytest-xdist's, gives the node the
id pytest-xdist meant. Upstream: https://github.com/pytest-dev/pytest-xdist/issues/1386
(it does nothing once pytest-xdist sets the id itself, or on a pytest that reads
``_nodeid``). ``tests/tooling/test_xdist_loadgroup.py`` fails without it.
"""

from __future__ import annotations

import pytest

try:
    from _pytest.nodeid import coerce_node_id
except ImportError:  # a pytest before 9.2, which reads ``_nodeid``: nothing to mend
    STRUCTURED_IDS = False
else:
    STRUCTURED_IDS = True


@pytest.hookimpl(trylast=True)  # after pytest-xdist's own hook has named the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not STRUCTURED_IDS:
        return
    for item in items:
        meant = item.__dict__.get("_nodeid")
        if isinstance(meant, str) and meant != item.nodeid and hasattr(item, "_id"):
            item._id = coerce_node_id(meant)
