"""The master's listening sockets: a taken address fails at once, naming its holder.

Each worker slot gets its own ``SO_REUSEPORT`` socket per address (on Linux with more
than one worker), so the kernel spreads new connections evenly across workers; the
master keeps every socket open for its whole life and hands slot *i*'s sockets to each
worker that fills slot *i*. When a worker dies or is replaced by a reload, its socket
stays open and listening: connections queued on it wait for its successor, which is
forked from the preloaded process. (Taking its socket out of the listening table
instead refused the connections that arrived during the transition.)

``SO_REUSEPORT`` also lets a second server (or the orphaned workers of a dead one) bind
the same port silently and take half the traffic. So before binding, every address is
probe-bound *without* ``SO_REUSEPORT``: that fails if anything listens there, however
it bound, and :func:`describe_holder` names it from ``/proc``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import platform
import socket
from dataclasses import dataclass, field
from pathlib import Path

from hypercorn.config import Config, Sockets

OUR_COMMANDS = ("quart_app.serving", "hypercorn", "quart_app.asgi")


class AddressInUse(Exception):
    """An address to listen on is taken; the message names it and its holder."""


@dataclass
class Listeners:
    """Slot-indexed listening sockets; slot sockets are created on first use."""

    config: Config
    per_slot: bool
    _slots: dict[int, Sockets] = field(default_factory=dict)

    @classmethod
    def open(cls, config: Config) -> Listeners:
        for bind in [*config.bind, *config.insecure_bind]:
            probe(bind)
        per_slot = config.workers > 1 and platform.system() == "Linux"
        listeners = cls(config, per_slot)
        listeners.sockets(0)
        return listeners

    def sockets(self, slot: int) -> Sockets:
        key = slot if self.per_slot else 0
        if key not in self._slots:
            self._slots[key] = self._create()
        return self._slots[key]

    def _create(self) -> Sockets:
        # Hypercorn sets SO_REUSEPORT on TCP sockets when workers > 1.
        workers = self.config.workers
        self.config.workers = 2 if self.per_slot else 1
        try:
            created = self.config.create_sockets()
        finally:
            self.config.workers = workers
        for sock in [*created.secure_sockets, *created.insecure_sockets]:
            sock.listen(self.config.backlog)
        return created

    def trim(self, slots: int) -> None:
        """Close the sockets of slots numbered ``slots`` and above."""
        for key in [key for key in self._slots if key >= slots and key > 0]:
            _close(self._slots.pop(key))

    def close(self) -> None:
        for sockets in self._slots.values():
            _close(sockets)
        self._slots.clear()


def _close(sockets: Sockets) -> None:
    for sock in [*sockets.secure_sockets, *sockets.insecure_sockets, *sockets.quic_sockets]:
        sock.close()


def _host_port(bind: str) -> tuple[str, int] | None:
    if bind.startswith(("unix:", "fd://")):
        return None
    bind = bind.replace("[", "").replace("]", "")
    host, _, port = bind.rpartition(":")
    try:
        return host, int(port)
    except ValueError:
        return bind, 8000


def probe(bind: str) -> None:
    """Raise :class:`AddressInUse` if anything listens on ``bind`` (TCP host:port)."""
    address = _host_port(bind)
    if address is None:
        return
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no holder
        try:
            sock.bind((host, port))
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            raise AddressInUse(f"{bind} is already in use: {describe_holder(port)}") from None


def describe_holder(port: int) -> str:
    """Who listens on TCP ``port``: another server of ours, its orphans, or what else."""
    pids = sorted(listening_pids(port))
    if not pids:
        return "held by another process (not visible to this user)"
    workers = [pid for pid in pids if _is_worker(pid)]
    masters = {pid for pid in pids if _is_ours(pid) and pid not in workers}
    masters |= {_parent(pid) for pid in workers if _is_ours(_parent(pid))}
    orphans = [pid for pid in workers if _parent(pid) not in masters]
    if masters:
        first = min(masters)
        return (
            f"held by another quart_app/Hypercorn server (pid {first}:"
            f" {_cmdline(first)[:120]}); stop it or choose another --bind"
        )
    if orphans:
        listed = ", ".join(map(str, orphans))
        return (
            f"held by orphaned workers of a server that is gone (pid {listed});"
            f" stop them (kill {' '.join(map(str, orphans))}) or choose another --bind"
        )
    first = pids[0]
    return f"held by another program (pid {first}: {_cmdline(first)[:120]})"


def listening_pids(port: int) -> set[int]:
    """Pids of the processes holding a socket that listens on TCP ``port`` (from /proc)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # LISTEN
                    inodes.add(inode)
    found: set[int] = set()
    if not inodes:
        return found
    targets = {f"socket:[{inode}]" for inode in inodes}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in targets:
                        found.add(int(entry.name))
                        break
    return found


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    return int(stat.rpartition(")")[2].split()[1])


def _is_ours(pid: int) -> bool:
    command = _cmdline(pid)
    return any(name in command for name in OUR_COMMANDS)


def _is_worker(pid: int) -> bool:
    """A multiprocessing child (how Hypercorn and the supervisor start workers)."""
    return "spawn_main" in _cmdline(pid)
