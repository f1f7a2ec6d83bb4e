"""Users and authentication, and the password format (store/passwords.py)."""

from __future__ import annotations

import pytest

from store.changes import MailboxCreated, MailboxDeleted
from store.errors import AuthFailed, UserExists, UserNotFound
from store.passwords import hash_password, parameters, verify_password
from store.sqlite import SqliteStore
from tests.helpers.store import ORIGIN, Env, new

BOTH_BACKENDS = True


async def test_create_and_authenticate(store: SqliteStore) -> None:
    user = await store.create_user("bob", "pw", admin=True)
    assert user.name == "bob" and user.is_admin
    assert await store.authenticate("bob", "pw") == user
    assert await store.get_user("bob") == user
    assert await store.list_users() == [user]


async def test_wrong_password_and_unknown_user_fail_alike(store: SqliteStore) -> None:
    await store.create_user("bob", "pw")
    with pytest.raises(AuthFailed) as wrong:
        await store.authenticate("bob", "PW")
    with pytest.raises(AuthFailed) as unknown:
        await store.authenticate("nobody", "pw")
    assert wrong.value.text == unknown.value.text
    assert wrong.value.code == "AUTHENTICATIONFAILED"


async def test_user_names_are_exact(store: SqliteStore) -> None:
    await store.create_user("bob", "pw")
    with pytest.raises(AuthFailed):
        await store.authenticate("Bob", "pw")
    await store.create_user("Bob", "other")  # a different user
    assert [u.name for u in await store.list_users()] == ["Bob", "bob"]


async def test_duplicate_user(store: SqliteStore, env: Env) -> None:
    await store.create_user("bob", "pw")
    env.take()
    with pytest.raises(UserExists):
        await store.create_user("bob", "pw2")
    assert env.take() == []
    assert await store.authenticate("bob", "pw")


async def test_create_user_publishes_default_mailboxes(store: SqliteStore, env: Env) -> None:
    await store.create_user("bob", "pw")
    changes = env.take()
    assert all(isinstance(c, MailboxCreated) for c in changes)
    assert [(c.mailbox.name, c.special_use) for c in changes if isinstance(c, MailboxCreated)] == [
        ("INBOX", ()),
        ("Drafts", ("\\Drafts",)),
        ("Sent", ("\\Sent",)),
        ("Trash", ("\\Trash",)),
        ("Junk", ("\\Junk",)),
        ("Archive", ("\\Archive",)),
    ]
    assert changes == env.logged()


async def test_set_password(store: SqliteStore) -> None:
    await store.create_user("bob", "pw")
    await store.set_password("bob", "new")
    with pytest.raises(AuthFailed):
        await store.authenticate("bob", "pw")
    assert (await store.authenticate("bob", "new")).name == "bob"
    with pytest.raises(UserNotFound):
        await store.set_password("nobody", "x")


async def test_delete_user_removes_everything(store: SqliteStore, env: Env) -> None:
    bob = await store.create_user("bob", "pw")
    alice = await store.create_user("alice", "pw")
    await store.append(bob.id, "INBOX", [new("a"), new("b")], ORIGIN)
    inbox = await store.get_mailbox(bob.id, "INBOX")
    await store.copy_messages(inbox.id, [1, 2], alice.id, "INBOX", ORIGIN)  # shared contents
    env.take()
    await store.delete_user("bob")
    deleted = env.take()
    assert len(deleted) == 6 and all(isinstance(c, MailboxDeleted) for c in deleted)
    with pytest.raises(UserNotFound):
        await store.get_user("bob")
    with pytest.raises(AuthFailed):
        await store.authenticate("bob", "pw")
    with pytest.raises(UserNotFound):
        await store.delete_user("bob")
    assert await store.list_mailboxes(bob.id) == []
    assert await store.subscriptions(bob.id) == []
    env.check_counters()
    assert env.rows("SELECT count(*) FROM contents") == [(2,)]
    await store.delete_user("alice")
    assert env.rows("SELECT count(*) FROM contents") == [(0,)]
    assert env.rows("SELECT count(*) FROM messages") == [(0,)]
    # A new user of the same name is a new user.
    again = await store.create_user("bob", "pw")
    assert again.id != bob.id


def test_password_format() -> None:
    stored = hash_password("sésame", n=1024)
    assert stored.startswith("$scrypt$n=1024,r=8,p=1$")
    assert parameters(stored) == "n=1024,r=8,p=1"
    assert verify_password("sésame", stored)
    assert not verify_password("sesame", stored)
    assert hash_password("x", n=16) != hash_password("x", n=16)  # salted


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain",
        "$scrypt$n=16,r=8,p=1$!!$AAAA",
        "$bcrypt$n=16,r=8,p=1$AAAA$AAAA",
        "$scrypt$n=15,r=8,p=1$AAAA$AAAA",
        "$scrypt$r=8,p=1$AAAA$AAAA",
        "$scrypt$n=16,r=8,p=1$AAAA$",
    ],
)
def test_malformed_hash_never_matches(stored: str) -> None:
    assert not verify_password("", stored)


def test_bad_n() -> None:
    with pytest.raises(ValueError, match="power of two"):
        hash_password("x", n=1000)
