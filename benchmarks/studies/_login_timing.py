"""Does the time a failed login takes tell whether the username exists?

Against a real server (Hypercorn, two workers, the default argon2id cost), each of
``--tries`` pairs sends one wrong password for a registered username and one for an
unknown username of the same length, in random order, one after the other on one
keep-alive connection, and keeps the difference of the two answer times. Every name is
tried once, so no lock is involved; the per-network block is off for the run (every try
comes from one loopback address). Prints both medians, the median paired difference
with a bootstrap 95% interval, and in how many pairs the registered name was slower
(about half when timing tells nothing)::

    .venv/bin/python -m benchmarks.studies._login_timing            # SQLite
    .venv/bin/python -m benchmarks.studies._login_timing --target quart-hypercorn-pg
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import tempfile
from dataclasses import replace
from pathlib import Path

import httpx

from benchmarks.servers import Server, target_specs
from benchmarks.studies._paired import print_pairs, time_pairs

WRONG = "not-the-password"
PASSWORD = "correct horse battery"


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
        return await time_pairs(
            known,
            ghosts,
            lambda username: http.post("/login", json={"username": username, "password": WRONG}),
            status=401,
            rng=rng,
        )


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
    print(f"{spec.label}: {args.tries} pairs of failed logins")
    print_pairs(result, args.tries, "registered username")


if __name__ == "__main__":
    main()
