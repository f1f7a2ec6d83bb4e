"""APPEND on PostgreSQL by a client's name (what the IMAP handler passes) takes the
one-statement path of `PostgresMessages._append_in`, as by id: the mailbox row updated and
locked and the message rows written in one statement, no look-up first (docs/postgresql.md,
"Cost of a write"); a name in another namespace, a mailbox shared with the user, a missing
or \\Noselect one still go the general way and answer as before."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from store import acl
from store.errors import MailboxInvalid, MailboxNotFound
from store.postgres.store import PostgresStore
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
