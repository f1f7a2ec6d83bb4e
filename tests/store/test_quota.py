"""Quotas in the store (store/quota.py): exact usage through every path that adds or removes
messages, enforcement inside the transaction (never partial), and the QuotaChanged values
(limits, exceeded, within) with their figures, in the change_log like any other change."""

from __future__ import annotations

import asyncio

import pytest

from store.api import NewMessage
from store.changes import MailboxDeleted, MessagesAdded, MessagesExpunged, QuotaChanged
from store.quota import Limits, QuotaInfo, QuotaRefused, QuotaRootNotFound, Usage
from store.sqlite import SqliteStore
from tests.helpers.store import ORIGIN, Env, message

BOTH_BACKENDS = True

DAY = 86400.0


def msg(size: int, subject: str = "q") -> NewMessage:
    """A message of exactly ``size`` octets."""
    head = message(subject, body="")
    assert size >= len(head)
    return NewMessage(head + b"x" * (size - len(head)))


async def usage(store: SqliteStore, user: str) -> Usage:
    return (await store.get_quota(user)).usage


def quota_changes(env: Env) -> list[QuotaChanged]:
    return [c for c in env.take() if isinstance(c, QuotaChanged)]


async def recount(env: Env, user_id: int) -> Usage:
    """Usage recomputed from the messages themselves (the counters' truth)."""
    [(size, count)] = env.rows(
        "SELECT coalesce(sum(m.size), 0), count(*) FROM messages m JOIN mailboxes b"
        " ON b.id = m.mailbox_id WHERE b.owner_id = ?",
        user_id,
    )
    return Usage(int(size), int(count))  # type: ignore[call-overload]


async def test_usage_follows_every_path(env: Env) -> None:
    store = await env.open()
    bob = await store.create_user("bob", "pw")
    alice = await store.create_user("alice", "pw")
    assert await usage(store, "bob") == Usage(0, 0)
    await store.append(bob.id, "INBOX", [msg(1000), msg(2000)], ORIGIN)  # MULTIAPPEND
    assert await usage(store, "bob") == Usage(3000, 2)
    await store.append(bob.id, "INBOX", [msg(500)], ORIGIN, kind="deliver")  # LMTP's path
    inbox = await store.get_mailbox(bob.id, "INBOX")
    await store.copy_messages(inbox.id, [1, 2], bob.id, "Archive", ORIGIN)
    assert await usage(store, "bob") == Usage(6500, 5)
    await store.copy_messages(inbox.id, [3], bob.id, "Trash", ORIGIN, move=True)
    assert await usage(store, "bob") == Usage(6500, 5)  # a MOVE within a root: unchanged
    await store.copy_messages(inbox.id, [1], alice.id, "INBOX", ORIGIN, move=True)
    assert await usage(store, "bob") == Usage(5500, 4)  # across roots: moved over
    assert await usage(store, "alice") == Usage(1000, 1)
    await store.store_flags(inbox.id, [2], "+", ["\\Deleted"], ORIGIN)
    await store.expunge(inbox.id, ORIGIN)
    assert await usage(store, "bob") == Usage(3500, 3)
    await store.delete_mailbox(bob.id, "Archive", ORIGIN)
    assert await usage(store, "bob") == Usage(500, 1)
    await store.set_retention(bob.id, "Trash", 1)
    env.clock.advance(2 * DAY)
    assert await store.expire() == 1
    assert await usage(store, "bob") == Usage(0, 0)
    for user in (bob, alice):
        assert await recount(env, user.id) == await usage(store, user.name)
    env.check_counters()


async def test_set_quota_publishes_limits_and_reads_back(env: Env) -> None:
    store = await env.open()
    bob = await store.create_user("bob", "pw")
    await store.append(bob.id, "INBOX", [msg(3000)], ORIGIN)
    env.take()
    info = await store.set_quota("bob", Limits(storage=10, messages=5), ORIGIN)
    assert info.resources() == [("STORAGE", 2, 10), ("MESSAGE", 1, 5)]  # KiB truncated
    assert await store.get_quota("bob") == info
    assert await store.get_quota_root(bob.id, "Not/Yet/Created") == info  # RFC 9208 §4.1.2
    (change,) = env.take()
    assert change == QuotaChanged(
        change.seq, change.at, ORIGIN, "limits", "bob", "bob", 10, 3000, 5, 1
    )
    assert env.logged()[-1] == change
    unlimited = await store.set_quota("bob", Limits(), ORIGIN)  # SETQUOTA () removes both
    assert unlimited.resources() == []
    with pytest.raises(QuotaRootNotFound):
        await store.get_quota("nobody")
    with pytest.raises(QuotaRootNotFound):
        await store.set_quota("nobody", Limits(storage=1))
    with pytest.raises(ValueError, match="quota limit"):
        Limits(storage=-1)


async def test_append_over_storage_is_refused_whole_and_logged(env: Env) -> None:
    store = await env.open()
    bob = await store.create_user("bob", "pw")
    await store.set_quota("bob", Limits(storage=4), ORIGIN)  # 4096 octets
    await store.append(bob.id, "INBOX", [msg(3000)], ORIGIN)
    env.take()
    with pytest.raises(QuotaRefused) as refused:
        await store.append(bob.id, "INBOX", [msg(500), msg(597)], ORIGIN)  # one octet over
    assert refused.value.code == "OVERQUOTA"
    assert await usage(store, "bob") == Usage(3000, 1)  # nothing of the MULTIAPPEND
    (exceeded,) = env.take()
    assert isinstance(exceeded, QuotaChanged)
    assert (
        exceeded.kind,
        exceeded.user,
        exceeded.storage_limit,
        exceeded.storage_used,
        exceeded.message_limit,
        exceeded.messages_used,
    ) == ("exceeded", "bob", 4, 3000, None, 1)
    assert env.logged()[-1] == exceeded  # committed in a transaction of its own
    await store.append(bob.id, "INBOX", [msg(500), msg(596)], ORIGIN)  # exactly the limit
    assert await usage(store, "bob") == Usage(4096, 3)
    env.check_counters()


async def test_message_limit_copy_never_partial(env: Env) -> None:
    store = await env.open()
    bob = await store.create_user("bob", "pw")
    await store.append(bob.id, "INBOX", [msg(300), msg(300), msg(300)], ORIGIN)
    await store.set_quota("bob", Limits(messages=5), ORIGIN)
    inbox = await store.get_mailbox(bob.id, "INBOX")
    env.take()
    with pytest.raises(QuotaRefused):
        await store.copy_messages(inbox.id, [1, 2, 3], bob.id, "Archive", ORIGIN)
    assert (await store.get_mailbox(bob.id, "Archive")).messages == 0
    assert [c.kind for c in quota_changes(env)] == ["exceeded"]
    # A MOVE within the root adds nothing: allowed even when full.
    await store.copy_messages(inbox.id, [1, 2], bob.id, "Archive", ORIGIN)
    assert await usage(store, "bob") == Usage(1500, 5)
    result = await store.copy_messages(inbox.id, [3], bob.id, "Trash", ORIGIN, move=True)
    assert result.dest_uids == (1,)
    assert not quota_changes(env)
    env.check_counters()


async def test_within_after_expunge_delete_move_and_raised_limit(env: Env) -> None:
    store = await env.open()
    bob = await store.create_user("bob", "pw")
    alice = await store.create_user("alice", "pw")
    await store.append(bob.id, "INBOX", [msg(300), msg(300)], ORIGIN)
    await store.append(bob.id, "Archive", [msg(300)], ORIGIN)
    await store.set_quota("bob", Limits(messages=3), ORIGIN)  # full: 3 >= 3
    inbox = await store.get_mailbox(bob.id, "INBOX")
    env.take()
    # EXPUNGE: full -> not full.
    await store.store_flags(inbox.id, [1], "+", ["\\Deleted"], ORIGIN)
    await store.expunge(inbox.id, ORIGIN)
    changes = env.take()
    assert [type(c).__name__ for c in changes] == [
        "FlagsChanged",
        "MessagesExpunged",
        "QuotaChanged",
    ]
    within = changes[-1]
    assert isinstance(within, QuotaChanged)
    assert (within.kind, within.messages_used, within.message_limit) == ("within", 2, 3)
    # Not full any more: another expunge says nothing.
    await store.append(bob.id, "INBOX", [msg(300)], ORIGIN)  # full again
    env.take()
    # MOVE out of the root.
    await store.copy_messages(inbox.id, [2], alice.id, "INBOX", ORIGIN, move=True)
    changes = env.take()
    assert [type(c) for c in changes] == [MessagesAdded, MessagesExpunged, QuotaChanged]
    await store.append(bob.id, "INBOX", [msg(300)], ORIGIN)
    env.take()
    # DELETE: QuotaWithin follows the MailboxDelete.
    await store.delete_mailbox(bob.id, "Archive", ORIGIN)
    changes = env.take()
    assert [type(c) for c in changes] == [MailboxDeleted, QuotaChanged]
    await store.append(bob.id, "INBOX", [msg(300)], ORIGIN)
    env.take()
    # A raised limit: QuotaChange then QuotaWithin; a raise on a root not full: no Within.
    await store.set_quota("bob", Limits(messages=10), ORIGIN)
    assert [c.kind for c in quota_changes(env)] == ["limits", "within"]
    await store.set_quota("bob", Limits(messages=20), ORIGIN)
    assert [c.kind for c in quota_changes(env)] == ["limits"]


async def test_within_after_expiry(env: Env) -> None:
    store = await env.open()
    bob = await store.create_user("bob", "pw")
    await store.append(bob.id, "Junk", [msg(2048)], ORIGIN)
    await store.set_quota("bob", Limits(storage=2), ORIGIN)
    await store.set_retention(bob.id, "Junk", 1)
    env.clock.advance(2 * DAY)
    env.take()
    assert await store.expire() == 1
    (expunged, within) = env.take()
    assert isinstance(expunged, MessagesExpunged) and isinstance(within, QuotaChanged)
    assert (within.kind, within.storage_used, within.origin.service) == ("within", 0, "expire")


async def test_concurrent_appends_race_for_the_last_bytes(env: Env) -> None:
    store = await env.open()
    bob = await store.create_user("bob", "pw")
    await store.set_quota("bob", Limits(storage=2), ORIGIN)  # room for exactly one
    results = await asyncio.gather(
        *(store.append(bob.id, "INBOX", [msg(1500, f"racer {i}")], ORIGIN) for i in range(8)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, QuotaRefused) for r in results if isinstance(r, BaseException))
    assert await usage(store, "bob") == Usage(1500, 1)


async def test_two_processes_share_the_quota(env: Env) -> None:
    """A second store on the same file (the CLI, another server) sees and respects it."""
    first = await env.open()
    second = await env.open()
    bob = await first.create_user("bob", "pw")
    await second.set_quota("bob", Limits(messages=1), ORIGIN)
    await first.append(bob.id, "INBOX", [msg(300)], ORIGIN)
    with pytest.raises(QuotaRefused):
        await second.append(bob.id, "Archive", [msg(300)], ORIGIN)
    assert await second.get_quota("bob") == QuotaInfo(
        (await second.get_quota("bob")).root, Usage(300, 1)
    )


async def test_deleting_a_user_deletes_their_root(env: Env) -> None:
    store = await env.open()
    await store.create_user("bob", "pw")
    await store.set_quota("bob", Limits(storage=100), ORIGIN)
    await store.delete_user("bob")
    with pytest.raises(QuotaRootNotFound):
        await store.get_quota("bob")
    await store.create_user("bob", "pw")  # a new bob inherits no limits
    assert (await store.get_quota("bob")).root.limits == Limits()
