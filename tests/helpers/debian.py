"""Debian tools that live tests drive (nginx, h2load, chromium, ...): found, or the test
cannot run.

Tests never install anything: ``make test-deps`` installs every system package the suite
needs (``.ci/run`` calls it before ``make test``). A missing tool fails the test under
``CI=true`` and skips it elsewhere, naming the command that installs it
(``backend_servers.unavailable``).
"""

from __future__ import annotations

from collections.abc import Callable

from tests.helpers.backend_servers import unavailable


def ensure_tool(find: Callable[[], str | None], package: str) -> str:
    """The path ``find()`` returns; the test is skipped (failed under CI) when it finds none."""
    found = find()
    if not found:
        unavailable(
            package,
            RuntimeError(f"not installed: `make test-deps` installs it (Debian package {package})"),
        )
    assert found is not None
    return found
