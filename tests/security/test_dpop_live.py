"""DPoP and the OAuth endpoints on live Hypercorn (two workers): the docs' client helper
run as written, a proof accepted once across workers and across two hosts sharing
PostgreSQL and Redis, and the attacks on client authentication and the metadata."""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import re
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.backend_servers import PostgresRun, RedisRun, run
from tests.helpers.dpop_proofs import ProofKey
from tests.helpers.live import ROOT, Server, running, running_together
from tests.helpers.support import SECRET

pytestmark = pytest.mark.live

ALICE = {"username": "alice", "password": "correct-horse"}
CLOSE = {"Connection": "close"}
#: Client secret of the introspection client the attack tests use (an argon2 hash of it
#: is configured, as a careful operator would).
GATEWAY_SECRET = "gateway-secret-" + "g" * 32


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


def bound_login(base: str, key: ProofKey, public: str | None = None) -> str:
    proof = key.proof("POST", f"{public or base}/login")
    response = httpx.post(f"{base}/login", json=ALICE, headers={"DPoP": proof}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"
    return str(response.json()["access_token"])


def test_docs_client_helper_runs_as_written(tmp_path: Path) -> None:
    """docs/dpop.md's helper and its five lines, against a live server."""
    helper, usage = python_blocks(ROOT / "docs" / "dpop.md")[:2]
    with running(tmp_path / "instance", workers=2, env={"JWT_SECRET_KEY": SECRET}) as server:
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
        # The helper answers a server nonce too.
    with running(
        tmp_path / "instance",
        workers=2,
        env={"JWT_SECRET_KEY": SECRET, "DPOP_NONCE_REQUIRED": "true"},
    ) as server:
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


def test_a_proof_is_accepted_once_across_the_workers(tmp_path: Path) -> None:
    key = ProofKey("ES256")
    with running(tmp_path / "instance", workers=2, env={"JWT_SECRET_KEY": SECRET}) as server:
        assert httpx.post(f"{server.url}/register", json=ALICE, timeout=60).status_code == 201
        token = bound_login(server.url, key)
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


@pytest.fixture(scope="module")
def argon2_hash() -> str:
    from argon2 import PasswordHasher

    return PasswordHasher().hash(GATEWAY_SECRET)  # the service's own parameters


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


def _login_under_flood(
    tmp_path: Path, argon2_hash: str, slots: int
) -> tuple[float, float, list[int]]:
    """/login's median latency quiet and under a flood of wrong secrets of a known
    client from many addresses (every one a new argon2 check: no lock applies)."""
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
    with running(tmp_path / str(slots) / "instance", workers=2, env=env) as server:
        assert httpx.post(f"{server.url}/register", json=ALICE, timeout=60).status_code == 201
        _latency(server.url, 2)  # warm up
        quiet = _latency(server.url, 5)
        stop = time.monotonic() + 30
        statuses: list[int] = []

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

        with concurrent.futures.ThreadPoolExecutor(17) as pool:
            floods = [pool.submit(flood, worker) for worker in range(16)]
            time.sleep(2)
            loaded = pool.submit(_latency, server.url, 3).result()
            stop = time.monotonic()
            for future in floods:
                future.result()
    return statistics.median(quiet), statistics.median(loaded), statuses


def test_a_client_secret_flood_does_not_starve_login(tmp_path: Path, argon2_hash: str) -> None:
    """The flood with the client-secret queue (one hash at a time per worker) and with a
    bound as large as the flood (as before the queue existed), side by side."""
    figures = {}
    for slots in (1, 64):
        quiet, loaded, statuses = _login_under_flood(tmp_path, argon2_hash, slots)
        figures[slots] = (quiet, loaded, statuses)
        print(
            f"CLIENT_SECRET_HASH_CONCURRENCY={slots}: /login median {quiet * 1000:.0f} ms"
            f" quiet, {loaded * 1000:.0f} ms under {len(statuses)} wrong client secrets"
            f" ({statuses.count(503)} x 503, {statuses.count(401)} x 401)"
        )
    bounded = figures[1][2]
    # Most of the flood is turned away before any hash or database round trip.
    assert bounded.count(503) > bounded.count(401)
    # The unbounded run hashed every wrong secret it was sent.
    assert figures[64][2].count(503) == 0


def test_metadata_never_names_a_host_from_the_request(tmp_path: Path) -> None:
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
    with running(tmp_path / "instance", workers=2, env={"JWT_SECRET_KEY": SECRET}) as server:
        response = httpx.get(
            f"{server.url}/.well-known/oauth-authorization-server",
            headers={"Host": "evil.example"},
            timeout=60,
        )
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Vary"] == "Host"
