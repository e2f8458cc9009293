"""Password hashing: argon2id, off the event loop, no timing oracle, re-hash on change."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time

import pytest

from quart_app.security.passwords import Passwords, lower_thread_priority


def make(**overrides: int) -> Passwords:
    params = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1, "threads": 2}
    params.update(overrides)
    return Passwords(**params)


async def test_hash_and_verify() -> None:
    passwords = make()
    await passwords.start()
    try:
        hashed = await passwords.hash("correct-horse")
        assert hashed.startswith("$argon2id$")
        assert await passwords.verify(hashed, "correct-horse")
        assert not await passwords.verify(hashed, "wrong-horse")
        assert not await passwords.verify("not-a-hash", "correct-horse")
    finally:
        await passwords.stop()


async def test_unknown_user_is_verified_against_a_dummy_hash() -> None:
    passwords = make()
    await passwords.start()
    calls: list[str] = []
    original = passwords._verify

    def spy(password_hash: str, password: str) -> bool:
        calls.append(password_hash)
        return original(password_hash, password)

    passwords._verify = spy  # type: ignore[method-assign]
    try:
        assert not await passwords.verify(None, "whatever-password")
        assert len(calls) == 1 and calls[0].startswith("$argon2id$")
    finally:
        await passwords.stop()


@pytest.mark.serial  # the loop's ticks are compared with the wall time
async def test_hashing_runs_in_the_pool_not_on_the_loop() -> None:
    passwords = make(time_cost=3, memory_cost=32 * 1024)
    await passwords.start()
    threads: set[str] = set()
    real = passwords.hasher

    class Spy:
        def hash(self, password: str) -> str:
            threads.add(threading.current_thread().name)
            return real.hash(password)

    passwords.hasher = Spy()  # type: ignore[assignment]
    try:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        task = asyncio.create_task(ticker())
        started = time.monotonic()
        await asyncio.gather(*(passwords.hash(f"password-{i}") for i in range(4)))
        elapsed = time.monotonic() - started
        task.cancel()
        assert all(name.startswith("argon2") for name in threads)
        # The loop kept running while hashing: it ticked through most of the time.
        assert ticks > elapsed / 0.001 * 0.2
    finally:
        await passwords.stop()


async def test_needs_rehash_when_parameters_change() -> None:
    old = make(time_cost=1)
    await old.start()
    try:
        hashed = await old.hash("correct-horse")
    finally:
        await old.stop()
    assert not old.needs_rehash(hashed)
    assert make(time_cost=2).needs_rehash(hashed)


def own_priority() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux's")
async def test_hashing_threads_run_nicer_than_the_event_loop() -> None:
    loop_priority = own_priority()
    passwords = make(nice=5)
    await passwords.start()
    try:
        assert passwords._pool is not None
        loop = asyncio.get_running_loop()
        in_pool = await asyncio.gather(
            *(loop.run_in_executor(passwords._pool, own_priority) for _ in range(4))
        )
        assert set(in_pool) == {min(19, loop_priority + 5)}
        assert own_priority() == loop_priority  # the loop's thread is untouched
    finally:
        await passwords.stop()


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux's")
def test_nice_zero_leaves_the_thread_alone() -> None:
    before = own_priority()
    lower_thread_priority(0)
    assert own_priority() == before
