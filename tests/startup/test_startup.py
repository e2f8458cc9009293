"""An app whose database does not answer at start-up starts anyway, and says so."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import jwt
from quart import Quart

from quart_app.jwt.revocation import Revocation
from quart_app.services import services
from quart_app.startup.settings import SNAPSHOT_FILE
from tests.helpers.fault_support import signed_token
from tests.helpers.live import free_port
from tests.helpers.support import bearer


def token() -> str:
    return signed_token("1", "alice")


async def test_the_app_serves_without_its_database(app_factory: Callable[..., Quart]) -> None:
    nothing_there = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/test"
    app = app_factory(DATABASE_URL=nothing_there, DATABASE_CREATE_TABLES=False)
    async with app.test_app():  # start-up does not fail
        client = app.test_client()
        assert not services(app).db.ready
        assert (await client.get("/healthz")).status_code == 503
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert (await ready.get_json())["checks"] == {
            "database": "unavailable",
            "revocations": "loading",
        }
        for _ in range(2):  # the second time from the verified-token cache, if any
            protected = await client.get("/protected", headers=bearer(token()))
            assert protected.status_code == 503
            assert protected.headers["Retry-After"]
        login = await client.post("/login", json={"username": "alice", "password": "x" * 12})
        assert login.status_code == 503


async def test_once_loaded_the_same_token_is_accepted(app_factory: Callable[..., Quart]) -> None:
    app = app_factory()
    async with app.test_app():
        assert services(app).db.ready and services(app).revocations.mirror.complete
        client = app.test_client()
        # sub 1 need not exist for /protected: it only reads the claims.
        assert (await client.get("/protected", headers=bearer(token()))).status_code == 200
        assert (await client.get("/readyz")).status_code == 200


async def test_a_worker_started_during_an_outage_takes_its_siblings_fresh_snapshot(
    app_factory: Callable[..., Quart], tmp_path: Path
) -> None:
    """A revocation made before the outage is still enforced, and other tokens work,
    instead of every token check answering 503; a snapshot too old is not trusted.
    """
    revoked, valid = token(), token()
    revoked_jti = str(jwt.decode(revoked, options={"verify_signature": False})["jti"])
    sibling = app_factory()
    async with sibling.test_app():
        sync = services(sibling).revocations
        await sync.revoke([Revocation("jti", revoked_jti, time.time() + 900)])
        await sync.pull()  # what its next sync does: the snapshot now holds the logout
    snapshot = tmp_path / "instance" / SNAPSHOT_FILE
    assert snapshot.exists() and stat.S_IMODE(snapshot.stat().st_mode) == 0o600

    nothing_there = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/test"
    newcomer = app_factory(DATABASE_URL=nothing_there, DATABASE_CREATE_TABLES=False)
    async with newcomer.test_app():
        client = newcomer.test_client()
        assert not services(newcomer).db.ready
        assert (await client.get("/protected", headers=bearer(valid))).status_code == 200
        refused = await client.get("/protected", headers=bearer(revoked))
        assert refused.status_code == 401
        assert (await refused.get_json()) == {"msg": "Token has been revoked"}

    old = time.time() - 3600  # older than REVOCATION_SNAPSHOT_MAX_AGE (300 s)
    os.utime(snapshot, (old, old))
    late = app_factory(DATABASE_URL=nothing_there, DATABASE_CREATE_TABLES=False)
    async with late.test_app():
        client = late.test_client()
        assert (await client.get("/protected", headers=bearer(valid))).status_code == 503
