"""Expiry by per-mailbox retention (store/expire.py): what goes, the Change it publishes."""

from __future__ import annotations

import datetime as dt

import pytest

from store.api import NewMessage
from store.changes import MessagesExpunged
from store.errors import MailboxNotFound
from tests.helpers.store import ORIGIN, Env, message

BOTH_BACKENDS = True

DAY = 86400.0


async def test_expire_removes_messages_older_than_retention(env: Env) -> None:
    store = await env.open()
    bob = await store.create_user("bob", "pw")
    await store.append(
        bob.id, "INBOX", [NewMessage(message("old 1")), NewMessage(message("old 2"))], ORIGIN
    )
    env.clock.advance(5 * DAY)
    await store.append(bob.id, "INBOX", [NewMessage(message("new"))], ORIGIN)
    await store.append(bob.id, "Archive", [NewMessage(message("kept: no retention"))], ORIGIN)
    await store.set_retention(bob.id, "inbox", 7)
    assert (await store.get_mailbox(bob.id, "INBOX")).retention_days == 7
    env.clock.advance(2 * DAY)
    assert await store.expire() == 0  # the old ones are exactly 7 days old: not yet
    env.clock.advance(1)
    env.take()
    assert await store.expire() == 2
    (change,) = env.take()
    assert isinstance(change, MessagesExpunged)
    assert change.kind == "expire"
    assert change.origin.service == "expire" and change.origin.session is None
    assert [m.uid for m in change.messages] == [1, 2]
    assert change.counts.messages == 1
    assert change.mailbox.name == "INBOX" and change.mailbox.owner == "bob"
    assert env.logged()[-1] == change
    info = await store.get_mailbox(bob.id, "INBOX")
    assert info.messages == 1
    assert await store.vanished_since(info.id, 1) == [1, 2]  # QRESYNC remembers them
    assert (await store.get_mailbox(bob.id, "Archive")).messages == 1
    env.check_counters()


async def test_expire_uses_savedate_not_internaldate(env: Env) -> None:
    import datetime as dt

    store = await env.open()
    bob = await store.create_user("bob", "pw")
    ancient = dt.datetime(2001, 1, 1, tzinfo=dt.UTC)
    await store.append(bob.id, "INBOX", [NewMessage(message("x"), internaldate=ancient)], ORIGIN)
    await store.set_retention(bob.id, "INBOX", 1)
    assert await store.expire() == 0  # saved just now
    assert await store.expire(now=env.clock.now + dt.timedelta(days=2)) == 1


async def test_one_transaction_per_mailbox_and_clearing(env: Env) -> None:
    store = await env.open()
    bob = await store.create_user("bob", "pw")
    alice = await store.create_user("alice", "pw")
    for user in (bob, alice):
        await store.append(user.id, "INBOX", [NewMessage(message("m"))], ORIGIN)
        await store.append(user.id, "Trash", [NewMessage(message("t"))], ORIGIN)
        await store.set_retention(user.id, "Trash", 30)
    await store.set_retention(alice.id, "INBOX", 30)
    await store.set_retention(alice.id, "INBOX", None)  # cleared
    env.clock.advance(31 * DAY)
    env.take()
    assert await store.expire() == 2
    changes = env.take()
    assert [
        (c.mailbox.owner, c.mailbox.name)  # type: ignore[union-attr]
        for c in changes
    ] == [("bob", "Trash"), ("alice", "Trash")]
    assert len({c.seq for c in changes}) == 2


async def test_set_retention_errors(env: Env) -> None:
    store = await env.open()
    bob = await store.create_user("bob", "pw")
    with pytest.raises(MailboxNotFound):
        await store.set_retention(bob.id, "Nope", 3)
    with pytest.raises(ValueError, match="retention"):
        await store.set_retention(bob.id, "INBOX", -1)
    await store.set_retention(bob.id, "INBOX", 0)
    assert (await store.get_mailbox(bob.id, "INBOX")).retention_days is None


async def test_expire_refuses_a_naive_now(env: Env) -> None:
    """A datetime without a zone would be compared as if it were UTC: refused, as the store
    clock's is; an aware one from any zone is taken."""
    store = await env.open()
    with pytest.raises(ValueError):
        await store.expire(dt.datetime(2026, 1, 1))  # noqa: DTZ001 - the naive one refused
    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert await store.expire(dt.datetime(2026, 1, 1, tzinfo=plus_two)) == 0
