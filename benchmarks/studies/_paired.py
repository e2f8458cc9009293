"""Paired timing: does how long an answer takes tell a registered name from an unknown one?

Each pair times one request for a registered name and one for an unknown name of the
same length, in random order, one after the other, and keeps the difference of the two
answer times. The summary has both medians, the median paired difference with a
bootstrap 95% interval, and in how many pairs the registered name was slower (about half
when timing tells nothing). Used by ``login_timing`` and ``forgot_timing``.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence

import httpx


def median_ci(diffs: list[float], rng: random.Random, rounds: int = 2000) -> tuple[float, float]:
    medians = sorted(statistics.median(rng.choices(diffs, k=len(diffs))) for _ in range(rounds))
    return medians[int(rounds * 0.025)], medians[int(rounds * 0.975)]


async def time_pairs(
    known: Sequence[str],
    unknown: Sequence[str],
    send: Callable[[str], Awaitable[httpx.Response]],
    *,
    status: int,
    rng: random.Random,
    gap: float | None = None,
) -> dict[str, float]:
    """Time ``send(name)`` for each pair of ``known`` and ``unknown`` names (every answer
    must have ``status``), sleeping ``gap`` seconds after each request when given; the
    summary: ``known``/``unknown`` medians, median ``diff`` with its interval
    ``low``..``high`` (seconds), and the count of pairs where the known name was ``slower``.
    """
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    diffs = []
    for name, ghost in zip(known, unknown, strict=True):
        pair = [("known", name), ("unknown", ghost)]
        rng.shuffle(pair)
        took = {}
        for kind, username in pair:
            started = time.perf_counter()
            response = await send(username)
            took[kind] = time.perf_counter() - started
            assert response.status_code == status, response.text
            times[kind].append(took[kind])
            if gap is not None:
                await asyncio.sleep(gap)
        diffs.append(took["known"] - took["unknown"])
    low, high = median_ci(diffs, rng)
    return {
        "known": statistics.median(times["known"]),
        "unknown": statistics.median(times["unknown"]),
        "diff": statistics.median(diffs),
        "low": low,
        "high": high,
        "slower": sum(d > 0 for d in diffs),
    }


def print_pairs(result: dict[str, float], tries: int, known_label: str) -> None:
    """The summary lines of :func:`time_pairs` (after the caller's title line)."""
    ms = {key: result[key] * 1000 for key in ("known", "unknown", "diff", "low", "high")}
    width = max(len(known_label), len("unknown username"))
    print(f"  median, {known_label + ':':<{width + 1}} {ms['known']:.2f} ms")
    print(f"  median, {'unknown username:':<{width + 1}} {ms['unknown']:.2f} ms")
    print(
        f"  median paired difference:    {ms['diff']:+.2f} ms"
        f" (95% CI {ms['low']:+.2f} to {ms['high']:+.2f} ms)"
    )
    print(f"  registered slower in {int(result['slower'])} of {tries} pairs")
