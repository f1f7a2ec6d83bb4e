"""METADATA annotations in the store (RFC 5464): one transaction per SETMETADATA with its
MetadataChanged change in change_log and published; limits all or nothing; annotations
following RENAME, copied by a RENAME of INBOX, gone with DELETE and with the user."""

from __future__ import annotations

import pytest

from store.api import User
from store.changes import MetadataChanged
from store.errors import MailboxNotFound
from store.metadata import (
    MetadataLimits,
    MetadataNoPrivate,
    MetadataTooBig,
    MetadataTooMany,
)
from store.sqlite import SqliteStore
from tests.helpers.store import ORIGIN, Env

BOTH_BACKENDS = True

LIMITS = MetadataLimits(max_size=10, max_entries=3)


@pytest.fixture
async def bob(store: SqliteStore, env: Env) -> User:
    user = await store.create_user("bob", "pw")
    env.take()
    return user


async def get(
    store: SqliteStore, user: User, mailbox: str | None, *entries: str, depth: int | None = 0
) -> dict[str, bytes | None]:
    return dict(await store.get_metadata(user.id, mailbox, entries, depth=depth))


async def test_set_publishes_one_change_logged_in_the_same_transaction(
    store: SqliteStore, env: Env, bob: User
) -> None:
    changed = await store.set_metadata(
        bob.id,
        "INBOX",
        [("/private/comment", b"mine"), ("/shared/comment", b"ours")],
        ORIGIN,
        LIMITS,
    )
    assert changed == ("/private/comment", "/shared/comment")
    [change] = env.take()
    assert isinstance(change, MetadataChanged)
    assert change.user == "bob"
    assert change.mailbox is not None and change.mailbox.name == "INBOX"
    assert change.entries == ("/private/comment", "/shared/comment")
    assert change.origin == ORIGIN
    assert env.logged()[-1] == change  # change_log holds exactly what was published
    assert await get(store, bob, "INBOX", "/private/comment", "/shared/comment") == {
        "/private/comment": b"mine",
        "/shared/comment": b"ours",
    }


async def test_server_entries_split_private_and_shared(
    store: SqliteStore, env: Env, bob: User
) -> None:
    await store.set_metadata(
        bob.id, None, [("/shared/comment", b"all"), ("/private/comment", b"me")], ORIGIN, LIMITS
    )
    changes = env.take()
    assert [(c.user, c.mailbox, c.entries) for c in changes if isinstance(c, MetadataChanged)] == [
        ("bob", None, ("/private/comment",)),
        ("", None, ("/shared/comment",)),
    ]
    alice = await store.create_user("alice", "pw")
    assert await get(store, alice, None, "/shared/comment", "/private/comment") == {
        "/shared/comment": b"all",
        "/private/comment": None,
    }


async def test_nothing_changed_publishes_nothing(store: SqliteStore, env: Env, bob: User) -> None:
    await store.set_metadata(bob.id, "INBOX", [("/shared/a", b"1")], ORIGIN, LIMITS)
    env.take()
    assert (
        await store.set_metadata(
            bob.id, "INBOX", [("/shared/a", b"1"), ("/shared/missing", None)], ORIGIN, LIMITS
        )
        == ()
    )
    assert env.take() == []


async def test_limits_are_all_or_nothing(store: SqliteStore, env: Env, bob: User) -> None:
    await store.set_metadata(
        bob.id, "INBOX", [("/shared/a", b"1"), ("/shared/b", b"2")], ORIGIN, LIMITS
    )
    env.take()
    with pytest.raises(MetadataTooBig) as too_big:
        await store.set_metadata(
            bob.id, "INBOX", [("/shared/a", b"x"), ("/shared/c", b"y" * 11)], ORIGIN, LIMITS
        )
    assert too_big.value.code == "METADATA MAXSIZE 10"
    with pytest.raises(MetadataTooMany):
        await store.set_metadata(
            bob.id, "INBOX", [("/shared/c", b"3"), ("/private/d", b"4")], ORIGIN, LIMITS
        )
    # replacing and removing in the same command keeps the count within the limit
    await store.set_metadata(
        bob.id,
        "INBOX",
        [("/shared/a", None), ("/shared/c", b"3"), ("/private/d", b"4")],
        ORIGIN,
        LIMITS,
    )
    with pytest.raises(MetadataNoPrivate):
        await store.set_metadata(
            bob.id, None, [("/private/x", b"1")], ORIGIN, MetadataLimits(private=False)
        )
    assert await get(store, bob, "INBOX", "/shared", depth=None) == {
        "/shared/b": b"2",
        "/shared/c": b"3",
    }
    assert [type(c) for c in env.take()] == [MetadataChanged]


async def test_depth(store: SqliteStore, bob: User) -> None:
    await store.set_metadata(
        bob.id,
        "INBOX",
        [
            ("/private/a", b"0"),
            ("/private/a/b", b"1"),
            ("/private/a/b/c", b"2"),
            ("/private/ab", b"x"),
        ],
        ORIGIN,
        MetadataLimits(),
    )
    assert list(await get(store, bob, "INBOX", "/private/a")) == ["/private/a"]
    assert list(await get(store, bob, "INBOX", "/private/a", depth=1)) == [
        "/private/a",
        "/private/a/b",
    ]
    assert list(await get(store, bob, "INBOX", "/private/a", depth=None)) == [
        "/private/a",
        "/private/a/b",
        "/private/a/b/c",
    ]


async def test_rename_delete_and_user_deletion(store: SqliteStore, env: Env, bob: User) -> None:
    await store.create_mailbox(bob.id, "m/child", ORIGIN)
    for name in ("m", "m/child", "INBOX"):
        await store.set_metadata(bob.id, name, [("/shared/c", name.encode())], ORIGIN, LIMITS)
    await store.set_metadata(bob.id, None, [("/private/c", b"server")], ORIGIN, LIMITS)
    await store.rename_mailbox(bob.id, "m", "n", ORIGIN)
    assert await get(store, bob, "n/child", "/shared/c") == {"/shared/c": b"m/child"}
    with pytest.raises(MailboxNotFound):
        await store.get_metadata(bob.id, "m", ["/shared/c"], depth=0)
    await store.rename_mailbox(bob.id, "INBOX", "old", ORIGIN)
    assert await get(store, bob, "old", "/shared/c") == {"/shared/c": b"INBOX"}
    assert await get(store, bob, "INBOX", "/shared/c") == {"/shared/c": b"INBOX"}
    await store.delete_mailbox(bob.id, "n", ORIGIN)  # leaves a \Noselect placeholder
    assert await get(store, bob, "n", "/shared/c") == {"/shared/c": None}
    await store.delete_user("bob")
    assert env.rows("SELECT count(*) FROM metadata") == [(0,)]
