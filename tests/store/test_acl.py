"""ACL rules (store/acl.py), namespace names (store/namespace.py), and the store's ACL
transactions: one AclChanged per SETACL/DELETEACL, rights as each user sees them,
inheritance on CREATE, and ACL rows going with their mailbox or user."""

from __future__ import annotations

import pytest

from store import acl, namespace
from store.changes import AclChanged, from_json
from store.errors import AuthFailed, MailboxInvalid, MailboxNotFound
from store.sqlite import SqliteStore
from tests.helpers.store import ORIGIN, Env

BOTH_BACKENDS = True


# --- the pure rules ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "mode", "rights"),
    [
        ("lrs", "", "lrs"),
        ("+cda", "+", "kxtea"),
        ("-w", "-", "w"),
        ("", "", ""),
        ("srl", "", "lrs"),
        ("+", "+", ""),
        ("lrswipkxtea", "", "lrswipkxtea"),
    ],
)
def test_parse_modification(text: str, mode: str, rights: str) -> None:
    change = acl.parse_modification(text)
    assert (change.mode, change.rights) == (mode, rights)


@pytest.mark.parametrize("text", ["lrQ", "lrq", "l1", "+-l", "l r", "\\Seen"])
def test_unknown_rights_are_refused(text: str) -> None:
    with pytest.raises(acl.InvalidRights):
        acl.parse_modification(text)


def test_apply_and_virtual_rights() -> None:
    entry = acl.apply("", acl.parse_modification("lrswi"))
    entry = acl.apply(entry, acl.parse_modification("+cda"))
    assert acl.with_virtual(entry) == "lrswikxteacd"  # RFC 4314 §3.1 example
    assert acl.apply(entry, acl.parse_modification("-kxte")) == "lrswia"
    assert acl.apply(entry, acl.parse_modification("r")) == "r"
    assert acl.with_virtual("lr") == "lr"
    assert acl.with_virtual("k") == "kc"
    assert acl.with_virtual("e") == "ed"


def test_effective_rights() -> None:
    entries = {"bob": "lrsw", "anyone": "lri", "-bob": "w", "-anyone": "i"}
    assert acl.effective("alice", "alice", entries) == acl.ALL  # the owner, whatever
    assert acl.effective("bob", "alice", entries) == "lrs"
    assert acl.effective("carol", "alice", entries) == "lr"
    assert acl.effective("carol", "alice", {}) == ""
    assert acl.effective("carol", "alice", {}, is_admin=True) == "a"
    assert acl.effective("carol", namespace.SHARED_OWNER, {}, is_admin=True) == acl.ALL
    assert acl.effective("carol", namespace.SHARED_OWNER, {"anyone": "lr"}) == "lr"


def test_flag_rights() -> None:
    assert acl.settable(("\\Seen", "\\Deleted", "\\Flagged", "$x"), "s") == ("\\Seen",)
    assert acl.settable(("\\Seen", "\\Deleted", "\\Flagged", "$x"), "tw") == (
        "\\Deleted",
        "\\Flagged",
        "$x",
    )


def test_listrights() -> None:
    assert acl.listrights("alice", "alice") == ("lrswipkxteacd", ())
    required, optional = acl.listrights("bob", "alice")
    assert required == "" and "".join(optional) == "lrswipkxteacd"


@pytest.mark.parametrize(
    ("name", "owner", "local"),
    [
        ("INBOX", "bob", "INBOX"),
        ("inbox/x", "bob", "INBOX/x"),
        ("Team/a", "bob", "Team/a"),
        ("Other Users/alice/inbox", "alice", "INBOX"),
        ("Other Users/alice/A/B", "alice", "A/B"),
        ("Shared/News", "", "News"),
        ("Shared/News/", "", "News"),
    ],
)
def test_resolve_and_back(name: str, owner: str, local: str) -> None:
    where = namespace.resolve("bob", name)
    assert where == namespace.Location(owner, local)
    assert namespace.resolve("bob", namespace.visible_name("bob", owner, local)) == where


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Shared",
        "Shared/",
        "Other Users",
        "Other Users/alice",
        "Other Users/alice/",
        "Other Users//x",
    ],
)
def test_namespace_roots_are_no_mailboxes(name: str) -> None:
    assert namespace.resolve("bob", name) is None


# --- the store --------------------------------------------------------------------------------
async def test_set_acl_commits_one_change(store: SqliteStore, env: Env) -> None:
    alice = await store.create_user("alice", "pw")
    await store.create_user("bob", "pw")
    await store.create_mailbox(alice.id, "Team", ORIGIN)
    env.take()
    after = await store.set_acl(alice.id, "Team", "bob", acl.parse_modification("+lrd"), ORIGIN)
    assert after == "lrte"
    await store.set_acl(alice.id, "Team", "bob", None, ORIGIN)
    granted, deleted = env.take()
    assert isinstance(granted, AclChanged) and isinstance(deleted, AclChanged)
    assert (granted.mailbox.owner, granted.mailbox.name) == ("alice", "Team")
    assert (granted.subject, granted.rights, granted.acl) == ("bob", "+lrte", "lrte")
    assert (deleted.subject, deleted.rights, deleted.acl) == ("bob", None, "")
    logged = env.logged()[-2:]
    assert logged == [granted, deleted]
    assert from_json("AclChanged", granted.seq, _payload(env, granted.seq)) == granted
    assert await store.acl_entries(granted.mailbox.id) == []


def _payload(env: Env, seq: int) -> str:
    [(payload,)] = env.rows("SELECT payload FROM change_log WHERE seq = ?", seq)
    return str(payload)


async def test_owner_entry_is_fixed_and_missing_mailbox(store: SqliteStore, env: Env) -> None:
    alice = await store.create_user("alice", "pw")
    with pytest.raises(MailboxInvalid):
        await store.set_acl(alice.id, "INBOX", "alice", acl.parse_modification("l"), ORIGIN)
    with pytest.raises(MailboxNotFound):
        await store.set_acl(alice.id, "Nope", "bob", acl.parse_modification("l"), ORIGIN)


async def test_rights_as_each_user_sees_them(store: SqliteStore) -> None:
    alice = await store.create_user("alice", "pw")
    bob = await store.create_user("bob", "pw")
    await store.create_mailbox(alice.id, "Team", ORIGIN)
    await store.set_acl(alice.id, "Team", "anyone", acl.parse_modification("lr"), ORIGIN)
    await store.set_acl(alice.id, "Team", "-bob", acl.parse_modification("r"), ORIGIN)
    seen = await store.get_mailbox(bob.id, "Other Users/alice/Team")
    assert (seen.name, seen.owner, seen.rights) == ("Other Users/alice/Team", "alice", "l")
    assert (await store.get_mailbox(alice.id, "Team")).rights == acl.ALL
    others = [m for m in await store.list_mailboxes(bob.id) if m.owner == "alice"]
    assert [(m.name, m.rights) for m in others] == [("Other Users/alice/Team", "l")]
    with pytest.raises(MailboxNotFound):
        await store.get_mailbox(bob.id, "Other Users/nobody/INBOX")


async def test_create_inherits_and_delete_removes_acl(store: SqliteStore, env: Env) -> None:
    alice = await store.create_user("alice", "pw")
    await store.create_user("bob", "pw")
    team = await store.create_mailbox(alice.id, "Team", ORIGIN)
    await store.set_acl(alice.id, "Team", "bob", acl.parse_modification("lrk"), ORIGIN)
    sub = await store.create_mailbox(alice.id, "Team/A/B", ORIGIN)
    assert await store.acl_entries(sub.id) == [("bob", "lrk")]
    middle = await store.get_mailbox(alice.id, "Team/A")
    assert await store.acl_entries(middle.id) == [("bob", "lrk")]
    await store.delete_mailbox(alice.id, "Team/A", ORIGIN)  # a placeholder: its ACL goes
    assert await store.acl_entries(middle.id) == []
    await store.delete_mailbox(alice.id, "Team/A/B", ORIGIN)
    await store.delete_user("bob")  # entries naming bob go with him
    assert await store.acl_entries(team.id) == []
    assert env.rows("SELECT count(*) FROM acl") == [(0,)]


async def test_shared_pseudo_owner_and_admin_flag(store: SqliteStore) -> None:
    carol = await store.create_user("carol", "pw")
    assert [u.name for u in await store.list_users()] == ["carol"]
    for password in ("", "!"):
        with pytest.raises(AuthFailed):  # the pseudo-owner of Shared/ cannot log in
            await store.authenticate("", password)
    await store.set_admin("carol", True)
    info = await store.create_mailbox(carol.id, "Shared/News", ORIGIN)
    assert (info.owner, info.name) == ("", "News")
    assert (await store.get_mailbox(carol.id, "Shared/News")).rights == acl.ALL
    await store.set_admin("carol", False)
    assert (await store.get_mailbox(carol.id, "Shared/News")).rights == ""
    assert not (await store.get_user("carol")).is_admin
