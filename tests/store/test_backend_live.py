"""Two "hosts" (Hypercorn, two workers each, on their own ports) sharing PostgreSQL and Redis.

What a load balancer in front of them would see: a token issued by one is accepted by
the other, a logout on one is enforced by the other within 100 ms (Redis), or within the
SQL poll's second without Redis, and Redis going away loses no revocation.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers.backend_servers import PostgresRun, PrivateRedis, RedisRun, kill_clients, run
from tests.helpers.live import Server, running_together
from tests.helpers.support import SECRET, unique_name

pytestmark = pytest.mark.live

ALICE = {"username": "alice", "password": "correct-horse"}
#: New connection per probe, so the kernel spreads them over the host's two workers.
CLOSE = {"Connection": "close"}
WORKERS = 2
#: Our access-log format (tests/helpers/live.py): "<pid> status".
ACCESS = re.compile(r"<(\d+)> (\d{3})")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **CLOSE}


def instance(tmp_path: Path, host: str) -> Path:
    (tmp_path / host).mkdir(exist_ok=True)
    return tmp_path / host / "instance"


def host_env(postgres: PostgresRun, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": postgres.url,
        "DATABASE_CREATE_TABLES": "false",
        "JWT_SECRET_KEY": SECRET,
        "REVOCATION_SYNC_INTERVAL": "1.0",
        "RATELIMIT_AUTH_LIMIT": "10000",
        "LOG_FORMAT": "text",
        **extra,
    }


@pytest.fixture
def postgres(postgres_server: PostgresRun) -> PostgresRun:
    run(postgres_server.reset())
    return postgres_server


class Workers:
    """Requests to one host, each paired with the worker that answered (its access log)."""

    def __init__(self, server: Server) -> None:
        assert server.access_log is not None
        self.log = server.access_log
        self.server = server
        self.seen = len(self._lines())

    def _lines(self) -> list[tuple[str, int]]:
        if not self.log.exists():
            return []
        return [(pid, int(status)) for pid, status in ACCESS.findall(self.log.read_text())]

    def get(self, client: httpx.Client, path: str, token: str) -> tuple[str, int]:
        status = client.get(f"{self.server.url}{path}", headers=auth(token)).status_code
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            lines = self._lines()
            if len(lines) > self.seen:
                pid, logged = lines[self.seen]
                self.seen += 1
                assert logged == status
                return pid, status
            time.sleep(0.001)
        raise AssertionError("the access log did not record the request")


def propagation(a: Server, b: Server, budget: float, user: dict[str, str] = ALICE) -> float | None:
    """Log in and out on A as ``user``; seconds until every worker of B refuses the token,
    or None.

    Each probe is a new connection (the kernel hands it to either worker) and the access
    log says which worker answered; the result is when the last worker was first seen
    refusing: an upper bound on when it learned. A worker never accepts the token again
    after refusing it.
    """
    workers = Workers(b)
    with httpx.Client(timeout=5) as client:  # one client: no TLS context per probe
        token = client.post(f"{a.url}/login", json=user).json()["access_token"]
        assert workers.get(client, "/protected", token)[1] == 200
        assert client.post(f"{a.url}/logout", headers=auth(token)).status_code == 200
        start = time.perf_counter()
        learned: dict[str, float] = {}
        while (now := time.perf_counter() - start) < budget:
            pid, status = workers.get(client, "/protected", token)
            if status == 401:
                learned.setdefault(pid, now)
                if len(learned) == WORKERS:
                    return max(learned.values())
            else:
                assert status == 200
                assert pid not in learned, "a worker accepted a token it had refused"
        return None


@pytest.mark.serial  # propagation deadlines
def test_a_redis_restart_loses_no_revocation(tmp_path: Path, postgres: PostgresRun) -> None:
    redis = PrivateRedis(tmp_path)
    redis.start()
    env = host_env(postgres, REDIS_URL=redis.url, REDIS_PREFIX="live:")
    try:
        with (
            running_together(
                Server(instance(tmp_path, "a"), workers=2, env=env),
                Server(instance(tmp_path, "b"), workers=2, env=env, access_log=tmp_path / "b.log"),
            ) as (a, b),
        ):
            assert httpx.post(f"{a.url}/register", json=ALICE, timeout=60).status_code == 201
            # Precondition: the Redis path is up on every worker (subscriptions are made
            # in the background at start-up, so allow the first few tries to miss).
            assert any(propagation(a, b, budget=0.1) is not None for _ in range(20))
            before = httpx.post(f"{a.url}/login", json=ALICE, timeout=60).json()["access_token"]
            assert (
                httpx.post(f"{a.url}/logout", headers=auth(before), timeout=60).status_code == 200
            )

            redis.stop()
            # Redis is gone: both hosts keep serving, and the SQL poll carries logouts.
            during = propagation(a, b, budget=1.5)
            assert during is not None, "logout during the outage not enforced within 1.5 s"
            redis.start()  # empty: pub/sub has no memory, SQL does
            for _ in range(100):
                if propagation(a, b, budget=0.1) is not None:
                    break
            else:
                pytest.fail("the Redis fast path did not come back after the restart")
            assert (
                httpx.get(f"{b.url}/protected", headers=auth(before), timeout=60).status_code == 401
            )
            print(f"\nduring the Redis outage, SQL poll: {during * 1000:.0f} ms")
        log_b = b.log_path.read_text()
        assert "falling back to the SQL poll" in log_b
        assert "revocation channel back" in log_b
    finally:
        redis.stop()


@pytest.mark.serial  # propagation deadlines
def test_without_redis_the_sql_poll_bounds_propagation(
    tmp_path: Path, postgres: PostgresRun
) -> None:
    env = host_env(postgres, REDIS_URL="")
    with (
        running_together(
            Server(instance(tmp_path, "a"), workers=2, env=env),
            Server(instance(tmp_path, "b"), workers=2, env=env, access_log=tmp_path / "b.log"),
        ) as (a, b),
    ):
        assert httpx.post(f"{a.url}/register", json=ALICE, timeout=60).status_code == 201
        delays = [propagation(a, b, budget=1.5) for _ in range(5)]
    assert None not in delays, f"not enforced within 1.5 s without Redis: {delays}"
    measured = [d for d in delays if d is not None]
    print(
        f"\nlogout on A -> refused by B via the 1 s SQL poll: median"
        f" {statistics.median(measured) * 1000:.0f} ms, max {max(measured) * 1000:.0f} ms"
    )


# Last in the module: the hosts below live until its end, and the tests above empty the
# tables they share.
@dataclass
class TwoHosts:
    """The module's two hosts on PostgreSQL + Redis, and this test's own user."""

    a: Server
    b: Server
    prefix: str
    user: dict[str, str]


@pytest.fixture(scope="module")
def shared_hosts(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresRun, redis_server: RedisRun
) -> Iterator[tuple[Server, Server, str]]:
    run(postgres_server.reset())
    prefix = redis_server.next_prefix()
    env = host_env(postgres_server, REDIS_URL=redis_server.url, REDIS_PREFIX=prefix)
    where = tmp_path_factory.mktemp("hosts")
    with (
        running_together(
            Server(instance(where, "a"), workers=2, env=env),
            Server(instance(where, "b"), workers=2, env=env, access_log=where / "b.log"),
        ) as (a, b),
    ):
        yield a, b, prefix


@pytest.fixture
def two_hosts(shared_hosts: tuple[Server, Server, str]) -> TwoHosts:
    """Two hosts shared by the module's tests, each test with a user of its own."""
    user = {**ALICE, "username": unique_name()}
    return TwoHosts(*shared_hosts, user)


@pytest.mark.serial  # propagation deadlines
def test_tokens_and_revocations_cross_hosts(two_hosts: TwoHosts) -> None:
    a, b, alice = two_hosts.a, two_hosts.b, two_hosts.user
    assert httpx.post(f"{a.url}/register", json=alice, timeout=60).status_code == 201
    assert (
        httpx.post(f"{b.url}/register", json=alice, timeout=60).status_code == 409
    )  # one user table
    from_a = httpx.post(f"{a.url}/login", json=alice, timeout=60).json()
    me = httpx.get(f"{b.url}/me", headers=auth(from_a["access_token"]), timeout=60)
    assert me.status_code == 200 and me.json()["username"] == alice["username"]
    # Rotation on B, replay on A: the used refresh token is refused on the other host.
    rotated = httpx.post(
        f"{b.url}/token/refresh", headers=auth(from_a["refresh_token"]), timeout=60
    )
    assert rotated.status_code == 200
    replay = httpx.post(f"{a.url}/token/refresh", headers=auth(from_a["refresh_token"]), timeout=60)
    assert replay.status_code == 401 and replay.json() == {"msg": "Token has been revoked"}

    # Every logout is enforced by B within the documented 1.5 s, and (Redis) within 100 ms but
    # for at most one round a loaded CI machine may deschedule a worker in.
    delays = [propagation(a, b, budget=1.5, user=alice) for _ in range(10)]
    assert None not in delays, f"logout on A not enforced by B within 1.5 s: {delays}"
    measured = [d for d in delays if d is not None]
    assert sum(d < 0.1 for d in measured) >= 9, f"not within 100 ms via Redis: {measured}"
    # An upper bound: the time until probes (new connections) had reached and been refused
    # by both workers of B; 0 would mean the very first probes already were.
    print(
        f"\nlogout on A -> refused by B via Redis: median {statistics.median(measured) * 1e3:.2f}"
        f" ms, max {max(measured) * 1e3:.2f} ms over {len(measured)}"
    )


@pytest.mark.serial  # propagation deadlines
def test_dropped_redis_connections_lose_no_revocation(
    two_hosts: TwoHosts, redis_server: RedisRun
) -> None:
    a, b, alice = two_hosts.a, two_hosts.b, two_hosts.user
    assert httpx.post(f"{a.url}/register", json=alice, timeout=60).status_code == 201
    # Kill every Redis connection of both hosts' workers (ours only: by client name).
    assert run(kill_clients(redis_server.url, two_hosts.prefix)) >= 4
    delay = propagation(a, b, budget=1.5, user=alice)  # Redis or SQL poll, whichever first
    assert delay is not None, "a logout made while Redis connections were down was lost"
    for _ in range(100):  # the subscribers reconnect within the back-off (<= 2 s)
        if propagation(a, b, budget=0.1, user=alice) is not None:
            break
    else:
        pytest.fail("the Redis fast path did not come back")
