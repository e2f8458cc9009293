"""What a server process does when it cannot start: one line, said once, exit status 3.

Left alone, a bad setting or a database that refuses the configured URL prints a
traceback per worker (hundreds of lines with the cause buried) and, under plain
Hypercorn, can end with status 0. Here every start-up failure becomes one ``Error: ...``
line per problem, naming the setting and the fix, and the process exits with
:data:`~quart_app.startup.settings.BOOT_ERROR_EXIT`, which a supervisor takes as fatal.

Workers of one server fail together: only the first to fail says why (an abstract Unix
file named after the parent process is the mark, Linux only); the others exit silently
with the same status. ``python -m quart_app.serving`` checks the settings in the master
before any worker starts and exits 3 too. Plain ``hypercorn`` prints the same line, but
its master (0.17, 0.18) reports 0 whatever its workers exited with (pgjones/hypercorn#269):
so the first worker of a plain Hypercorn master to fail ends that master with SIGUSR1,
whose default action stops it with a failure status (a shell says 138, systemd
``status=10/USR1``) instead of a silent 0.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import tempfile
import traceback
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .settings import BOOT_ERROR_EXIT, SettingsError

if TYPE_CHECKING:
    from quart import Quart

log = logging.getLogger(__name__)

#: Name of the mark the first failing process of a server leaves in the temp folder.
MARK_PREFIX = "quart_app-boot-failure-"
#: Packages whose errors come from the database (drivers and SQLAlchemy itself).
DATABASE_MODULES = frozenset({"asyncpg", "aiosqlite", "sqlite3", "sqlalchemy"})


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _module(error: BaseException) -> str:
    return type(error).__module__.split(".")[0]


def _raised_in(error: BaseException, packages: frozenset[str]) -> bool:
    """Whether a frame of ``error``'s traceback is in one of ``packages``."""
    for frame in traceback.extract_tb(error.__traceback__):
        parts = Path(frame.filename).parts
        if any(package in parts for package in packages):
            return True
    return False


def _database(error: BaseException, config: Any) -> str | None:
    """One line for a database that refused the configured URL, or None."""
    from sqlalchemy.engine import make_url

    from ..store.migrate import SchemaError

    chain = list(_causes(error))
    if any(isinstance(cause, SchemaError) for cause in chain):
        return _first_line(error)
    if not any(_module(c) in DATABASE_MODULES or _raised_in(c, DATABASE_MODULES) for c in chain):
        return None
    drivers = [c for c in chain if _module(c) in DATABASE_MODULES - {"sqlalchemy"}]
    url = make_url(str(config.get("DATABASE_URL")))
    shown = url.render_as_string(hide_password=True)
    cause = drivers[-1] if drivers else chain[-1]
    name = type(cause).__name__
    if name == "InvalidCatalogNameError":
        create = f"createdb -h {url.host or 'localhost'} -p {url.port or 5432}"
        create += f" -U {url.username} {url.database}" if url.username else f" {url.database}"
        return (
            f"DATABASE_URL {shown}: database {url.database!r} does not exist:"
            f" create it ({create}) or name an existing database"
        )
    if name in {"InvalidPasswordError", "InvalidAuthorizationSpecificationError"}:
        return f"DATABASE_URL {shown}: {_first_line(cause)}: fix the user or password"
    if isinstance(cause, OSError):
        return (
            f"DATABASE_URL {shown}: cannot connect ({_first_line(cause)}):"
            " start the database or fix the host and port"
        )
    return f"DATABASE_URL {shown}: {_first_line(cause)}"


def startup_problems(error: BaseException, config: Any = None) -> list[str]:
    """One line per problem for a failed start-up."""
    if isinstance(error, SettingsError):
        return error.problems
    if config is not None and (line := _database(error, config)) is not None:
        return [line]
    for cause in _causes(error):
        if _module(cause) == "redis" or _raised_in(cause, frozenset({"redis"})):
            return [
                f"REDIS_URL: {_first_line(cause)}: start Redis, fix the URL, or unset"
                " REDIS_URL to keep revocations and throttling in the database and memory"
            ]
    return [
        f"start-up failed: {type(error).__name__}: {_first_line(error)}"
        " (LOG_LEVEL=DEBUG logs the traceback)"
    ]


def _started(pid: int) -> str:
    """When process ``pid`` started (Linux clock ticks), so a reused pid is another name."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return "0"


def _first_to_fail() -> bool:
    """True unless a sibling worker (same parent) has reported a failure already.

    The mark is an empty file named after the parent process: siblings that fail later,
    after the first has exited, still find it. Marks of servers that are gone are removed.
    """
    master = multiprocessing.parent_process()
    if master is None:
        return True  # not a worker: a master or a single process always says it
    # The pid the worker was started by, even once it is gone (a sibling that failed
    # first ends a plain Hypercorn master: see fail()).
    parent = master.pid or os.getppid()
    folder = Path(tempfile.gettempdir())
    for stale in folder.glob(f"{MARK_PREFIX}*"):
        pid = stale.name[len(MARK_PREFIX) :].split("-")[0]
        if pid.isdigit() and int(pid) != parent and not Path(f"/proc/{pid}").exists():
            stale.unlink(missing_ok=True)
    if not Path("/proc/self").exists():
        return True  # no /proc (not Linux): say it from every process
    if not Path(f"/proc/{parent}").exists():
        # The master is gone: ended by the sibling that said why, or died on its own.
        return not any(folder.glob(f"{MARK_PREFIX}{parent}-*"))
    mark = folder / f"{MARK_PREFIX}{parent}-{_started(parent)}"
    try:
        os.close(os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return False
    except OSError:
        return True
    return True


#: True in a worker of ``python -m quart_app.serving`` (quart_app/serving/worker.py), whose
#: master reads the exit status itself.
SUPERVISED = False


def _plain_hypercorn_master() -> int | None:
    """The pid of this worker's master when it is plain ``hypercorn``, or None."""
    if SUPERVISED or multiprocessing.parent_process() is None:
        return None
    parent = os.getppid()
    try:
        command = Path(f"/proc/{parent}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if any(part.endswith((b"hypercorn", b"hypercorn/__main__.py")) for part in command):
        return parent
    return None


def fail(problems: list[str]) -> NoReturn:
    """Say ``problems`` (once per server) and exit with :data:`BOOT_ERROR_EXIT`."""
    if _first_to_fail():
        for line in problems:
            sys.stderr.write(f"Error: {line}\n")
        sys.stderr.flush()
        master = _plain_hypercorn_master()
        if master is not None:
            # Its exit status would be 0 (see above): end it with a failing one.
            os.kill(master, signal.SIGUSR1)
    os._exit(BOOT_ERROR_EXIT)


def _guarded(app: Quart, func: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    async def guarded() -> None:
        try:
            await app.ensure_async(func)()
        except Exception as error:
            log.debug("start-up failed", exc_info=True)
            fail(startup_problems(error, app.config))

    return guarded


def build_app(factory: Callable[[], Quart]) -> Quart:
    """``factory()`` for a server: any failure to build it or to start it is :func:`fail`.

    ``os._exit`` rather than an exception: Quart would log the traceback of an exception
    from ``before_serving``, and Hypercorn would print it again from each worker.
    """
    try:
        app = factory()
    except Exception as error:
        log.debug("start-up failed", exc_info=True)
        fail(startup_problems(error))
    app.before_serving_funcs = [_guarded(app, func) for func in app.before_serving_funcs]
    return app
