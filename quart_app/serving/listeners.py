"""The master's listening sockets: a taken address fails at once, naming its holder.

Each worker slot gets its own ``SO_REUSEPORT`` socket per address (on Linux with more
than one worker), so the kernel spreads new connections evenly across workers; the
master keeps every socket open for its whole life and hands slot *i*'s sockets to each
worker that fills slot *i*. When a worker dies or is replaced by a reload, its socket
stays open and listening: connections queued on it are served by its successor, which
is forked from the preloaded process. (Closing it instead resets the connections queued
on it: Linux migrates them to a sibling only with ``net.ipv4.tcp_migrate_req=1``.)

**Steering** (:meth:`Listeners.steer`): while a slot has no serving worker (it died, or
its successor is starting), the master attaches a classic BPF program to each address's
reuseport group (``SO_ATTACH_REUSEPORT_CBPF``) that hands every new connection to a
random socket among the slots that serve; once every slot serves again it detaches it
(``SO_DETACH_REUSEPORT_BPF``). So no new connection waits for a replacement and none is
refused; what the kernel queued on a dead worker's socket before the program was in
place, the master takes and hands over (supervisor.py, :meth:`idle_sockets`). The
program returns an index into the kernel's array of the group's sockets, which is in
``listen()`` order, and closing a socket moves the last one into its place
(net/core/sock_reuseport.c); :attr:`Listeners._order` follows both. An index the
kernel does not have falls back to its hash, as without a program. A group holds one
program: one attached by another tool on these sockets would be replaced
(``REUSEPORT_STEERING=false`` leaves the groups alone).

``SO_REUSEPORT`` also lets a second server (or the orphaned workers of a dead one) bind
the same port silently and take half the traffic. So before binding, every address is
probe-bound *without* ``SO_REUSEPORT``: that fails if anything listens there, however
it bound, and :func:`describe_holder` names it from ``/proc``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import platform
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path

from hypercorn.config import Config, Sockets

OUR_COMMANDS = ("quart_app.serving", "hypercorn", "quart_app.asgi")
SO_ATTACH_REUSEPORT_CBPF = 51
SO_DETACH_REUSEPORT_BPF = 68
log = logging.getLogger("quart_app.serving")


class AddressInUse(Exception):
    """An address to listen on is taken; the message names it and its holder."""


@dataclass
class Listeners:
    """Slot-indexed listening sockets; slot sockets are created on first use."""

    config: Config
    per_slot: bool
    steering: bool = True
    _slots: dict[int, Sockets] = field(default_factory=dict)
    #: Slots in the order of their sockets in the kernel's reuseport arrays.
    _order: list[int] = field(default_factory=list)
    #: The kernel indexes new connections are steered to (None: no program attached).
    steered_to: tuple[int, ...] | None = None

    @classmethod
    def open(cls, config: Config, *, steering: bool = True) -> Listeners:
        for bind in [*config.bind, *config.insecure_bind]:
            probe(bind)
        per_slot = config.workers > 1 and platform.system() == "Linux"
        listeners = cls(config, per_slot, steering=steering and per_slot)
        listeners.sockets(0)
        return listeners

    def sockets(self, slot: int) -> Sockets:
        key = slot if self.per_slot else 0
        if key not in self._slots:
            self._slots[key] = self._create()
            self._order.append(key)
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
            # The kernel moves the last socket of the array into the closed one's place.
            index = self._order.index(key)
            self._order[index] = self._order[-1]
            self._order.pop()

    def close(self) -> None:
        for sockets in self._slots.values():
            _close(sockets)
        self._slots.clear()
        self._order.clear()
        self.steered_to = None

    def idle_sockets(self, serving: set[int]) -> list[socket.socket]:
        """The plain-TCP sockets of the slots not in ``serving`` (non-blocking: the
        master only takes what is queued; a TLS connection is left to the replacement)."""
        found = []
        for key, sockets in self._slots.items():
            if key not in serving:
                for sock in sockets.insecure_sockets:
                    sock.setblocking(False)
                    found.append(sock)
        return found

    def steer(self, serving: set[int]) -> bool:
        """New connections to the sockets of the ``serving`` slots only, while another
        slot has a socket; to every socket when all serve (or none does). True if the
        program changed."""
        if not self.steering or not self._order:
            return False
        live = [index for index, key in enumerate(self._order) if key in serving]
        wanted = tuple(live) if live and len(live) < len(self._order) else None
        if wanted == self.steered_to:
            return False
        group = self._slots[self._order[0]]
        try:
            for sock in [*group.secure_sockets, *group.insecure_sockets]:
                if wanted is None:
                    with contextlib.suppress(FileNotFoundError):  # nothing attached
                        sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, 0)
                else:
                    attach_program(sock, steering_program(wanted))
        except OSError as error:
            log.warning("steering new connections away from starting workers is off: %s", error)
            self.steering = False
            return False
        self.steered_to = wanted
        return True


# Classic BPF (linux/filter.h): opcodes, and the ancillary load of a random number.
_BPF_LD_W_ABS = 0x00 | 0x00 | 0x20
_BPF_ALU_MOD_K = 0x04 | 0x90 | 0x00
_BPF_JMP_JEQ_K = 0x05 | 0x10 | 0x00
_BPF_RET_K = 0x06 | 0x00
_SKF_AD_RANDOM = -0x1000 + 56


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k & 0xFFFFFFFF)


def steering_program(indexes: tuple[int, ...]) -> bytes:
    """Classic BPF instructions returning one of ``indexes`` at random.

    ``ld rand; mod #n`` then, for each of the first n-1 values, ``jeq #i`` to its
    ``ret #index``; the last ``ret`` takes what is left.
    """
    if len(indexes) == 1:
        return _insn(_BPF_RET_K, 0, 0, indexes[0])
    code = [
        _insn(_BPF_LD_W_ABS, 0, 0, _SKF_AD_RANDOM),
        _insn(_BPF_ALU_MOD_K, 0, 0, len(indexes)),
    ]
    for value, index in enumerate(indexes[:-1]):
        code += [_insn(_BPF_JMP_JEQ_K, 0, 1, value), _insn(_BPF_RET_K, 0, 0, index)]
    code.append(_insn(_BPF_RET_K, 0, 0, indexes[-1]))
    return b"".join(code)


def attach_program(sock: socket.socket, code: bytes) -> None:
    """``SO_ATTACH_REUSEPORT_CBPF`` on ``sock``'s group (the kernel copies the program)."""
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HP", len(code) // 8, ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)


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
