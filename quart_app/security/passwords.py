"""argon2id password hashing, off the event loop in a bounded thread pool.

argon2-cffi releases the GIL while hashing, so ``threads`` hashes run truly in parallel
and the event loop keeps serving token checks meanwhile. Each hash is milliseconds of CPU,
so a storm of logins would still take the cores from the event loop: on Linux the pool's
threads lower their own priority by ``nice`` (the nice value is per thread there), so the
scheduler runs the loop first whenever it has work and the hashes use the rest.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from . import werkzeug_hashes

log = logging.getLogger(__name__)


class HashObserver(Protocol):
    """Told about the pool's queue and each hash's wait and run time (for metrics)."""

    def queue_depth(self, depth: int) -> None: ...

    def hashed(self, operation: str, waited: float, ran: float) -> None: ...


def _timed(observer: HashObserver, operation: str, func: Any, queued: float, *args: str) -> Any:
    started = time.perf_counter()
    try:
        return func(*args)
    finally:
        observer.hashed(operation, started - queued, time.perf_counter() - started)


def lower_thread_priority(nice: int) -> None:
    """Make the calling thread ``nice`` steps nicer (Linux only; other threads unchanged)."""
    if nice <= 0 or sys.platform != "linux":
        return
    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + nice))
    except OSError as exc:  # e.g. a seccomp profile without setpriority
        log.warning("could not lower the hashing thread's priority: %s", exc)


class Passwords:
    def __init__(
        self, *, time_cost: int, memory_cost: int, parallelism: int, threads: int, nice: int = 0
    ) -> None:
        self.hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self.threads = max(1, threads)
        self.nice = nice
        self._pool: ThreadPoolExecutor | None = None
        self._dummy_hash: str | None = None
        #: Hashes waiting for or running in the pool (for metrics and load shedding).
        self.in_flight = 0
        self.observer: HashObserver | None = None

    async def start(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                self.threads,
                thread_name_prefix="argon2",
                initializer=lower_thread_priority,
                initargs=(self.nice,),
            )
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(16))

    async def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    async def _run(self, func: object, *args: str) -> object:
        if self._pool is None:
            raise RuntimeError("the password pool is not started (is the app serving?)")
        observer = self.observer
        self.in_flight += 1
        if observer is not None:
            observer.queue_depth(self.in_flight)
        try:
            loop = asyncio.get_running_loop()
            if observer is None:
                return await loop.run_in_executor(self._pool, func, *args)  # type: ignore[arg-type]
            operation = getattr(func, "__name__", "hash").lstrip("_")
            return await loop.run_in_executor(
                self._pool,
                _timed,
                observer,
                operation,
                func,
                time.perf_counter(),
                *args,
            )
        finally:
            self.in_flight -= 1
            if observer is not None:
                observer.queue_depth(self.in_flight)

    async def hash(self, password: str) -> str:
        return str(await self._run(self.hasher.hash, password))

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True if ``password`` matches. With no hash (unknown user) a dummy hash is
        verified anyway, so the answer takes the same time either way."""
        target = password_hash if password_hash is not None else self._dummy_hash
        if target is None:
            raise RuntimeError("the password pool is not started (is the app serving?)")
        try:
            matched = bool(await self._run(self._verify, target, password))
        except InvalidHashError:
            log.error("a stored password hash is neither argon2 nor a supported Werkzeug hash")
            return False
        return matched and password_hash is not None

    def _verify(self, password_hash: str, password: str) -> bool:
        if not password_hash.startswith("$argon2"):
            # Imported from the Flask app: a Werkzeug hash, re-hashed at the next login.
            try:
                return werkzeug_hashes.verify(password_hash, password)
            except werkzeug_hashes.UnsupportedHash:
                raise InvalidHashError from None
        try:
            return self.hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with other parameters than the current ones, or is
        not argon2id at all (a Werkzeug hash imported from the Flask app)."""
        try:
            return self.hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True
