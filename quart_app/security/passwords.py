"""argon2id password hashing, off the event loop in a bounded thread pool.

argon2-cffi releases the GIL while hashing, so ``threads`` hashes run truly in parallel
and the event loop keeps serving token checks meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

log = logging.getLogger(__name__)


class Passwords:
    def __init__(self, *, time_cost: int, memory_cost: int, parallelism: int, threads: int) -> None:
        self.hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self.threads = max(1, threads)
        self._pool: ThreadPoolExecutor | None = None
        self._dummy_hash: str | None = None
        #: Hashes waiting for or running in the pool (for metrics and load shedding).
        self.in_flight = 0

    async def start(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="argon2")
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(16))

    async def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    async def _run(self, func: object, *args: str) -> object:
        if self._pool is None:
            raise RuntimeError("the password pool is not started (is the app serving?)")
        self.in_flight += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, func, *args)  # type: ignore[arg-type]
        finally:
            self.in_flight -= 1

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
            log.error("a stored password hash is not a valid argon2 hash")
            return False
        return matched and password_hash is not None

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with other parameters than the current ones."""
        try:
            return self.hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True
