"""The in-memory revocation mirror and its sync loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from quart_app.jwt.revocation import Kind, Revocation, RevocationList, RevocationSync


def claims(**values: object) -> dict[str, object]:
    base: dict[str, object] = {"jti": "j1", "sub": "7", "iat": 1000.5, "fam": "f1"}
    base.update(values)
    return base


def test_jti_family_and_user_entries() -> None:
    mirror = RevocationList()
    future = time.time() + 60
    assert not mirror.is_revoked(claims())
    mirror.apply([Revocation("jti", "j1", future)])
    assert mirror.is_revoked(claims())
    assert not mirror.is_revoked(claims(jti="j2"))
    mirror.apply([Revocation("family", "f2", future)])
    assert mirror.is_revoked(claims(jti="j3", fam="f2"))
    mirror.apply([Revocation("user", "7", future, not_before=2000.0)])
    assert mirror.is_revoked(claims(jti="j4", fam="f9", iat=1999.9))
    assert not mirror.is_revoked(claims(jti="j4", fam="f9", iat=2000.0))
    assert not mirror.is_revoked(claims(jti="j4", fam="f9", sub="8", iat=1.0))


def test_later_user_cut_off_wins() -> None:
    mirror = RevocationList()
    future = time.time() + 60
    mirror.apply([Revocation("user", "7", future, not_before=2000.0)])
    mirror.apply([Revocation("user", "7", future, not_before=1500.0)])
    assert mirror.is_revoked(claims(jti="x", fam="y", iat=1800.0))


def test_prune_drops_only_expired_entries() -> None:
    mirror = RevocationList()
    now = time.time()
    mirror.apply(
        [
            Revocation("jti", "old", now - 1),
            Revocation("jti", "live", now + 60),
            Revocation("family", "old", now - 1),
            Revocation("user", "1", now - 1, not_before=now - 100),
        ]
    )
    assert mirror.prune(now) == 3
    assert len(mirror) == 1
    assert mirror.is_revoked(claims(jti="live"))


class FakeStore:
    def __init__(self) -> None:
        self.rows: list[Revocation] = []
        self.fail = False

    async def add(self, entries: Iterable[Revocation]) -> None:
        self.rows.extend(entries)

    async def claim(self, entry: Revocation) -> bool:
        if entry in self.rows:
            return False
        self.rows.append(entry)
        return True

    async def contains(self, kind: Kind, value: str) -> bool:
        return any(row.kind == kind and row.value == value for row in self.rows)

    async def ends_session(self, sub: str, family: str | None, started: float | None) -> bool:
        raise NotImplementedError  # the sync loop never asks

    async def changes_since(self, cursor: int | None) -> tuple[list[Revocation], int]:
        if self.fail:
            raise ConnectionError("store down")
        start = cursor or 0
        return self.rows[start:], len(self.rows)


async def test_sync_learns_other_workers_revocations_and_survives_outages() -> None:
    store = FakeStore()
    mine, theirs = RevocationList(), RevocationList()
    sync_mine = RevocationSync(store, mine, interval=0.02)
    sync_theirs = RevocationSync(store, theirs, interval=0.02)
    await sync_mine.start()
    await sync_theirs.start()
    try:
        await sync_mine.revoke([Revocation("jti", "j1", time.time() + 60)])
        assert mine.is_revoked(claims())  # at once where it was revoked
        await asyncio.sleep(0.1)
        assert theirs.is_revoked(claims())  # within the interval elsewhere
        store.fail = True
        await store.add([Revocation("jti", "j2", time.time() + 60)])
        await asyncio.sleep(0.1)
        assert not theirs.is_revoked(claims(jti="j2"))
        store.fail = False
        await asyncio.sleep(0.1)
        assert theirs.is_revoked(claims(jti="j2"))  # caught up after the outage
    finally:
        await sync_mine.stop()
        await sync_theirs.stop()


async def test_claim_is_once_only() -> None:
    store = FakeStore()
    sync = RevocationSync(store, RevocationList())
    entry = Revocation("jti", "r1", time.time() + 60)
    assert await sync.claim(entry)
    assert not await sync.claim(entry)
    assert sync.mirror.has_jti("r1")
