"""APPEND on PostgreSQL by a client's name (what the IMAP handler passes) takes the
one-statement path of `PostgresMessages._append_in`, as by id: the mailbox row updated and
locked and the message rows written in one statement, no look-up first (docs/postgresql.md,
"Cost of a write"); a name in another namespace, a mailbox shared with the user, a missing
or \\Noselect one still go the general way and answer as before."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator

import asyncpg
import pytest

from store import acl
from store.api import AppendResult
from store.changes import Change, MessagesAdded, read_change, to_json
from store.errors import MailboxInvalid, MailboxNotFound
from store.postgres.store import PostgresStore
from store.quota import Limits, QuotaRefused
from tests.helpers.store import ORIGIN, SCRYPT_N, new


@pytest.fixture
async def store(dsn: str) -> AsyncIterator[PostgresStore]:
    opened = await PostgresStore.open(dsn, lambda changes: None, scrypt_n=SCRYPT_N)
    yield opened
    await opened.close()


class Statements:
    """Every statement the store's pooled connections send (asyncpg's query logger)."""

    def __init__(self, store: PostgresStore) -> None:
        self.sent: list[str] = []
        for holder in store._pool._pool._holders:  # the driver's pool
            con = holder._con
            if con is not None:
                con.add_query_logger(lambda record: self.sent.append(record.query))

    def take(self) -> list[str]:
        sent, self.sent = self.sent, []
        return sent


async def test_append_by_name_is_one_statement_with_its_log_and_commit(
    store: PostgresStore,
) -> None:
    bob = await store.create_user("bob", "pw")
    await store.create_mailbox(bob.id, "Work/Mail", ORIGIN)
    # asyncpg reads the array types' codecs at a connection's first such statement: once.
    await store.append(bob.id, "INBOX", [new("first")], ORIGIN, need="i")
    statements = Statements(store)
    for name, uid in (("INBOX", 2), ("inbox", 3), ("Work/Mail", 1), ("Work/Mail/", 2)):
        result = await store.append(bob.id, name, [new(f"to {name}")], ORIGIN, need="i")
        assert result.uids == (uid,)
        sent = statements.take()
        assert [s.split()[0].rstrip(";") for s in sent] == ["BEGIN", "WITH", "SELECT", "COMMIT"]
        assert "FOR UPDATE" not in sent[1] and "imapd_log_changes" in sent[2]
    records = await store.fetch((await store.get_mailbox(bob.id, "INBOX")).id, [1, 2, 3])
    assert [r.uid for r in records] == [1, 2, 3]


async def test_other_targets_by_name_answer_as_before(store: PostgresStore) -> None:
    alice = await store.create_user("alice", "pw")
    bob = await store.create_user("bob", "pw")
    await store.create_mailbox(alice.id, "Team", ORIGIN)
    await store.set_acl(alice.id, "Team", "bob", acl.parse_modification("lri"), ORIGIN)
    await store.create_mailbox(bob.id, "Parent/Child", ORIGIN)
    await store.delete_mailbox(bob.id, "Parent", ORIGIN)  # Parent stays, \Noselect

    shared = await store.append(bob.id, "Other Users/alice/Team", [new("x")], ORIGIN, need="i")
    assert shared.uids == (1,) and shared.mailbox.owner == "alice"
    with pytest.raises(MailboxNotFound):
        await store.append(bob.id, "Nowhere", [new("lost")], ORIGIN, need="i")
    with pytest.raises(MailboxInvalid):
        await store.append(bob.id, "Parent", [new("lost")], ORIGIN, need="i")
    box = await store.get_mailbox(bob.id, "INBOX")
    assert box.messages == 0


async def test_a_group_of_appends_is_one_statement_each_answered_as_alone(dsn: str) -> None:
    """Concurrent APPENDs to one mailbox (store/postgres/appendbatch.py): one statement
    writes the group; each caller gets its UIDs in queue order, each MessagesAdded its own
    messages, its own MODSEQ and the counts after it, as job by job; one COMMIT."""
    published: list[Change] = []
    store = await PostgresStore.open(dsn, published.extend, scrypt_n=SCRYPT_N)
    try:
        bob = await store.create_user("bob", "pw")
        await store.append(bob.id, "INBOX", [new("first")], ORIGIN, need="i")
        before = await store.get_mailbox(bob.id, "INBOX")
        published.clear()
        statements = Statements(store)
        batches = [[new("a")], [new("b", flags=("\\Seen",)), new("c")], [new("d")], [new("e")]]
        results = await asyncio.gather(
            *(store.append(bob.id, "INBOX", b, ORIGIN, need="i") for b in batches)
        )
        assert [r.uids for r in results] == [(2,), (3, 4), (5,), (6,)]
        sent = [s.split()[0].rstrip(";") for s in statements.take()]
        assert sent == ["BEGIN", "WITH", "SELECT", "COMMIT"]
        added = [c for c in published if isinstance(c, MessagesAdded)]
        assert [[m.uid for m in c.messages] for c in added] == [[2], [3, 4], [5], [6]]
        assert [c.counts.messages for c in added] == [2, 4, 5, 6]
        assert [c.counts.uidnext for c in added] == [3, 5, 6, 7]
        assert [c.counts.unseen for c in added] == [2, 3, 4, 5]
        first = before.highestmodseq + 1  # one MODSEQ per APPEND, ascending
        assert [[m.modseq for m in c.messages] for c in added] == [
            [first],
            [first + 1, first + 1],
            [first + 2],
            [first + 3],
        ]
        assert [c.counts.highestmodseq for c in added] == [first + i for i in range(4)]
        assert [c.seq for c in added] == sorted(c.seq for c in added)
        after = await store.get_mailbox(bob.id, "INBOX")
        assert (after.messages, after.unseen, after.uidnext) == (6, 5, 7)
        sizes = [before.size, *(c.counts.size for c in added)]
        assert [b - a for a, b in itertools.pairwise(sizes)] == [
            sum(m.size for m in c.messages) for c in added
        ]
        assert after.size == sizes[-1]
        records = await store.fetch(after.id, list(range(1, 7)), content=True)
        assert [r.content for r in records][1:] == [m.content for b in batches for m in b]
    finally:
        await store.close()


async def test_a_group_over_quota_runs_again_alone_so_each_gets_its_answer(dsn: str) -> None:
    store = await PostgresStore.open(dsn, lambda changes: None, scrypt_n=SCRYPT_N)
    try:
        bob = await store.create_user("bob", "pw")
        await store.set_quota("bob", Limits(messages=3), ORIGIN)
        results = await asyncio.gather(
            *(store.append(bob.id, "INBOX", [new(f"m{i}")], ORIGIN) for i in range(5)),
            return_exceptions=True,
        )
        assert [r.uids for r in results[:3] if isinstance(r, AppendResult)] == [(1,), (2,), (3,)]
        assert all(isinstance(r, QuotaRefused) for r in results[3:]), results
        assert (await store.get_mailbox(bob.id, "INBOX")).messages == 3
    finally:
        await store.close()


async def test_a_lone_append_is_one_round_trip_its_log_row_as_published(dsn: str) -> None:
    """When the store follows the change log (as the server does), a lone APPEND to the
    user's own mailbox is one statement in an implicit transaction: rows, change_log row
    and COMMIT in one round trip (store/postgres/appendone.py); the payload PostgreSQL
    completes reads back as the Change published."""
    published: list[Change] = []
    store = await PostgresStore.open(dsn, published.extend, scrypt_n=SCRYPT_N)
    try:
        await store.follow_foreign_commits()
        bob = await store.create_user("bob", "pw")
        await store.append(bob.id, "INBOX", [new("first")], ORIGIN, need="i")
        statements = Statements(store)
        published.clear()
        pair = [new("a", flags=("\\Seen", "$Work")), new("b", message_id="<b@x>")]
        for name, batch, uids in (("Sent", pair, (1, 2)), ("INBOX", [new("c")], (2,))):
            result = await store.append(bob.id, name, batch, ORIGIN, need="i")
            assert result.uids == uids
            sent = statements.take()
            assert len(sent) == 1 and sent[0].startswith("WITH"), sent
            assert "imapd_log_changes" in sent[0]
        logged = await store.change_log(after=published[0].seq - 1)
        assert [seq for seq, _, _ in logged] == [c.seq for c in published]
        for (seq, kind, payload), change in zip(logged, published, strict=True):
            assert isinstance(change, MessagesAdded)
            assert read_change(kind, seq, payload) == change
            assert json.loads(payload) == json.loads(to_json(change))
        sent_box = published[0]
        assert isinstance(sent_box, MessagesAdded)
        assert sent_box.mailbox.special_use == ("\\Sent",)
        assert [m.content_id for m in sent_box.messages] == [
            r.content_id for r in await store.fetch(sent_box.mailbox.id, [1, 2])
        ]
        inbox = await store.get_mailbox(bob.id, "INBOX")
        assert (inbox.messages, inbox.uidnext) == (2, 3)
    finally:
        await store.close()


async def test_a_lone_append_falls_back_where_it_does_not_apply(dsn: str) -> None:
    """A quota root, a missing mailbox: the one statement writes nothing and the usual
    transaction answers as before (a refused quota's QuotaRefused, MailboxNotFound)."""
    store = await PostgresStore.open(dsn, lambda changes: None, scrypt_n=SCRYPT_N)
    try:
        await store.follow_foreign_commits()
        bob = await store.create_user("bob", "pw")
        await store.append(bob.id, "INBOX", [new("first")], ORIGIN, need="i")
        statements = Statements(store)
        with pytest.raises(MailboxNotFound):
            await store.append(bob.id, "Nowhere", [new("lost")], ORIGIN, need="i")
        assert statements.take()[0].startswith("WITH")
        await store.set_quota("bob", Limits(messages=2), ORIGIN)
        statements.take()
        assert (await store.append(bob.id, "INBOX", [new("x")], ORIGIN)).uids == (2,)
        sent = [s.split()[0].rstrip(";") for s in statements.take()]
        assert sent[:2] == ["WITH", "BEGIN"] and sent[-1] == "COMMIT", sent
        with pytest.raises(QuotaRefused):
            await store.append(bob.id, "INBOX", [new("y")], ORIGIN)
        # Known to be under a quota now: straight to the transaction.
        assert statements.take()[0].split()[0].rstrip(";") == "BEGIN"
        assert (await store.get_mailbox(bob.id, "INBOX")).messages == 2
    finally:
        await store.close()


async def test_foreign_commits_are_published_in_order_among_lone_appends(dsn: str) -> None:
    """Two instances APPEND at once, each lone APPEND in one round trip: each publishes
    every commit, its own and the other's (woken by NOTIFY, held while its own statements
    are in flight), gap-free and in seq order."""
    seen: dict[str, list[Change]] = {"a": [], "b": []}
    a = await PostgresStore.open(dsn, seen["a"].extend, scrypt_n=SCRYPT_N)
    b = await PostgresStore.open(dsn, seen["b"].extend, scrypt_n=SCRYPT_N)
    try:
        bob = await a.create_user("bob", "pw")
        ann = await a.create_user("ann", "pw")
        await a.follow_foreign_commits()
        await b.follow_foreign_commits()
        head = await a.change_log_head()

        async def appends(store: PostgresStore, user: int, count: int) -> None:
            for i in range(count):
                await store.append(user, "INBOX", [new(f"m{i}")], ORIGIN, need="i")

        await asyncio.gather(appends(a, bob.id, 30), appends(b, ann.id, 30))
        last = await a.change_log_head()
        assert last == head + 60
        for name in ("a", "b"):  # published by the stores themselves (no publish_foreign here)
            async with asyncio.timeout(30):
                while not seen[name] or seen[name][-1].seq < last:
                    await asyncio.sleep(0.05)
            seqs = [c.seq for c in seen[name] if c.seq > head]
            assert seqs == list(range(head + 1, last + 1)), name
    finally:
        await a.close()
        await b.close()


async def test_a_foreign_commit_noticed_while_a_lone_append_waits_is_published(dsn: str) -> None:
    """Another instance's commit whose NOTIFY arrives while a lone APPEND's statement is in
    flight is held (it might be that APPEND's own) and published once the statement ends,
    here one that wrote nothing (its mailbox turned \\Noselect while it waited for the row
    lock), so no commit of this instance's reads it back."""
    seen: list[Change] = []
    a = await PostgresStore.open(dsn, seen.extend, scrypt_n=SCRYPT_N)
    b = await PostgresStore.open(dsn, lambda changes: None, scrypt_n=SCRYPT_N)
    blocker = await asyncpg.connect(dsn)
    try:
        bob = await a.create_user("bob", "pw")
        ann = await a.create_user("ann", "pw")
        await a.create_mailbox(bob.id, "Work", ORIGIN)
        await a.follow_foreign_commits()
        await b.follow_foreign_commits()
        locking = blocker.transaction()
        await locking.start()
        await blocker.execute(
            "UPDATE mailboxes SET selectable = false WHERE owner_id = $1 AND name = 'Work'",
            bob.id,
        )
        waiting = asyncio.ensure_future(a.append(bob.id, "Work", [new("x")], ORIGIN, need="i"))
        async with asyncio.timeout(30):
            while not await blocker.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database()"
            ):
                await asyncio.sleep(0.02)
        await b.append(ann.id, "INBOX", [new("y")], ORIGIN, need="i")
        foreign = await b.change_log_head()
        async with asyncio.timeout(30):
            while foreign not in a._held:  # its NOTIFY came while the statement waits
                await asyncio.sleep(0.02)
        assert not any(c.seq == foreign for c in seen)
        await locking.commit()
        with pytest.raises(MailboxInvalid):
            await waiting
        async with asyncio.timeout(30):
            while not any(c.seq == foreign for c in seen):
                await asyncio.sleep(0.02)
        assert not a._held
    finally:
        await blocker.close()
        await a.close()
        await b.close()
