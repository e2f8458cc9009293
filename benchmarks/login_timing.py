"""Does the time a failed login takes tell whether the username exists?

Against a real server (Hypercorn, two workers, the default argon2id cost), each of
``--tries`` pairs sends one wrong password for a registered username and one for an
unknown username of the same length, in random order, one after the other on one
keep-alive connection, and keeps the difference of the two answer times. Every name is
tried once, so no lock is involved; the per-network block is off for the run (every try
comes from one loopback address). Prints both medians, the median paired difference
with a bootstrap 95% interval, and in how many pairs the registered name was slower
(about half when timing tells nothing)::

    .venv/bin/python -m benchmarks.login_timing            # SQLite
    .venv/bin/python -m benchmarks.login_timing --target quart-hypercorn-pg
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import httpx

from benchmarks.servers import Server, target_specs

WRONG = "not-the-password"
PASSWORD = "correct horse battery"


def _median_ci(diffs: list[float], rng: random.Random, rounds: int = 2000) -> tuple[float, float]:
    medians = sorted(statistics.median(rng.choices(diffs, k=len(diffs))) for _ in range(rounds))
    return medians[int(rounds * 0.025)], medians[int(rounds * 0.975)]


async def _measure(url: str, tries: int, rng: random.Random) -> dict[str, float]:
    known = [f"known{n:04d}" for n in range(tries)]
    ghosts = [f"ghost{n:04d}" for n in range(tries)]
    limits = httpx.Limits(max_connections=8)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        for start in range(0, tries, 8):
            created = await asyncio.gather(
                *(
                    http.post("/register", json={"username": name, "password": PASSWORD})
                    for name in known[start : start + 8]
                )
            )
            assert all(r.status_code == 201 for r in created), created[0].text
        for n in range(10):  # warm up both paths
            await http.post("/login", json={"username": f"warmup{n:04d}", "password": WRONG})
        times: dict[str, list[float]] = {"known": [], "unknown": []}
        diffs = []
        for name, ghost in zip(known, ghosts, strict=True):
            pair = [("known", name), ("unknown", ghost)]
            rng.shuffle(pair)
            took = {}
            for kind, username in pair:
                started = time.perf_counter()
                response = await http.post("/login", json={"username": username, "password": WRONG})
                took[kind] = time.perf_counter() - started
                assert response.status_code == 401, response.text
                times[kind].append(took[kind])
            diffs.append(took["known"] - took["unknown"])
    low, high = _median_ci(diffs, rng)
    return {
        "known": statistics.median(times["known"]),
        "unknown": statistics.median(times["unknown"]),
        "diff": statistics.median(diffs),
        "low": low,
        "high": high,
        "slower": sum(d > 0 for d in diffs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=200, help="pairs (default 200)")
    parser.add_argument("--target", default="quart-hypercorn", help="a benchmarks target key")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    spec = target_specs()[args.target]
    spec = replace(spec, env={**spec.env, "LOGIN_SOURCE_BLOCK_THRESHOLD": "0"})
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="login-timing-") as workdir:
        server = Server(spec, Path(workdir), secrets.token_hex(32))
        server.start()
        try:
            result = asyncio.run(_measure(server.base_url, args.tries, rng))
        finally:
            server.stop()
    ms = {key: value * 1000 for key, value in result.items() if key != "slower"}
    print(f"{spec.label}: {args.tries} pairs of failed logins")
    print(f"  median, registered username: {ms['known']:.2f} ms")
    print(f"  median, unknown username:    {ms['unknown']:.2f} ms")
    print(
        f"  median paired difference:    {ms['diff']:+.2f} ms"
        f" (95% CI {ms['low']:+.2f} to {ms['high']:+.2f} ms)"
    )
    print(f"  registered slower in {result['slower']} of {args.tries} pairs")


if __name__ == "__main__":
    main()
