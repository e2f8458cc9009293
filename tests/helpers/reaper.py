"""Ctrl-C or SIGTERM stops the whole test run at once, and no process outlives it.

Live tests start Hypercorn servers, their workers, redis-servers and clients. On SIGINT
or SIGTERM the run's handler kills every process descended from it (the whole tree, read
from /proc at once, so a worker cannot be orphaned on the way) and raises
KeyboardInterrupt, which ends the session; session fixtures are still torn down (the run's
PostgreSQL database and Redis keys). Should a test swallow the interrupt, no further test
starts. A second signal ends the process at once. At the end of any run, descendants that
are still alive are killed and named, so a leak shows instead of lingering.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from types import FrameType

import pytest

_signalled = False


def _parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(pid: int | None = None) -> list[int]:
    """Every live process below ``pid`` (default: this one), children first."""
    root = os.getpid() if pid is None else pid
    if not Path("/proc").is_dir():
        return []
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def reap(pids: list[int] | None = None) -> list[int]:
    """Kill ``pids`` (default: every descendant) and wait for this process's children."""
    targets = descendants() if pids is None else pids
    for pid in targets:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG) == (0, 0):
                break  # children left, none exited yet: look again
        except ChildProcessError:
            break  # no children left
        if not descendants():
            break
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    return targets


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _signalled
    reap()
    if _signalled:
        os._exit(128 + signum)
    _signalled = True
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _defaults_in_child() -> None:
    """A process forked from the run (a worker, a test's helper) gets the signal
    dispositions it would have had without the reaper."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _install() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not _on_signal:
            signal.signal(signum, _on_signal)


def pytest_configure(config: pytest.Config) -> None:
    _install()
    os.register_at_fork(after_in_child=_defaults_in_child)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if _signalled:
        pytest.exit("stopped by a signal", returncode=130)
    # A test that served in-process (Hypercorn's serve() adds loop signal handlers and
    # resets them to the defaults when it ends) must not leave the rest of the run without.
    _install()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    left = reap()
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"reaper: killed {len(left)} process(es) left running: {left}")
