"""What only the PostgreSQL store has: several processes writing one database at once.

Each "instance" here is a PostgresStore with its own connection pool (what two ``imapd
serve`` processes have), on a fresh database of the throwaway cluster (tests/helpers/pg.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import asyncpg
import pytest

from store.api import User
from store.changes import Change, FlagsChanged, MessagesAdded
from store.errors import OverQuota, Unavailable
from store.postgres.migrate import SchemaTooNew, migrate
from store.postgres.store import COMMIT_LOCK, PostgresStore
from store.quota import Limits
from tests.helpers.store import ORIGIN, SCRYPT_N, message, new


@dataclass
class Instance:
    store: PostgresStore
    published: list[Change] = field(default_factory=list)
    woken: asyncio.Event = field(default_factory=asyncio.Event)

    def publish(self, changes: Sequence[Change]) -> None:
        self.published.extend(changes)
        self.woken.set()

    async def until(self, seq: int, timeout: float = 20.0) -> None:
        """Wait (woken by publications, no polling) until ``seq`` was published."""

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


async def test_change_log_in_commit_order_across_instances(instances: list[Instance]) -> None:
    """Many concurrent writers on two instances: every instance publishes every change
    exactly once, in seq order, seqs without a gap, and per mailbox MODSEQs and UIDs only
    grow in that order."""
    a, b = instances
    users = [await a.store.create_user(f"u{i}", "pw") for i in range(2)]
    for inst in instances:
        await inst.store.follow_foreign_commits()
    start = await a.store.change_log_head()
    boxes = [await a.store.get_mailbox(u.id, "INBOX") for u in users]

    async def writer(inst: Instance, n: int) -> None:
        for i in range(12):
            user = users[(n + i) % 2]
            box = boxes[(n + i) % 2]
            await inst.store.append(user.id, "INBOX", [new(f"{n}-{i}")], ORIGIN)
            await inst.store.store_flags(
                box.id, [1, 2, 3], "+" if i % 2 else "-", [f"k{n}"], ORIGIN
            )

    await asyncio.gather(*(writer(inst, n) for n, inst in enumerate([a, b, a, b, a, b, a, b])))
    head = await a.store.change_log_head()
    assert head > start + 8 * 12  # every append logged, and many flag changes
    for inst in instances:
        await inst.until(head)
        seqs = [c.seq for c in inst.published if c.seq > start]
        assert seqs == list(range(start + 1, head + 1))  # each once, in order, no gap
        last_modseq: dict[int, int] = {}
        last_uid: dict[int, int] = {}
        for change in inst.published:
            if isinstance(change, MessagesAdded | FlagsChanged):
                box_id = change.mailbox.id
                assert change.counts.highestmodseq > last_modseq.get(box_id, 0)
                last_modseq[box_id] = change.counts.highestmodseq
            if isinstance(change, MessagesAdded):
                assert change.messages[0].uid > last_uid.get(change.mailbox.id, 0)
                last_uid[change.mailbox.id] = change.messages[-1].uid
    assert a.published[-(head - start) :] == b.published[-(head - start) :]
    logged = await a.store.change_log(start, 10_000)
    assert [row[0] for row in logged] == list(range(start + 1, head + 1))


async def test_numbering_waits_for_the_commit_lock(dsn: str, instances: list[Instance]) -> None:
    """A transaction numbering its change_log rows holds COMMIT_LOCK until it commits;
    another instance's commit waits for it, so no later seq becomes visible first."""
    a, _ = instances
    bob = await a.store.create_user("bob", "pw")
    head = await a.store.change_log_head()
    conn = await asyncpg.connect(dsn)
    try:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("SELECT pg_advisory_xact_lock($1)", COMMIT_LOCK)
        append = asyncio.ensure_future(a.store.append(bob.id, "INBOX", [new()], ORIGIN))
        await asyncio.sleep(0.3)
        assert not append.done()
        assert await a.store.change_log_head() == head
        await tx.rollback()
        result = await asyncio.wait_for(append, 10)
    finally:
        await conn.close()
    assert result.uids == (1,)
    assert await a.store.change_log_head() == head + 1


async def test_racing_appends_over_quota_exactly_one_wins(instances: list[Instance]) -> None:
    """RFC 9208 on two connections at once: when only one of two APPENDs fits, one is
    stored and the other refused, every time (the root is locked while it is summed)."""
    a, b = instances
    body = message("a", body="y" * 700 + "\r\n")
    for round_ in range(6):
        user = await a.store.create_user(f"q{round_}", "pw")
        await a.store.set_quota(user.name, Limits(storage=1))  # 1 KiB: one message fits
        results = await asyncio.gather(
            a.store.append(user.id, "INBOX", [new("a", body="y" * 700 + "\r\n")], ORIGIN),
            b.store.append(user.id, "Sent", [new("b", body="y" * 700 + "\r\n")], ORIGIN),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, BaseException)]
        assert len(refused) == 1 and isinstance(refused[0], OverQuota), results
        info = await b.store.get_quota(user.name)
        assert info.usage.messages == 1 and info.usage.storage == len(body)


async def test_recent_is_claimed_by_one_session_across_instances(
    instances: list[Instance],
) -> None:
    a, b = instances
    bob = await a.store.create_user("bob", "pw")
    await a.store.append(bob.id, "INBOX", [new(), new()], ORIGIN)
    box = await a.store.get_mailbox(bob.id, "INBOX")
    for _ in range(5):
        claims = await asyncio.gather(
            *(inst.store.claim_recent(box.id, [1, 2]) for inst in (a, b, a, b))
        )
        assert sorted(len(c) for c in claims) in ([0, 0, 0, 2], [0, 0, 0, 0])
    snapshots = await asyncio.gather(
        a.store.open_mailbox(bob.id, "INBOX", claim_recent=True),
        b.store.open_mailbox(bob.id, "INBOX", claim_recent=True),
    )
    assert all(s.recent == frozenset() for s in snapshots)
    await a.store.append(bob.id, "INBOX", [new()], ORIGIN)
    snapshots = await asyncio.gather(
        a.store.open_mailbox(bob.id, "INBOX", claim_recent=True),
        b.store.open_mailbox(bob.id, "INBOX", claim_recent=True),
    )
    assert sorted(len(s.recent) for s in snapshots) == [0, 1]


async def test_foreign_commit_is_pushed_by_notify(instances: list[Instance]) -> None:
    """Instance A publishes B's commit without being asked (LISTEN/NOTIFY wakes it)."""
    a, b = instances
    bob = await b.store.create_user("bob", "pw")
    await a.store.follow_foreign_commits()
    a.published.clear()
    added = await b.store.append(bob.id, "INBOX", [new("from B")], ORIGIN)
    head = await b.store.change_log_head()
    await a.until(head, timeout=5)
    [change] = [c for c in a.published if isinstance(c, MessagesAdded)]
    assert change.messages[0].uid == added.uids[0] and change.seq == head


async def test_a_newer_schema_is_refused_naming_the_migration(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await conn.execute(
            "INSERT INTO schema_version (version, name) VALUES (999, $1)",
            "0999_from_the_future.sql",
        )
        with pytest.raises(SchemaTooNew, match=r"0999_from_the_future\.sql"):
            await migrate(conn)
    finally:
        await conn.close()
    with pytest.raises(SchemaTooNew):
        await PostgresStore.open(dsn, lambda changes: None)


async def test_users_sorted_bytewise_like_sqlite(instances: list[Instance]) -> None:
    a, _ = instances
    for name in ("b", "B", "a", "_"):
        await a.store.create_user(name, "pw")
    users: list[User] = await a.store.list_users()
    assert [u.name for u in users] == sorted(["b", "B", "a", "_"])


async def test_a_lost_connection_gives_unavailable_then_service_resumes(
    dsn: str, instances: list[Instance]
) -> None:
    """PostgreSQL drops the connection of a command in flight (as at a restart): that
    command gets Unavailable (NO [UNAVAILABLE]), never a driver error, and nothing of it
    is stored; the next commands work on fresh connections."""
    a, _ = instances
    bob = await a.store.create_user("bob", "pw")
    await a.store.append(bob.id, "INBOX", [new()], ORIGIN)
    admin = await asyncpg.connect(dsn)
    try:
        async with admin.transaction():
            await admin.execute("SELECT pg_advisory_xact_lock($1)", COMMIT_LOCK)
            append = asyncio.ensure_future(a.store.append(bob.id, "INBOX", [new()], ORIGIN))
            waiting: list[int] = []
            for _ in range(100):  # until the append waits for the lock
                waiting = [
                    r[0]
                    for r in await admin.fetch(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                    )
                ]
                if waiting:
                    break
                await asyncio.sleep(0.02)
            assert len(waiting) == 1
            await admin.execute("SELECT pg_terminate_backend($1)", waiting[0])
            with pytest.raises(Unavailable) as refused:
                await asyncio.wait_for(append, 10)
            assert refused.value.code == "UNAVAILABLE"
    finally:
        await admin.close()
    box = await a.store.get_mailbox(bob.id, "INBOX")
    assert box.messages == 1 and box.uidnext == 2  # nothing of the lost APPEND
    again = await a.store.append(bob.id, "INBOX", [new()], ORIGIN)
    assert again.uids == (2,)
    assert [r.uid for r in await a.store.fetch(box.id, [1, 2, 3])] == [1, 2]


async def test_listen_connection_comes_back_and_catches_up(
    dsn: str, instances: list[Instance]
) -> None:
    """A's LISTEN connection is dropped; B commits meanwhile: A listens again and publishes
    what it missed, then is pushed B's next commit as before."""
    a, b = instances
    bob = await b.store.create_user("bob", "pw")
    await a.store.follow_foreign_commits()
    listener = a.store._listener
    assert listener is not None
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", listener.get_server_pid())
    finally:
        await admin.close()
    await b.store.append(bob.id, "INBOX", [new("while A was not listening")], ORIGIN)
    await a.until(await b.store.change_log_head(), timeout=10)
    await b.store.append(bob.id, "INBOX", [new("after")], ORIGIN)
    await a.until(await b.store.change_log_head(), timeout=10)
    uids = [m.uid for c in a.published if isinstance(c, MessagesAdded) for m in c.messages]
    assert uids == [1, 2]


def test_the_backend_implements_the_whole_protocol_and_is_accepted() -> None:
    """No half backend: store/open.py refuses a PostgreSQL URL while PostgresStore lacks a
    method of the Store Protocol; it lacks none, so a postgresql:// URL passes the check."""
    from store.open import check_store_url, mask_url
    from store.postgres.store import missing_methods

    assert missing_methods() == []
    assert check_store_url("postgresql://u:secret@localhost/db") is None
    assert check_store_url("mysql://u:secret@h/db") is not None
    assert mask_url("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
