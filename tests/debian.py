"""Debian tools that live tests drive (nginx, ...): found, or installed when missing.

Installing needs root and Debian's package index: ``apt-get update`` once per test run,
then ``apt-get install``, waiting for a dpkg lock that another process may hold. When
that cannot be done the test is skipped, saying why, except under ``CI=true``, where
it fails (``backend_servers.unavailable``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

from backend_servers import unavailable

_updated: list[bool] = []


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        ["apt-get", "-o", "DPkg::Lock::Timeout=600", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )


def ensure_tool(find: Callable[[], str | None], package: str) -> str:
    """The path ``find()`` returns, after installing ``package`` if it found none."""
    found = find()
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        unavailable(package, RuntimeError("not installed, and apt-get needs root to install it"))
    if not _updated:
        _apt("update")
        _updated.append(True)
    result = _apt("install", "-y", "--no-install-recommends", package)
    found = find()
    if result.returncode != 0 or not found:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        unavailable(package, RuntimeError(f"apt-get install {package} failed: {tail}"))
    assert found is not None
    return found
