"""DPoP and the OAuth endpoints on live Hypercorn (two workers): the docs' client helper
run as written, a proof accepted once across workers and across two hosts sharing
PostgreSQL and Redis, and the attacks on client authentication and the metadata.

The tests that need a server with nothing but the JWT secret set share one for the module
(``plain_server``), each with users of its own; every other test starts its own."""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import re
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from quart_app.security.passwords import Passwords
from quart_app.startup.settings import DEFAULTS
from tests.helpers.backend_servers import PostgresRun, RedisRun, run
from tests.helpers.dpop_proofs import ProofKey
from tests.helpers.live import ROOT, Server, running, running_together
from tests.helpers.support import SECRET, unique_name

pytestmark = pytest.mark.live

ALICE = {"username": "alice", "password": "correct-horse"}
CLOSE = {"Connection": "close"}
#: Client secret of the introspection client the attack tests use (an argon2 hash of it
#: is configured, as a careful operator would).
GATEWAY_SECRET = "gateway-secret-" + "g" * 32


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


def new_user() -> dict[str, str]:
    """A user no other test registers (on a server tests share)."""
    return {"username": unique_name("user"), "password": "correct-horse"}


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Two workers with only the JWT secret set, for every test of the module that needs
    nothing else. Only the docs' helper logs in as "alice" on it (its five lines name
    her); the other tests register users of their own."""
    instance = tmp_path_factory.mktemp("dpop-plain") / "instance"
    with running(instance, workers=2, env={"JWT_SECRET_KEY": SECRET}) as server:
        yield server


def bound_login(
    base: str, key: ProofKey, public: str | None = None, user: dict[str, str] = ALICE
) -> str:
    proof = key.proof("POST", f"{public or base}/login")
    response = httpx.post(f"{base}/login", json=user, headers={"DPoP": proof}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"
    return str(response.json()["access_token"])


def test_docs_client_helper_runs_as_written(tmp_path: Path, plain_server: Server) -> None:
    """docs/dpop.md's helper and its five lines, against a live server."""
    helper, usage = python_blocks(ROOT / "docs" / "dpop.md")[:2]
    server = plain_server
    assert httpx.post(f"{server.url}/register", json=ALICE, timeout=60).status_code == 201
    namespace: dict[str, Any] = {"BASE": server.url}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(helper, "docs/dpop.md helper", "exec"), namespace)  # noqa: S102
        exec(compile(usage, "docs/dpop.md usage", "exec"), namespace)  # noqa: S102
    assert out.getvalue().strip() == "{'logged_in_as': 'alice'}"
    token = namespace["auth"].token
    stolen = httpx.get(
        f"{server.url}/protected", headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    assert stolen.status_code == 401
    # The helper answers a server nonce too (alice registered there as well).
    with running(
        tmp_path / "instance",
        workers=2,
        env={"JWT_SECRET_KEY": SECRET, "DPOP_NONCE_REQUIRED": "true"},
    ) as server:
        assert httpx.post(f"{server.url}/register", json=ALICE, timeout=60).status_code == 201
        namespace = {"BASE": server.url}
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(helper, "docs/dpop.md helper", "exec"), namespace)  # noqa: S102
            exec(compile(usage, "docs/dpop.md usage", "exec"), namespace)  # noqa: S102
        assert out.getvalue().strip() == "{'logged_in_as': 'alice'}"


def _fire(urls: list[str], token: str, proof: str) -> list[int]:
    """The same proof to every URL at once, each on a new connection."""
    headers = {"Authorization": f"DPoP {token}", "DPoP": proof, **CLOSE}

    def one(url: str) -> int:
        return httpx.get(url, headers=headers, timeout=60).status_code

    with concurrent.futures.ThreadPoolExecutor(len(urls)) as pool:
        return list(pool.map(one, urls))


def test_a_proof_is_accepted_once_across_the_workers(plain_server: Server) -> None:
    key = ProofKey("ES256")
    server, user = plain_server, new_user()
    assert httpx.post(f"{server.url}/register", json=user, timeout=60).status_code == 201
    token = bound_login(server.url, key, user=user)
    url = f"{server.url}/protected"
    # Warm both workers' caches (the fast path then answers), one proof per request.
    for _ in range(8):
        warm = httpx.get(
            url,
            headers={
                "Authorization": f"DPoP {token}",
                "DPoP": key.proof("GET", url, token),
                **CLOSE,
            },
            timeout=60,
        )
        assert warm.status_code == 200
    for _ in range(5):
        statuses = _fire([url] * 12, token, key.proof("GET", url, token))
        assert sorted(statuses) == [200] + [401] * 11, statuses


@pytest.fixture
def postgres(postgres_server: PostgresRun) -> PostgresRun:
    run(postgres_server.reset())
    return postgres_server


@pytest.mark.parametrize("with_redis", [True, False], ids=["redis", "sql"])
def test_a_proof_is_accepted_once_across_two_hosts(
    tmp_path: Path, postgres: PostgresRun, redis_server: RedisRun, with_redis: bool
) -> None:
    env = {
        "DATABASE_URL": postgres.url,
        "DATABASE_CREATE_TABLES": "false",
        "JWT_SECRET_KEY": SECRET,
        "RATELIMIT_AUTH_LIMIT": "10000",
        # What a load balancer's clients see: proofs name it, whichever host answers.
        "PUBLIC_URL": "http://api.example.test",
    }
    if with_redis:
        env.update(REDIS_URL=redis_server.url, REDIS_PREFIX=redis_server.next_prefix())
    key = ProofKey("EdDSA")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        running_together(
            Server(tmp_path / "a" / "instance", workers=2, env=env),
            Server(tmp_path / "b" / "instance", workers=2, env=env),
        ) as (one, two),
    ):
        assert httpx.post(f"{one.url}/register", json=ALICE, timeout=60).status_code == 201
        token = bound_login(one.url, key, "http://api.example.test")
        public = "http://api.example.test/protected"
        for _ in range(4):
            proof = key.proof("GET", public, token)
            statuses = _fire(
                [f"{one.url}/protected"] * 6 + [f"{two.url}/protected"] * 6, token, proof
            )
            assert sorted(statuses) == [200] + [401] * 11, statuses


@pytest.fixture
def argon2_hash() -> str:
    """What ``quart-app hash-secret`` prints for GATEWAY_SECRET: an argon2id hash with the
    service's own parameters (ARGON2_* defaults), as an operator would configure it."""
    passwords = Passwords(
        time_cost=DEFAULTS["ARGON2_TIME_COST"],
        memory_cost=DEFAULTS["ARGON2_MEMORY_COST"],
        parallelism=DEFAULTS["ARGON2_PARALLELISM"],
        threads=1,
    )
    return passwords.hasher.hash(GATEWAY_SECRET)


def _latency(url: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        response = httpx.post(f"{url}/login", json=ALICE, headers=CLOSE, timeout=60)
        assert response.status_code == 200, response.text
        times.append(time.perf_counter() - started)
    return times


def test_introspection_client_guessing_is_throttled(tmp_path: Path, argon2_hash: str) -> None:
    """600 wrong secrets: answered 429 (with Retry-After) long before the 600th."""
    env = {"JWT_SECRET_KEY": SECRET, "INTROSPECTION_CLIENTS": f"gateway:{argon2_hash}"}
    with running(tmp_path / "instance", workers=2, env=env) as server:
        url = f"{server.url}/oauth/introspect"
        statuses: list[int] = []
        with httpx.Client(timeout=60) as client:
            for attempt in range(600):
                response = client.post(
                    url,
                    data={"token": "x"},
                    auth=("gateway", f"wrong-{attempt:04d}-" + "w" * 30),
                )
                statuses.append(response.status_code)
                if response.status_code == 429:
                    assert int(response.headers["Retry-After"]) >= 1
        print(f"600 wrong secrets: {statuses.count(401)} x 401, {statuses.count(429)} x 429")
        # LOGIN_LOCKOUT_THRESHOLD (10) checks, then one more each time the back-off
        # (1 s, doubling) runs out while the guesses go on.
        assert statuses.count(401) <= 20
        assert statuses.count(429) >= 580
        # The right secret from this address is locked out too while the lock holds.
        locked = httpx.post(url, data={"token": "x"}, auth=("gateway", GATEWAY_SECRET), timeout=60)
        assert locked.status_code == 429


#: Threads sending wrong client secrets: more than the two workers' queues hold (one hash
#: and four waiting each), so the bounded run has some turned away whatever the split.
FLOOD_THREADS = 16
#: The flood lasts until it has had as many answers as threads and /login has then been
#: timed three times, or this long if that takes longer (reported when it happens).
FLOOD_CAP = 15.0


@dataclass
class Flood:
    quiet: float  # /login's median latency before the flood, in seconds
    loaded: float  # its median latency during the flood
    statuses: list[int]  # the flood's answers
    seconds: float  # how long the flood lasted
    capped: bool  # whether it ended at FLOOD_CAP, before the loaded logins were done


def _flood_server(tmp_path: Path, argon2_hash: str, slots: int) -> Server:
    env = {
        "JWT_SECRET_KEY": SECRET,
        "INTROSPECTION_CLIENTS": f"gateway:{argon2_hash}",
        "TRUSTED_PROXY_HOPS": "1",
        "LOGIN_LOCKOUT_THRESHOLD": "1000000",
        "LOGIN_SOURCE_BLOCK_THRESHOLD": "0",
        "CLIENT_SECRET_HASH_CONCURRENCY": str(slots),
        # The service's own hashing parameters (not the tests' fast ones): the real cost.
        "ARGON2_MEMORY_COST": "19456",
        "ARGON2_TIME_COST": "2",
    }
    (tmp_path / str(slots)).mkdir()
    return Server(tmp_path / str(slots) / "instance", workers=2, env=env)


def _login_under_flood(server: Server) -> Flood:
    """/login's median latency quiet and under a flood of wrong secrets of a known
    client from many addresses (every one a new argon2 check: no lock applies)."""
    assert httpx.post(f"{server.url}/register", json=ALICE, timeout=60).status_code == 201
    _latency(server.url, 2)  # warm up
    quiet = _latency(server.url, 5)
    statuses: list[int] = []
    answers = threading.Semaphore(0)

    def flood(worker: int) -> None:
        with httpx.Client(timeout=60) as client:
            n = 0
            while time.monotonic() < stop:
                n += 1
                response = client.post(
                    f"{server.url}/oauth/introspect",
                    data={"token": "x"},
                    auth=("gateway", f"wrong-{worker}-{n}-" + "w" * 30),
                    headers={"X-Forwarded-For": f"10.{worker}.{n // 250}.{n % 250}"},
                )
                statuses.append(response.status_code)
                answers.release()

    with concurrent.futures.ThreadPoolExecutor(FLOOD_THREADS + 1) as pool:
        started = time.monotonic()
        stop = started + FLOOD_CAP
        floods = [pool.submit(flood, worker) for worker in range(FLOOD_THREADS)]
        # The flood is on once it has had as many answers as it has threads: the bounded
        # run's hashing queues are full by then (its 503s, which come only so, are the
        # quick answers), the unbounded run has hashed that many wrong secrets.
        for _ in range(FLOOD_THREADS):
            answers.acquire(timeout=60)
        loaded = pool.submit(_latency, server.url, 3).result()
        capped = time.monotonic() >= stop
        stop = time.monotonic()
        for future in floods:
            future.result()
    return Flood(
        statistics.median(quiet),
        statistics.median(loaded),
        statuses,
        min(stop, started + FLOOD_CAP) - started,
        capped,
    )


def test_a_client_secret_flood_does_not_starve_login(tmp_path: Path, argon2_hash: str) -> None:
    """The flood with the client-secret queue (one hash at a time per worker) and with a
    bound as large as the flood (as before the queue existed), side by side."""
    servers = {slots: _flood_server(tmp_path, argon2_hash, slots) for slots in (1, 64)}
    figures = {}
    with running_together(*servers.values()):
        for slots, server in servers.items():
            figures[slots] = result = _login_under_flood(server)
            capped = f"; the flood stopped at its {FLOOD_CAP:.0f} s cap first"
            print(
                f"CLIENT_SECRET_HASH_CONCURRENCY={slots}: /login median"
                f" {result.quiet * 1000:.0f} ms quiet, {result.loaded * 1000:.0f} ms under"
                f" {len(result.statuses)} wrong client secrets in {result.seconds:.1f} s"
                f" ({result.statuses.count(503)} x 503, {result.statuses.count(401)} x 401)"
                + (capped if result.capped else "")
            )
    bounded = figures[1].statuses
    # Most of the flood is turned away before any hash or database round trip.
    assert bounded.count(503) > bounded.count(401)
    # The unbounded run hashed every wrong secret it was sent.
    assert figures[64].statuses.count(503) == 0


def test_metadata_never_names_a_host_from_the_request(tmp_path: Path, plain_server: Server) -> None:
    env = {"JWT_SECRET_KEY": SECRET, "PUBLIC_URL": "https://auth.example.com"}
    with running(tmp_path / "instance", workers=2, env=env) as server:
        for _ in range(4):
            response = httpx.get(
                f"{server.url}/.well-known/oauth-authorization-server",
                headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example", **CLOSE},
                timeout=60,
            )
            assert response.status_code == 200
            assert "evil.example" not in response.text
            assert response.json()["issuer"] == "https://auth.example.com"
    # Without a public URL the request's own URL is used: not to be cached, per Host.
    response = httpx.get(
        f"{plain_server.url}/.well-known/oauth-authorization-server",
        headers={"Host": "evil.example"},
        timeout=60,
    )
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Vary"] == "Host"
