"""Kick requests on PostgreSQL are numbered in commit order (store/postgres/cluster.py,
migration 0008's imapd_request_kick), as the change log is: an instance reads the requests
after the last id it has seen (`cluster_kicks(after)`, the beat's ``kicks_after``), so a
request committed after one with a higher id would never reach an instance already past that
id. With a sequence, A takes 10, B takes 11, B commits first: exactly that.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from store.cluster import Beat
from store.postgres.cluster import KICK_CHANNEL, KICK_LOCK
from store.postgres.store import PostgresStore
from tests.helpers.store import SCRYPT_N


@pytest.fixture
async def store(dsn: str) -> AsyncIterator[PostgresStore]:
    opened = await PostgresStore.open(dsn, lambda changes: None, scrypt_n=SCRYPT_N)
    yield opened
    await opened.close()


async def test_a_request_committing_late_is_not_passed_by_a_later_one(
    store: PostgresStore, dsn: str
) -> None:
    other = await asyncpg.connect(dsn)  # another instance, its request not committed yet
    try:
        tx = other.transaction()
        await tx.start()
        first = await other.fetchval(
            "SELECT imapd_request_kick($1, $2, NULL, $3)", KICK_LOCK, "s-first", KICK_CHANNEL
        )
        second = asyncio.ensure_future(store.request_kick(session="s-second"))
        await asyncio.sleep(0.3)
        # The later request waits for the earlier one's COMMIT, so no reader can see a
        # higher id while a lower one is still to come.
        assert not second.done()
        assert await store.cluster_kicks(0) == []
        await tx.commit()
        second_id = await asyncio.wait_for(second, 10)
    finally:
        await other.close()
    kicks = await store.cluster_kicks(0)
    assert [(k.id, k.session) for k in kicks] == [(first, "s-first"), (second_id, "s-second")]
    assert first < second_id


async def test_ids_never_go_back_when_old_requests_are_removed(
    store: PostgresStore, dsn: str
) -> None:
    def beat() -> Beat:
        return Beat("A", 1, "2026-01-01T00:00:00+00:00", 5.0, kicks_after=0)

    first = await store.request_kick(user="alice")
    second = await store.request_kick(user="bob")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE cluster_kicks SET requested = 0")  # long past KICK_KEEP
    finally:
        await conn.close()
    left = (await store.cluster_beat(beat())).kicks
    assert [k.id for k in left] == [second]  # the newest stays, the older one is gone
    third = await store.request_kick(user="carol")
    assert first < second < third
    assert [k.user for k in await store.cluster_kicks(second)] == ["carol"]
