"""Recovery on live Hypercorn (two workers) with a real SMTP server, on both storage
profiles: the links come from the received mail, an SMTP outage during a reset delays
the mail (which then arrives exactly once), and two workers' senders send each mail once.

The outage test stops its SMTP server and counts every mail of its outbox: it has a
server, an SMTP server and storage of its own. The others share one server per storage
profile and one SMTP server for the module, each with users and addresses of its own
(uuid-suffixed), and look only at the mails to their own addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from quart_app.mail.outbox import OutboxStore
from quart_app.store import Database
from tests.helpers.backend_servers import PostgresRun, RedisRun
from tests.helpers.live import Server, server_env
from tests.helpers.smtp_server import SmtpSink, token_in
from tests.helpers.support import SECRET, unique_name

pytestmark = pytest.mark.live

PASSWORD = "correct-horse"
NEW_PASSWORD = "battery-staple-2"
CLOSE = {"Connection": "close"}  # new connection per request: either worker answers


@contextlib.contextmanager
def running_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


def mail_env(backend_config: dict[str, Any], smtp: SmtpSink) -> dict[str, str]:
    return server_env(backend_config) | {
        "JWT_SECRET_KEY": SECRET,
        "SMTP_URL": smtp.url,
        "MAIL_FROM": "Accounts <accounts@app.example>",
        "PASSWORD_RESET_URL": "https://app.example/reset?token={token}",
        "EMAIL_VERIFY_URL": "https://app.example/verify?token={token}",
        "MAIL_POLL_INTERVAL": "0.5",
        "RATELIMIT_AUTH_LIMIT": "10000",
    }


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    """The module's SMTP server: every test reads only the mails to its own addresses."""
    with running_sink() as sink:
        yield sink


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    module_backend_config: dict[str, Any],
    smtp: SmtpSink,
) -> Iterator[Server]:
    """One server per backend for the module: every test registers users of its own."""
    instance = tmp_path_factory.mktemp("recovery") / "instance"
    with Server(instance, workers=2, env=mail_env(module_backend_config, smtp)) as live:
        yield live


@pytest.fixture
def own_smtp() -> Iterator[SmtpSink]:
    """An SMTP server of the test's own (the outage test stops it)."""
    with running_sink() as sink:
        yield sink


@pytest.fixture
def own_backend_config(backend: str, request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The backend, on storage of the test's own: its own SQLite file, or a PostgreSQL
    database of its own (migrated to head, dropped after) and its own Redis prefix. No
    other server sends from its outbox, and the run's database, which the module's
    shared server may be using, is left alone."""
    if backend == "sqlite":
        yield {}  # the app.db in the server's own instance directory
        return
    main: PostgresRun = request.getfixturevalue("postgres_server")
    redis: RedisRun = request.getfixturevalue("redis_server")
    database = PostgresRun(main.admin_url, name=f"{main.name}_{uuid.uuid4().hex[:8]}")
    database.create()
    try:
        yield {
            "DATABASE_URL": database.url,
            "REDIS_URL": redis.url,
            "REDIS_PREFIX": redis.next_prefix(),
        }
    finally:
        database.drop()


@pytest.fixture
def own_server(
    tmp_path: Path, own_backend_config: dict[str, Any], own_smtp: SmtpSink
) -> Iterator[Server]:
    """A server of the test's own, on its own storage, sending to its own SMTP server."""
    env = mail_env(own_backend_config, own_smtp)
    with Server(tmp_path / "instance", workers=2, env=env) as live:
        yield live


def database_url(server: Server, backend_config: dict[str, Any]) -> str:
    url = backend_config.get("DATABASE_URL")
    return str(url) if url else f"sqlite+aiosqlite:///{server.env['INSTANCE_PATH']}/app.db"


async def outbox_counts(url: str) -> dict[str, int]:
    db = Database(url)
    await db.open(create_tables=False)
    try:
        return await OutboxStore(db).counts()
    finally:
        await db.close()


def post(client: httpx.Client, server: Server, path: str, body: dict[str, Any]) -> httpx.Response:
    return client.post(f"{server.url}{path}", json=body, headers=CLOSE)


async def test_reset_through_an_smtp_outage(
    own_server: Server, own_smtp: SmtpSink, own_backend_config: dict[str, Any]
) -> None:
    server, smtp = own_server, own_smtp  # stopped during the test: of its own
    with httpx.Client(timeout=60) as client:
        body = {"username": "alice", "password": PASSWORD, "email": "alice@example.com"}
        assert post(client, server, "/register", body).status_code == 201
        [verify] = await smtp.wait_for(1)
        answer = post(client, server, "/email/verify", {"token": token_in(verify)})
        assert answer.json() == {"msg": "Email verified"}
        old = post(client, server, "/login", {"username": "alice", "password": PASSWORD}).json()

        smtp.stop()  # the mail server goes down just as the reset is asked for
        answer = post(client, server, "/password/forgot", {"username": "alice"})
        assert answer.status_code == 202
        url = database_url(server, own_backend_config)
        deadline = time.monotonic() + 30
        while (await outbox_counts(url))["failing"] < 1:
            assert time.monotonic() < deadline, "the sender never tried"
            await asyncio.sleep(0.2)
        smtp.start()
        reset = (await smtp.wait_for(2, timeout=60))[-1]
        await asyncio.sleep(3)  # a second delivery (by either worker) would show by now
        assert smtp.count() == 2
        counts = await outbox_counts(url)
        assert (counts["sent"], counts["pending"]) == (2, 0)

        body = {"token": token_in(reset), "new_password": NEW_PASSWORD}
        answer = post(client, server, "/password/reset", body)
        assert answer.json() == {"msg": "Password has been reset"}
        assert post(client, server, "/password/reset", body).status_code == 400
        old_login = {"username": "alice", "password": PASSWORD}
        assert post(client, server, "/login", old_login).status_code == 401
        deadline = time.monotonic() + 10  # every worker refuses the old token soon
        refused = 0
        while refused < 4:
            assert time.monotonic() < deadline
            status = client.get(
                f"{server.url}/me",
                headers={"Authorization": f"Bearer {old['access_token']}", **CLOSE},
            ).status_code
            refused = refused + 1 if status == 401 else 0
        new_login = {"username": "alice", "password": NEW_PASSWORD}
        assert post(client, server, "/login", new_login).status_code == 200
        notice = (await smtp.wait_for(3))[-1]
        assert notice["Subject"] == "Security notice for your account"


async def test_two_workers_send_each_mail_once(server: Server, smtp: SmtpSink) -> None:
    count = 12
    tag = uuid.uuid4().hex[:12]
    addresses = [f"u{n}_{tag}@example.com" for n in range(count)]
    with httpx.Client(timeout=60) as client:
        for n, address in enumerate(addresses):
            body = {"username": f"user{n}_{tag}", "password": PASSWORD, "email": address}
            assert post(client, server, "/register", body).status_code == 201
    mails = await smtp.wait_for(count, timeout=60, to=addresses)
    await asyncio.sleep(2)
    assert smtp.count(to=addresses) == count
    assert len({m["Message-ID"] for m in mails}) == count
    assert sorted(m["To"] for m in mails) == sorted(addresses)


async def test_a_reset_racing_logins_with_the_old_password(server: Server, smtp: SmtpSink) -> None:
    """Logins with the old password in flight on both workers while the reset commits:
    whatever pair one of them got, none outlives the reset."""
    alice = unique_name()
    mine = [f"{alice}@example.com"]
    with httpx.Client(timeout=60) as client:
        body = {"username": alice, "password": PASSWORD, "email": mine[0]}
        assert post(client, server, "/register", body).status_code == 201
        [verify] = await smtp.wait_for(1, to=mine)
        assert post(client, server, "/email/verify", {"token": token_in(verify)}).is_success
        assert post(client, server, "/password/forgot", {"username": alice}).status_code == 202
    token = token_in((await smtp.wait_for(2, to=mine))[-1])

    old = {"username": alice, "password": PASSWORD}
    async with httpx.AsyncClient(base_url=server.url, timeout=60, headers=CLOSE) as http:
        first_in = asyncio.Event()

        async def logins(count: int) -> list[httpx.Response]:
            answers = []
            for _ in range(count):
                answers.append(await http.post("/login", json=old))
                if answers[-1].status_code == 200:
                    first_in.set()
            return answers

        async def reset() -> httpx.Response:
            await first_in.wait()  # one login got in; the others are in flight
            body = {"token": token, "new_password": NEW_PASSWORD}
            return await http.post("/password/reset", json=body)

        streams, answer = await asyncio.gather(
            asyncio.gather(*(logins(6) for _ in range(6))), reset()
        )
        assert answer.json() == {"msg": "Password has been reset"}
        pairs = [r.json() for stream in streams for r in stream if r.status_code == 200]
        statuses = {r.status_code for stream in streams for r in stream}
        # After the reset the old password fails (401), then the account lock answers (429).
        assert statuses <= {200, 401, 429}, statuses
        assert pairs, "no login got in before the reset: the race was not run"
        # Every refresh token from before is refused (decided by the shared store) ...
        for pair in pairs:
            refreshed = await http.post(
                "/token/refresh", headers={"Authorization": f"Bearer {pair['refresh_token']}"}
            )
            assert refreshed.status_code == 401, refreshed.text
        # ... and every access token, on both workers, once revocations have spread.
        await asyncio.sleep(2.5)
        for pair in pairs:
            for _ in range(2):
                me = await http.get(
                    "/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
                )
                assert me.status_code == 401, me.text
        new = await http.post("/login", json={"username": alice, "password": NEW_PASSWORD})
        assert new.status_code == 200
        sessions = await http.get(
            "/sessions", headers={"Authorization": f"Bearer {new.json()['access_token']}"}
        )
        assert len(sessions.json()) == 1, sessions.json()
