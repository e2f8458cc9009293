"""Hostile WebSocket clients for the live memory-bound tests, and a worker RSS probe.

A deflate bomb needs frames no well-behaved client library sends (a permessage-deflate
message whose inflated size is a thousand times its wire size), so the handshake and the
frames are written by hand here (RFC 6455 section 5.2, RFC 7692).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import psutil

MiB = 2**20


@functools.cache
def deflate_bomb(wire_size: int = MiB) -> bytes:
    """A raw-deflate stream of about ``wire_size`` bytes that inflates about 1030-fold
    (zeros), ending with a sync flush whose final 4 bytes are cut as RFC 7692 says."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(16 * MiB)
    parts: list[bytes] = []
    size = 0
    while size < wire_size:
        part = compressor.compress(chunk)
        parts.append(part)
        size += len(part)
    parts.append(compressor.flush(zlib.Z_SYNC_FLUSH)[:-4])
    return b"".join(parts)


def _mask(payload: bytes, key: bytes) -> bytes:
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    masked = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return masked.to_bytes(len(payload), "big")


def frame(payload: bytes, *, opcode: int = 0x1, rsv1: bool = False, fin: bool = True) -> bytes:
    """One masked client frame."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", first, 0x80 | length)
    elif length < 2**16:
        header = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, length)
    key = os.urandom(4)
    return header + key + _mask(payload, key)


def handshake(
    host: str, port: int, *, deflate: bool = True, headers: dict[str, str] | None = None
) -> bytes:
    """The bytes of a WebSocket upgrade request to ``/ws``."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /ws HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if deflate:
        lines.append("Sec-WebSocket-Extensions: permessage-deflate")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def raw_socket(
    host: str, port: int, *, deflate: bool = True, headers: dict[str, str] | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """A handshake to ``/ws``: reader, writer and the server's response head."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(handshake(host, port, deflate=deflate, headers=headers))
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    return reader, writer, head


def send_and_read(host: str, port: int, message: bytes, timeout: float) -> tuple[bytes, bytes]:
    """Upgrade a plain blocking socket, send ``message`` from a second thread while this one
    reads: the response head and the first bytes the server sends after it.

    A server that closes the socket before the whole message is in (a limit it enforces as
    the frames arrive) makes the send fail with a broken pipe; what it sent before closing
    is still read here, which a stream whose writer failed first would no longer give."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(handshake(host, port))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                return head, b""
            head += chunk
        head, _, after = head.partition(b"\r\n\r\n")

        def send() -> None:
            with suppress(OSError):
                sock.sendall(message)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        try:
            return head + b"\r\n\r\n", after or sock.recv(64)
        finally:
            with suppress(OSError):  # not connected any more, once the server has reset it
                sock.shutdown(socket.SHUT_RDWR)
            sender.join(timeout)


async def send_bomb(host: str, port: int, wire_size: int = MiB) -> bytes:
    """Open an unauthenticated socket, send one deflate bomb; the handshake's head."""
    reader, writer, head = await raw_socket(host, port)
    try:
        if b" 101 " not in head.split(b"\r\n", 1)[0] + b" ":
            return head
        writer.write(frame(deflate_bomb(wire_size), rsv1=True))
        try:
            await asyncio.wait_for(writer.drain(), 60)
            # Whatever the server answers (a close frame, or nothing) within a while.
            await asyncio.wait_for(reader.read(65536), 15)
        except (ConnectionError, TimeoutError):
            pass
        return head
    finally:
        writer.close()


def workers(master_pid: int) -> list[psutil.Process]:
    """The Hypercorn worker processes under ``master_pid``."""
    return [
        child
        for child in psutil.Process(master_pid).children()
        if "resource_tracker" not in " ".join(child.cmdline())
    ]


def rss(pid: int) -> int:
    """VmRSS of ``pid`` in bytes, read from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise LookupError(f"no VmRSS for {pid}")


@contextmanager
def peak_growth(pids: list[int], interval: float = 0.01) -> Iterator[dict[int, int]]:
    """The largest VmRSS growth of each pid over the block, sampled every ``interval``
    (filled in when the block ends)."""
    base = {pid: rss(pid) for pid in pids}
    peak = dict(base)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for pid in pids:
                with suppress(OSError, LookupError):
                    peak[pid] = max(peak[pid], rss(pid))
            time.sleep(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    growth: dict[int, int] = {}
    try:
        yield growth
    finally:
        stop.set()
        sampler.join()
        for pid in pids:
            with suppress(OSError, LookupError):
                peak[pid] = max(peak[pid], rss(pid))
            growth[pid] = peak[pid] - base[pid]
