"""APPEND on PostgreSQL by a client's name (what the IMAP handler passes) takes the
one-statement path of `PostgresMessages._append_in`, as by id: the mailbox row updated and
locked and the message rows written in one statement, no look-up first (docs/postgresql.md,
"Cost of a write"); a name in another namespace, a mailbox shared with the user, a missing
or \\Noselect one still go the general way and answer as before."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from store import acl
from store.api import AppendResult
from store.changes import Change, MessagesAdded
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
