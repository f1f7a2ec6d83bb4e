"""Mailbox hierarchy rules: create, delete, rename (RFC 3501 §6.3.3-§6.3.5), subscriptions,
UIDVALIDITY, and the changes each publishes."""

from __future__ import annotations

import pytest

from store.api import User
from store.changes import (
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    MessagesAdded,
    MessagesExpunged,
    SubscriptionChanged,
)
from store.errors import MailboxExists, MailboxInvalid, MailboxNotFound
from store.sqlite import SqliteStore
from tests.helpers.store import ORIGIN, Env, new

BOTH_BACKENDS = True


@pytest.fixture
async def bob(store: SqliteStore, env: Env) -> User:
    user = await store.create_user("bob", "pw")
    env.take()
    return user


async def names(store: SqliteStore, user: User) -> list[tuple[str, bool]]:
    return [(m.name, m.selectable) for m in await store.list_mailboxes(user.id)]


async def test_defaults(store: SqliteStore, bob: User) -> None:
    boxes = await store.list_mailboxes(bob.id)
    assert [m.name for m in boxes] == ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]
    assert {m.name: m.special_use for m in boxes}["Sent"] == ("\\Sent",)
    assert all(m.subscribed and m.selectable for m in boxes)
    assert sorted(await store.subscriptions(bob.id)) == sorted(m.name for m in boxes)
    inbox = await store.get_mailbox(bob.id, "inbox")
    assert inbox.name == "INBOX" and inbox.uidnext == 1 and inbox.highestmodseq == 1


async def test_create_with_parents(store: SqliteStore, env: Env, bob: User) -> None:
    info = await store.create_mailbox(bob.id, "a/b/c/", ORIGIN)
    assert info.name == "a/b/c" and info.selectable and not info.subscribed
    changes = env.take()
    assert [c.mailbox.name for c in changes if isinstance(c, MailboxCreated)] == [
        "a",
        "a/b",
        "a/b/c",
    ]
    assert len(changes) == 3
    assert ("a", True) in await names(store, bob)
    assert changes == env.logged()[-3:]
    with pytest.raises(MailboxExists):
        await store.create_mailbox(bob.id, "a/b", ORIGIN)
    assert env.take() == []


@pytest.mark.parametrize("name", ["", "/", "a//b", "/a", "a/b//", "bad%", "bad*", "a\x00b"])
async def test_create_invalid(store: SqliteStore, env: Env, bob: User, name: str) -> None:
    with pytest.raises(MailboxInvalid):
        await store.create_mailbox(bob.id, name, ORIGIN)
    assert env.take() == []


@pytest.mark.parametrize("name", ["INBOX", "inbox", "Inbox/"])
async def test_create_inbox(store: SqliteStore, bob: User, name: str) -> None:
    with pytest.raises(MailboxExists):
        await store.create_mailbox(bob.id, name, ORIGIN)


async def test_inbox_children_and_case(store: SqliteStore, bob: User) -> None:
    info = await store.create_mailbox(bob.id, "inbox/Sub", ORIGIN)
    assert info.name == "INBOX/Sub"
    assert (await store.get_mailbox(bob.id, "Inbox/Sub")).id == info.id


async def test_special_use(store: SqliteStore, env: Env, bob: User) -> None:
    info = await store.create_mailbox(bob.id, "Everything", ORIGIN, ("\\all", "\\ALL"))
    assert info.special_use == ("\\All",)
    [created] = env.take()
    assert isinstance(created, MailboxCreated) and created.special_use == ("\\All",)
    with pytest.raises(MailboxInvalid):
        await store.create_mailbox(bob.id, "X", ORIGIN, ("\\Bogus",))


async def test_uidvalidity_strictly_increases(env: Env) -> None:
    store = await env.open(uidvalidity=lambda: 1000)  # a clock stuck in the past
    bob = await store.create_user("bob", "pw")
    first = [m.uidvalidity for m in await store.list_mailboxes(bob.id)]
    assert sorted(first) == list(range(1000, 1006))
    a = await store.create_mailbox(bob.id, "a", ORIGIN)
    await store.delete_mailbox(bob.id, "a", ORIGIN)
    again = await store.create_mailbox(bob.id, "a", ORIGIN)
    assert a.uidvalidity == 1006 and again.uidvalidity == 1007
    await store.close()
    reopened = await env.open()  # default source: the clock's Unix time, far above
    b = await reopened.create_mailbox(bob.id, "b", ORIGIN)
    assert b.uidvalidity == int(env.clock().timestamp())
    c = await reopened.create_mailbox(bob.id, "c", ORIGIN)
    assert c.uidvalidity == b.uidvalidity + 1  # same second: still increasing


async def test_delete_plain(store: SqliteStore, env: Env, bob: User) -> None:
    await store.create_mailbox(bob.id, "x", ORIGIN)
    await store.append(bob.id, "x", [new("one"), new("two", ("\\Seen",))], ORIGIN)
    info = await store.get_mailbox(bob.id, "x")
    env.take()
    await store.delete_mailbox(bob.id, "x", ORIGIN)
    [deleted] = env.take()
    assert isinstance(deleted, MailboxDeleted)
    assert deleted.mailbox == info.ref
    assert deleted.counts.messages == 2 and deleted.counts.unseen == 1
    assert [m.uid for m in deleted.messages] == [1, 2]
    with pytest.raises(MailboxNotFound):
        await store.get_mailbox(bob.id, "x")
    with pytest.raises(MailboxNotFound):
        await store.delete_mailbox(bob.id, "x", ORIGIN)
    assert await store.fetch(info.id, [1, 2]) == []
    env.check_counters()
    assert env.rows("SELECT count(*) FROM contents") == [(0,)]


async def test_delete_inbox_refused(store: SqliteStore, bob: User) -> None:
    with pytest.raises(MailboxInvalid):
        await store.delete_mailbox(bob.id, "inbox", ORIGIN)


async def test_delete_with_children_leaves_noselect(
    store: SqliteStore, env: Env, bob: User
) -> None:
    """RFC 3501 §6.3.4: the example with foo, foo/bar."""
    await store.create_mailbox(bob.id, "foo/bar", ORIGIN)
    await store.append(bob.id, "foo", [new()], ORIGIN)
    await store.set_subscribed(bob.id, "foo", True, ORIGIN)
    env.take()
    await store.delete_mailbox(bob.id, "foo", ORIGIN)
    placeholder = await store.get_mailbox(bob.id, "foo")
    assert not placeholder.selectable and placeholder.messages == 0
    assert "foo" in await store.subscriptions(bob.id)  # never removed unilaterally
    with pytest.raises(MailboxInvalid):
        await store.open_mailbox(bob.id, "foo", claim_recent=True)
    with pytest.raises(MailboxInvalid):
        await store.append(bob.id, "foo", [new()], ORIGIN)
    with pytest.raises(MailboxInvalid):  # \Noselect with children
        await store.delete_mailbox(bob.id, "foo", ORIGIN)
    await store.delete_mailbox(bob.id, "foo/bar", ORIGIN)
    await store.delete_mailbox(bob.id, "foo", ORIGIN)  # now childless: removed
    assert ("foo", False) not in await names(store, bob)
    kinds = [type(c).__name__ for c in env.take()]
    assert kinds == ["MailboxDeleted", "MailboxDeleted", "MailboxDeleted"]
    env.check_counters()


async def test_create_revives_placeholder(store: SqliteStore, bob: User) -> None:
    old = await store.create_mailbox(bob.id, "p", ORIGIN)
    await store.create_mailbox(bob.id, "p/c", ORIGIN)
    await store.append(bob.id, "p", [new()], ORIGIN)
    await store.delete_mailbox(bob.id, "p", ORIGIN)
    revived = await store.create_mailbox(bob.id, "p", ORIGIN)
    assert revived.id == old.id and revived.selectable
    assert revived.uidvalidity > old.uidvalidity
    assert revived.messages == 0 and revived.uidnext == 1


async def test_rename_with_children_and_subscriptions(
    store: SqliteStore, env: Env, bob: User
) -> None:
    a = await store.create_mailbox(bob.id, "a/b", ORIGIN)
    await store.append(bob.id, "a/b", [new()], ORIGIN)
    await store.set_subscribed(bob.id, "a/b", True, ORIGIN)
    await store.create_mailbox(bob.id, "ab", ORIGIN)  # not a child of "a"
    parent = await store.get_mailbox(bob.id, "a")
    env.take()
    await store.rename_mailbox(bob.id, "a", "x/y", ORIGIN)
    changes = env.take()
    assert [type(c).__name__ for c in changes] == ["MailboxCreated", "MailboxRenamed"]
    assert isinstance(changes[0], MailboxCreated) and changes[0].mailbox.name == "x"
    renamed = changes[1]
    assert isinstance(renamed, MailboxRenamed)
    assert [(o.name, n.name) for o, n in renamed.renames] == [("a", "x/y"), ("a/b", "x/y/b")]
    assert renamed.renames[0][0] == parent.ref
    assert changes == env.logged()[-2:]
    moved = await store.get_mailbox(bob.id, "x/y/b")
    assert moved.id == a.id and moved.uidvalidity == a.uidvalidity and moved.messages == 1
    assert [n for n, _ in await names(store, bob) if n.startswith(("a", "x"))] == [
        "ab",
        "x",
        "x/y",
        "x/y/b",
    ]
    subs = await store.subscriptions(bob.id)  # left alone: RFC 9051 §6.3.6
    assert "a/b" in subs and "x/y/b" not in subs


async def test_rename_leaves_dangling_and_moving_subscriptions(
    store: SqliteStore, env: Env, bob: User
) -> None:
    """RFC 9051 §6.3.6: renaming does not update subscription information on the original
    name; a subscription dangling at the target name stays too. No subscription events."""
    await store.create_mailbox(bob.id, "r/b", ORIGIN)
    await store.set_subscribed(bob.id, "r/b", True, ORIGIN)
    await store.delete_mailbox(bob.id, "r/b", ORIGIN)  # "r/b" stays subscribed
    await store.delete_mailbox(bob.id, "r", ORIGIN)
    moving = await store.create_mailbox(bob.id, "q/b", ORIGIN)
    await store.set_subscribed(bob.id, "q/b", True, ORIGIN)
    env.take()
    await store.rename_mailbox(bob.id, "q", "r", ORIGIN)
    assert not [c for c in env.take() if isinstance(c, SubscriptionChanged)]
    assert (await store.get_mailbox(bob.id, "r/b")).id == moving.id
    assert (await store.get_mailbox(bob.id, "r/b")).subscribed  # the dangling one
    subs = await store.subscriptions(bob.id)
    assert subs.count("r/b") == 1 and "q/b" in subs


async def test_rename_errors(store: SqliteStore, env: Env, bob: User) -> None:
    await store.create_mailbox(bob.id, "a/b", ORIGIN)
    await store.create_mailbox(bob.id, "c", ORIGIN)
    env.take()
    with pytest.raises(MailboxNotFound):
        await store.rename_mailbox(bob.id, "nope", "z", ORIGIN)
    with pytest.raises(MailboxExists):
        await store.rename_mailbox(bob.id, "a", "c", ORIGIN)
    with pytest.raises(MailboxExists):
        await store.rename_mailbox(bob.id, "c", "INBOX", ORIGIN)
    with pytest.raises(MailboxInvalid):
        await store.rename_mailbox(bob.id, "a", "a/b/c", ORIGIN)
    with pytest.raises(MailboxInvalid):
        await store.rename_mailbox(bob.id, "a", "x//y", ORIGIN)
    await store.create_mailbox(bob.id, "d/b", ORIGIN)
    with pytest.raises(MailboxExists):
        await store.rename_mailbox(bob.id, "a/b", "d/b", ORIGIN)
    await store.create_mailbox(bob.id, "e/b", ORIGIN)
    await store.delete_mailbox(bob.id, "e", ORIGIN)  # \Noselect e keeps child e/b
    with pytest.raises(MailboxExists):  # a \Noselect placeholder is a name taken
        await store.rename_mailbox(bob.id, "a", "e", ORIGIN)
    env.take()
    with pytest.raises(MailboxExists):
        await store.rename_mailbox(bob.id, "a", "d", ORIGIN)  # d exists itself
    assert env.take() == []


async def test_rename_inbox(store: SqliteStore, env: Env, bob: User) -> None:
    """RFC 3501 §6.3.5: messages move to the new mailbox, INBOX stays, empty."""
    await store.create_mailbox(bob.id, "INBOX/keep", ORIGIN)
    await store.append(bob.id, "INBOX", [new("1"), new("2", ("\\Seen",)), new("3")], ORIGIN)
    inbox = await store.open_mailbox(bob.id, "INBOX", claim_recent=False)
    env.take()
    await store.rename_mailbox(bob.id, "INBOX", "Old/Mail", ORIGIN)
    changes = env.take()
    assert [type(c).__name__ for c in changes] == [
        "MailboxCreated",
        "MailboxCreated",
        "MessagesAdded",
        "MessagesExpunged",
    ]
    added, expunged = changes[2], changes[3]
    assert isinstance(added, MessagesAdded) and isinstance(expunged, MessagesExpunged)
    assert added.kind == "move" and added.source == inbox.mailbox.ref
    assert added.source_uids == (1, 2, 3) and [m.uid for m in added.messages] == [1, 2, 3]
    assert expunged.kind == "move" and expunged.counts.messages == 0
    assert expunged.modseq == inbox.mailbox.highestmodseq + 1
    assert changes == env.logged()[-4:]
    moved = await store.get_mailbox(bob.id, "Old/Mail")
    assert moved.messages == 3 and moved.unseen == 2 and moved.uidnext == 4
    assert moved.uidvalidity > inbox.mailbox.uidvalidity
    assert [r.uid for r in await store.fetch(moved.id, [1, 2, 3])] == [1, 2, 3]
    after = await store.get_mailbox(bob.id, "INBOX")
    assert after.id == inbox.mailbox.id and after.messages == 0
    assert after.uidvalidity == inbox.mailbox.uidvalidity and after.uidnext == 4
    assert await store.vanished_since(after.id, inbox.mailbox.highestmodseq) == [1, 2, 3]
    assert (await store.get_mailbox(bob.id, "INBOX/keep")).selectable  # inferiors stay
    [uid] = (await store.append(bob.id, "INBOX", [new()], ORIGIN)).uids
    assert uid == 4  # never reused
    env.check_counters()
    with pytest.raises(MailboxExists):
        await store.rename_mailbox(bob.id, "INBOX", "Old/Mail", ORIGIN)


async def test_subscriptions(store: SqliteStore, env: Env, bob: User) -> None:
    with pytest.raises(MailboxNotFound):
        await store.set_subscribed(bob.id, "ghost", True, ORIGIN)
    await store.create_mailbox(bob.id, "news", ORIGIN)
    env.take()
    await store.set_subscribed(bob.id, "ghost", False, ORIGIN)  # RFC 9051 §6.3.8: OK
    await store.set_subscribed(bob.id, "news", False, ORIGIN)  # not subscribed: no-op
    assert env.take() == []
    await store.set_subscribed(bob.id, "news", True, ORIGIN)
    await store.set_subscribed(bob.id, "news", True, ORIGIN)  # no-op
    [sub] = env.take()
    assert isinstance(sub, SubscriptionChanged)
    assert (sub.user, sub.name, sub.subscribed, sub.origin) == ("bob", "news", True, ORIGIN)
    assert (await store.get_mailbox(bob.id, "news")).subscribed
    await store.delete_mailbox(bob.id, "news", ORIGIN)
    assert "news" in await store.subscriptions(bob.id)
    await store.set_subscribed(bob.id, "news", False, ORIGIN)  # a dangling one can go
    [unsub] = env.take()[1:]
    assert isinstance(unsub, SubscriptionChanged) and not unsub.subscribed
    assert "news" not in await store.subscriptions(bob.id)
    await store.set_subscribed(bob.id, "inbox", False, ORIGIN)
    assert "INBOX" not in await store.subscriptions(bob.id)
