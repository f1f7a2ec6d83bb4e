"""APPEND's target look-up answered from a per-instance cache on PostgreSQL
(store/postgres/appendtarget.py): another instance's RENAME, DELETE and CREATE reach it
through the change feed, so the name never keeps meaning the mailbox it meant before; a
process that does not follow the feed caches nothing. Two PostgresStores with their own
pools on one fresh database, as two ``imapd serve`` processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest

from store.changes import Change
from store.errors import MailboxNotFound
from store.postgres.store import PostgresStore
from tests.helpers.store import ORIGIN, SCRYPT_N, new


@dataclass
class Instance:
    store: PostgresStore
    published: list[Change] = field(default_factory=list)
    woken: asyncio.Event = field(default_factory=asyncio.Event)

    def publish(self, changes: Sequence[Change]) -> None:
        self.published.extend(changes)
        self.woken.set()

    async def until(self, seq: int, timeout: float = 20.0) -> None:
        async def reached() -> None:
            while not self.published or self.published[-1].seq < seq:
                self.woken.clear()
                await self.woken.wait()

        await asyncio.wait_for(reached(), timeout)


@pytest.fixture
async def instances(dsn: str) -> AsyncIterator[list[Instance]]:
    out: list[Instance] = []
    for _ in range(2):
        inst = Instance(None)  # type: ignore[arg-type]
        inst.store = await PostgresStore.open(
            dsn, inst.publish, scrypt_n=SCRYPT_N, min_size=2, max_size=8
        )
        out.append(inst)
    yield out
    for inst in out:
        await inst.store.close()


async def test_another_instances_rename_delete_create_reach_the_cached_target(
    instances: list[Instance],
) -> None:
    a, b = instances
    alice = await b.store.create_user("alice", "pw")
    await b.store.create_mailbox(alice.id, "Box", ORIGIN)
    await a.store.follow_foreign_commits()
    first = await a.store.append_target(alice.id, "Box")
    assert a.store._targets  # cached: the user's own mailbox, the feed followed
    assert (await a.store.append_target(alice.id, "Box")).id == first.id

    # APPENDs (harmless changes) keep it; B's RENAME drops it once A published it.
    await b.store.append(alice.id, "Box", [new("kept")], ORIGIN)
    await a.until(await b.store.change_log_head())
    assert a.store._targets
    await b.store.rename_mailbox(alice.id, "Box", "Moved", ORIGIN)
    await a.until(await b.store.change_log_head())
    with pytest.raises(MailboxNotFound):
        await a.store.append_target(alice.id, "Box")
    assert (await a.store.append_target(alice.id, "Moved")).id == first.id

    # DELETE then CREATE of the same name on B: A names the new mailbox.
    await b.store.delete_mailbox(alice.id, "Moved", ORIGIN)
    await b.store.create_mailbox(alice.id, "Moved", ORIGIN)
    await a.until(await b.store.change_log_head())
    again = await a.store.append_target(alice.id, "Moved")
    assert again.id != first.id
    result = await a.store.append(alice.id, again.id, [new("into the new one")], ORIGIN)
    assert result.mailbox.id == again.id and result.uids == (1,)


async def test_a_process_not_following_the_feed_caches_nothing(
    instances: list[Instance],
) -> None:
    a, b = instances
    alice = await b.store.create_user("alice", "pw")
    await b.store.create_mailbox(alice.id, "Box", ORIGIN)
    first = await a.store.append_target(alice.id, "Box")
    assert not a.store._targets
    await b.store.rename_mailbox(alice.id, "Box", "Moved", ORIGIN)
    with pytest.raises(MailboxNotFound):  # at once: nothing to wait for
        await a.store.append_target(alice.id, "Box")
    assert (await a.store.append_target(alice.id, "Moved")).id == first.id
