"""Authenticated WebSockets on 2 Hypercorn workers: how many, how much memory, how fast
they close when their token is revoked, and the echo round trip.

    python -m benchmarks.ws_sockets                 # 10,000 sockets, SQLite profile
    python -m benchmarks.ws_sockets --stores shared # PostgreSQL + Redis
    python -m benchmarks.ws_sockets --smoke         # 200 sockets, a quick check

What one run does against ``/ws`` of quart_app under hypercorn.toml (2 workers), all from
one client process on loopback (``websockets``, no compression, source addresses spread
over 127.0.0.1-8 so that ephemeral ports never run short):

1. opens ``--family`` sockets (default 1,000) on one login's access token and measures the
   echo round trip on all of them at once (each sends ``--echo-rounds`` echoes in turn);
2. opens the rest, up to ``--sockets`` (default 10,000), on a second login's token, and
   reads the workers' RSS: the growth over the RSS before the first socket, per socket;
3. logs the first login out (its access token and refresh family revoked, on whichever
   worker answers) and times until every socket of that family got ``{"type":
   "revoked"}``; the others must stay open;
4. changes the password (every earlier token of the user revoked) and times until the
   remaining sockets got theirs;
5. with ``--deflate`` sockets (default 1,000), what permessage-deflate (which browsers
   always offer) costs per socket once the server has sent one message.

Prints one JSON object per line (the last one: every figure) and, with ``--out``, writes
it to that file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidMessage

from benchmarks.servers import Server, rss_mib, target_specs
from benchmarks.tools import raise_nofile

#: Loopback source addresses the sockets are spread over.
SOURCES = [f"127.0.0.{i}" for i in range(1, 9)]
#: Handshakes in flight at once while opening.
OPENING = 200
WAIT = 60.0
TARGETS = {"local": "quart-hypercorn", "shared": "quart-hypercorn-pg"}


@dataclass
class Figures:
    stores: str
    sockets_target: int
    sockets_held: int = 0
    open_seconds: float = 0.0
    rss_before_mib: float = 0.0
    rss_held_mib: float = 0.0
    rss_per_socket_kib: float = 0.0
    echo_sockets: int = 0
    echo_round_trips: int = 0
    echo_p50_ms: float = 0.0
    echo_p99_ms: float = 0.0
    echo_per_second: float = 0.0
    family_sockets: int = 0
    family_close_p50_seconds: float = 0.0
    family_close_seconds: float = 0.0
    others_open_after_family: int = 0
    user_sockets: int = 0
    user_close_p50_seconds: float = 0.0
    user_close_seconds: float = 0.0
    server_cpu_us_per_close: float = 0.0
    close_codes: dict[str, int] = field(default_factory=dict)
    deflate_sockets: int = 0
    deflate_rss_per_socket_kib: float = 0.0
    handshake_retries: int = 0
    handshake_failures: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://", 1) + "/ws"


async def open_many(
    base: str,
    token: str,
    count: int,
    *,
    first: int = 0,
    compression: str | None = None,
    failures: list[str] | None = None,
) -> list[ClientConnection]:
    """``count`` sockets on ``token``, each past its ``ready`` message."""
    gate = asyncio.Semaphore(OPENING)
    failures = [] if failures is None else failures
    headers = {"Authorization": f"Bearer {token}"}

    async def one(index: int) -> ClientConnection:
        async with gate:
            for attempt in range(1, 4):
                try:
                    ws = await connect(
                        ws_url(base),
                        additional_headers=headers,
                        compression=compression,
                        ping_interval=None,
                        open_timeout=WAIT,
                        close_timeout=WAIT,
                        max_queue=4,
                        local_addr=(SOURCES[index % len(SOURCES)], 0),
                    )
                    break
                except (InvalidMessage, OSError) as error:
                    # Counted and reported: a handshake the server dropped is a finding.
                    failures.append(f"{type(error).__name__}: {error}")
                    if attempt == 3:
                        raise
            ready = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
            if ready.get("type") != "ready":
                raise RuntimeError(f"expected ready, got {ready}")
            return ws

    return list(await asyncio.gather(*(one(first + i) for i in range(count))))


async def echo_round_trips(sockets: Sequence[ClientConnection], rounds: int) -> list[float]:
    """Every socket sends ``rounds`` echoes one after the other, all sockets at once."""

    async def one(ws: ClientConnection) -> list[float]:
        times = []
        for i in range(rounds):
            started = time.perf_counter()
            await ws.send(json.dumps({"type": "echo", "data": i}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
            times.append(time.perf_counter() - started)
            if reply != {"type": "echo", "data": i}:
                raise RuntimeError(f"bad echo {reply}")
        return times

    return [t for times in await asyncio.gather(*(one(ws) for ws in sockets)) for t in times]


async def ended(
    sockets: Sequence[ClientConnection], since: float, codes: dict[str, int]
) -> tuple[float, float]:
    """Seconds from ``since`` until half, and the last, of ``sockets`` got their
    ``revoked`` message."""

    async def one(ws: ClientConnection) -> float:
        message = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        at = time.perf_counter()
        if message.get("type") != "revoked":
            raise RuntimeError(f"expected revoked, got {message}")
        await asyncio.wait_for(ws.wait_closed(), WAIT)
        key = f"{ws.close_code} {ws.close_reason}"
        codes[key] = codes.get(key, 0) + 1
        return at - since

    delays = await asyncio.gather(*(one(ws) for ws in sockets))
    return statistics.median(delays), max(delays)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def worker_rss(server: Server) -> float:
    _, workers = server.pids()
    return sum(rss_mib(workers).values())


async def settle_rss(server: Server) -> float:
    """The workers' RSS once it has stopped moving (allocations of the last burst)."""
    last = worker_rss(server)
    for _ in range(20):
        await asyncio.sleep(0.5)
        now = worker_rss(server)
        if abs(now - last) < 0.25:
            return now
        last = now
    return last


async def close_all(sockets: Sequence[ClientConnection]) -> None:
    with contextlib.suppress(Exception):
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


async def measure(server: Server, figures: Figures, opts: argparse.Namespace) -> None:
    base = server.base_url
    password, changed = uuid.uuid4().hex, uuid.uuid4().hex
    user = {"username": f"ws_{uuid.uuid4().hex[:12]}", "password": password}
    async with httpx.AsyncClient(base_url=base, timeout=WAIT) as http:
        answers = [await http.post(path, json=user) for path in ("/register", "/login", "/login")]
        for answer in answers:  # what a busy server said goes to the report
            assert answer.status_code in (200, 201), f"{answer.status_code} {answer.text[:200]}"
        first, second = answers[1].json(), answers[2].json()
        # Warm-up: the first handshakes and messages allocate what every later one reuses.
        await close_all(await open_many(base, second["access_token"], 100))
        figures.rss_before_mib = await settle_rss(server)

        family_count = min(opts.family, opts.sockets)
        dropped: list[str] = []
        family = await open_many(base, first["access_token"], family_count, failures=dropped)
        started = time.perf_counter()
        trips = await echo_round_trips(family[: opts.echo], opts.echo_rounds)
        figures.echo_per_second = len(trips) / (time.perf_counter() - started)
        figures.echo_sockets, figures.echo_round_trips = min(opts.echo, len(family)), len(trips)
        figures.echo_p50_ms = percentile(trips, 0.50) * 1000
        figures.echo_p99_ms = percentile(trips, 0.99) * 1000

        started = time.perf_counter()
        rest = await open_many(
            base,
            second["access_token"],
            opts.sockets - family_count,
            first=family_count,
            failures=dropped,
        )
        figures.handshake_retries = len(dropped)
        for reason in dropped:
            figures.handshake_failures[reason] = figures.handshake_failures.get(reason, 0) + 1
        figures.open_seconds = time.perf_counter() - started
        figures.sockets_held = len(family) + len(rest)
        figures.rss_held_mib = await settle_rss(server)
        grown = figures.rss_held_mib - figures.rss_before_mib
        figures.rss_per_socket_kib = grown * 1024 / max(1, figures.sockets_held)
        print(json.dumps({"held": figures.sockets_held, "rss_mib": figures.rss_held_mib}))

        cpu_before = server.cpu_seconds()
        response = await http.post(
            "/logout", headers={"Authorization": f"Bearer {first['access_token']}"}
        )
        since = time.perf_counter()
        assert response.status_code == 200, response.text
        figures.family_sockets = len(family)
        figures.family_close_p50_seconds, figures.family_close_seconds = await ended(
            family, since, figures.close_codes
        )
        figures.others_open_after_family = sum(ws.close_code is None for ws in rest)

        response = await http.put(
            "/me/password",
            headers={"Authorization": f"Bearer {second['access_token']}"},
            json={"old_password": password, "new_password": changed},
        )
        since = time.perf_counter()
        assert response.status_code == 200, response.text
        figures.user_sockets = len(rest)
        if rest:
            figures.user_close_p50_seconds, figures.user_close_seconds = await ended(
                rest, since, figures.close_codes
            )
        # The server's own cost of ending a socket, whatever the client's speed.
        closed = figures.family_sockets + figures.user_sockets
        figures.server_cpu_us_per_close = (server.cpu_seconds() - cpu_before) / closed * 1e6

        if opts.deflate:
            third = (await http.post("/login", json={**user, "password": changed})).json()
            await deflate_round(server, figures, opts, third["access_token"])


async def deflate_round(
    server: Server, figures: Figures, opts: argparse.Namespace, token: str
) -> None:
    before = await settle_rss(server)
    sockets = await open_many(server.base_url, token, opts.deflate, compression="deflate")
    after = await settle_rss(server)
    figures.deflate_sockets = len(sockets)
    figures.deflate_rss_per_socket_kib = (after - before) * 1024 / max(1, len(sockets))
    await close_all(sockets)


async def run_profile(stores: str, opts: argparse.Namespace, workdir: Path) -> Figures:
    spec = target_specs()[TARGETS[stores]]
    server = Server(spec, workdir, secret="ws-bench-" + uuid.uuid4().hex)
    figures = Figures(stores=stores, sockets_target=opts.sockets)
    await asyncio.to_thread(server.start)  # it runs an event loop of its own
    try:
        await measure(server, figures, opts)
    except Exception as error:
        figures.errors.append(f"{type(error).__name__}: {error}"[:500])
        figures.errors.append("server log: " + server.log_tail(15)[-3000:])
    finally:
        await asyncio.to_thread(server.stop)
    return figures


# -- as a scenario of `make bench` (benchmarks.run) --------------------------------------


def _runner_measure(
    runner: Any, scenario: Any, variant: Any, server: Server, rnd: int
) -> list[Any]:
    """One round on the runner's server: the echo row, with the other figures beside it."""
    from benchmarks.report import Record

    smoke = bool(runner.opts.smoke)
    opts = parse_args(["--smoke"] if smoke else [])
    figures = Figures(stores="shared" if server.stores else "local", sockets_target=opts.sockets)
    started = time.perf_counter()
    try:
        asyncio.run(measure(server, figures, opts))
    except Exception as error:
        figures.errors.append(f"{type(error).__name__}: {error}"[:500])
    extra = {
        "sockets held": f"{figures.sockets_held:,} of {figures.sockets_target:,}",
        "RSS per socket": f"{figures.rss_per_socket_kib:.1f} KiB",
        "revoked family closed": (
            f"{figures.family_sockets:,} sockets, half in {figures.family_close_p50_seconds:.2f} s,"
            f" all in {figures.family_close_seconds:.2f} s"
        ),
        "revoked user closed": (
            f"{figures.user_sockets:,} sockets, half in {figures.user_close_p50_seconds:.2f} s,"
            f" all in {figures.user_close_seconds:.2f} s"
        ),
        "server CPU per close": f"{figures.server_cpu_us_per_close:,.0f} µs",
        "permessage-deflate RSS per socket": f"{figures.deflate_rss_per_socket_kib:.1f} KiB",
    }
    if figures.handshake_retries:
        extra["handshakes retried"] = str(figures.handshake_retries)
    if figures.errors:
        extra["errors"] = " | ".join(figures.errors)[:300]
    return [
        Record(
            scenario=scenario.key,
            target=variant.target,
            variant=variant.label,
            round=rnd,
            tool="websockets",
            connections=figures.echo_sockets,
            seconds=time.perf_counter() - started,
            requests=figures.echo_round_trips,
            rps=figures.echo_per_second,
            p50_ms=figures.echo_p50_ms,
            p99_ms=figures.echo_p99_ms,
            errors=len(figures.errors),
            extra=extra,
        )
    ]


def scenarios(opts: Any) -> list[Any]:
    """The runner's scenario: this module's measurement on both storage profiles."""
    from benchmarks.scenarios import Scenario, Variant

    return [
        Scenario(
            "ws-sockets",
            "WebSockets: 10,000 authenticated sockets on 2 workers",
            "python -m benchmarks.ws_sockets: /ws echo round trip with 1,000 sockets echoing at"
            " once (10 each, one after the other), then 10,000 sockets held from one client"
            " process (websockets, no compression, sources 127.0.0.1-8): workers' RSS growth"
            " per socket, time from a logout's 200 until the 1,000 sockets of its family got"
            " their revoked message, then the same for the other 9,000 after a password"
            " change; permessage-deflate's RSS per socket on 1,000 more",
            "custom",
            (
                Variant("quart-hypercorn", "/ws, SQLite", "/ws"),
                Variant("quart-hypercorn-pg", "/ws, PostgreSQL + Redis", "/ws"),
            ),
            rounds=1,
            measure=_runner_measure,
        )
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=10_000, help="sockets held (10,000)")
    parser.add_argument("--family", type=int, default=1_000, help="sockets of the revoked login")
    parser.add_argument("--echo", type=int, default=1_000, help="sockets echoing at once")
    parser.add_argument("--echo-rounds", type=int, default=10, help="echoes per socket")
    parser.add_argument("--deflate", type=int, default=1_000, help="permessage-deflate sockets")
    parser.add_argument(
        "--stores",
        choices=["local", "shared", "both"],
        default="local",
        help="SQLite + in-process (local), PostgreSQL + Redis (shared), or both",
    )
    parser.add_argument("--smoke", action="store_true", help="200 sockets, for a quick check")
    parser.add_argument("--out", type=Path, help="also write the figures (JSON) here")
    opts = parser.parse_args(argv)
    if opts.smoke:
        opts.sockets, opts.family, opts.echo, opts.echo_rounds, opts.deflate = 200, 50, 50, 3, 20
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    raise_nofile()
    profiles = ["local", "shared"] if opts.stores == "both" else [opts.stores]
    results = []
    with tempfile.TemporaryDirectory(prefix="ws-bench-") as workdir:
        for stores in profiles:
            figures = asyncio.run(run_profile(stores, opts, Path(workdir)))
            results.append(asdict(figures))
            print(json.dumps(results[-1]), flush=True)
    if opts.out:
        opts.out.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
