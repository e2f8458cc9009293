"""What the database's and Redis's circuit breakers share: open on a failure, probe in
the background every ``cooldown`` seconds, close on the first answer.

While open, callers answer at once without calling the dependency; no request ever waits
for a probe. Each breaker says what counts as a failure and how to probe
(quart_app/store/db.py, quart_app/store/redis_breaker.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable


class ProbingBreaker:
    """The state and the probe loop of a breaker; subclasses start the probe."""

    #: The name of the background probe task.
    task_name = "breaker-probe"

    def __init__(self, cooldown: float) -> None:
        self.cooldown = cooldown
        self.is_open = False
        #: How many times the breaker opened (for tests and the measurements).
        self.trips = 0
        self._opened_at = 0.0
        self._probe: asyncio.Task[None] | None = None

    def _open(self, log: logging.Logger, message: str, *args: object) -> None:
        """Open (the caller checked it was closed), warn, and start probing."""
        self.is_open = True
        self.trips += 1
        self._opened_at = time.monotonic()
        log.warning(message, *args)
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(
                self._probe_until_answered(), name=self.task_name
            )

    async def _probe_until_answered(self) -> None:
        raise NotImplementedError

    async def _probe_loop(
        self,
        ping: Callable[[], Awaitable[object]],
        limit: float,
        log: logging.Logger,
        failed: Callable[[Exception], None],
        answered: str,
    ) -> None:
        """Every ``cooldown`` seconds try ``ping()`` (each bounded by ``limit`` seconds); a failure
        goes to ``failed``, the first answer closes the breaker and logs ``answered``
        (with the seconds it was open)."""
        while True:
            await asyncio.sleep(self.cooldown)
            try:
                await asyncio.wait_for(ping(), limit)
            except Exception as error:  # any failure to answer: try again later
                failed(error)
                continue
            self.is_open = False
            log.warning(answered, time.monotonic() - self._opened_at)
            return

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe = None
