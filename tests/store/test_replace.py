"""Store.replace (RFC 8508): the append and the expunge in one transaction, their changes
(MessageAppend + MessageExpunge events) committed together or not at all; on both backends."""

from __future__ import annotations

import pytest

from notify.events import events_for
from store.api import NewMessage, User
from store.changes import MessagesAdded, MessagesExpunged
from store.errors import MailboxNotFound, MessageGone, NoPermission
from store.quota import Limits, QuotaRefused
from store.sqlite import SqliteStore
from tests.helpers.store import ORIGIN, Env, message, new

BOTH_BACKENDS = True  # tests/store/conftest.py: SQLite and PostgreSQL


@pytest.fixture
async def bob(store: SqliteStore, env: Env) -> User:
    user = await store.create_user("bob", "pw")
    env.take()
    return user


async def test_replace_appends_then_expunges_in_one_commit(
    store: SqliteStore, env: Env, bob: User
) -> None:
    await store.append(bob.id, "Drafts", [new("v1", ("\\Draft",)), new("other")], ORIGIN)
    drafts = await store.get_mailbox(bob.id, "Drafts")
    env.take()
    result = await store.replace(drafts.id, 1, bob.id, drafts.id, new("v2", ("\\Draft",)), ORIGIN)
    assert (result.mailbox.id, result.uids) == (drafts.id, (3,))
    added, expunged = env.take()
    assert isinstance(added, MessagesAdded) and isinstance(expunged, MessagesExpunged)
    assert added.seq + 1 == expunged.seq  # one transaction, appended first
    assert (added.kind, [m.uid for m in added.messages]) == ("append", [3])
    assert (expunged.kind, [m.uid for m in expunged.messages]) == ("expunge", [1])
    assert expunged.modseq > added.counts.highestmodseq
    assert await store.vanished_since(drafts.id, 0) == [1]  # QRESYNC remembers it
    assert (await store.open_mailbox(bob.id, "Drafts", claim_recent=False)).uids == [2, 3]
    assert [e.type.value for c in (added, expunged) for e in events_for(c)] == [
        "MessageAppend",
        "MessageExpunge",
    ]
    env.check_counters()


async def test_replace_into_another_mailbox(store: SqliteStore, env: Env, bob: User) -> None:
    await store.append(bob.id, "Drafts", [new("draft")], ORIGIN)
    drafts = await store.get_mailbox(bob.id, "Drafts")
    sent = await store.get_mailbox(bob.id, "Sent")
    result = await store.replace(drafts.id, 1, bob.id, "Sent", new("sent"), ORIGIN)
    assert (result.mailbox.id, result.uids) == (sent.id, (1,))
    assert (await store.get_mailbox(bob.id, "Drafts")).messages == 0
    assert (await store.get_mailbox(bob.id, "Sent")).messages == 1
    env.check_counters()


async def test_failed_replace_changes_nothing(store: SqliteStore, env: Env, bob: User) -> None:
    await store.append(bob.id, "Drafts", [new("draft")], ORIGIN)
    drafts = await store.get_mailbox(bob.id, "Drafts")
    alice = await store.create_user("alice", "pw")
    theirs = await store.get_mailbox(alice.id, "INBOX")
    env.take()
    before = env.logged()
    with pytest.raises(MailboxNotFound):  # the handler adds TRYCREATE
        await store.replace(drafts.id, 1, bob.id, "Missing", new("x"), ORIGIN)
    with pytest.raises(MessageGone):  # the source was expunged: nothing appended
        await store.replace(drafts.id, 9, bob.id, "Sent", new("x"), ORIGIN)
    with pytest.raises((NoPermission, MailboxNotFound)):
        await store.replace(drafts.id, 1, bob.id, theirs.id, new("x"), ORIGIN, need="i")
    assert env.logged() == before
    assert (await store.get_mailbox(bob.id, "Drafts")).messages == 1
    assert (await store.get_mailbox(bob.id, "Sent")).messages == 0
    assert env.take() == []
    env.check_counters()


async def test_replace_quota_counts_the_net_change(store: SqliteStore, env: Env, bob: User) -> None:
    """RFC 8508 §3.4: "the quota implications of APPEND are evaluated within the context of
    the pending EXPUNGE so that only the net quota consumption is considered"."""
    head = message("q", body="")
    await store.append(bob.id, "Drafts", [NewMessage(head + b"x" * 900)], ORIGIN)
    await store.set_quota("bob", Limits(messages=1), ORIGIN)  # full: 1 >= 1
    drafts = await store.get_mailbox(bob.id, "Drafts")
    with pytest.raises(QuotaRefused):  # an APPEND is refused ...
        await store.append(bob.id, "Drafts", [new("more")], ORIGIN)
    # ... a REPLACE of the one message is not: the net change is zero messages.
    result = await store.replace(drafts.id, 1, bob.id, "Sent", new("replacement"), ORIGIN)
    assert result.uids == (1,)
    assert (await store.get_quota("bob")).usage.messages == 1
    env.check_counters()
