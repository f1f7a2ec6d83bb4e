"""APPEND/COPY/MOVE targets (RFC 4314 §4): a handler resolves the name once (get_mailbox,
its rights check) and passes the mailbox id and the right it needs; the store checks that
right again inside its write transaction. These tests commit a change on ANOTHER store
connection to the same file between the handler's lookup and its write, as a second
session or `imapd acl` would, and check that the write sees it."""

from __future__ import annotations

import pytest

from store import acl
from store.changes import MessagesAdded
from store.errors import MailboxInvalid, MailboxNotFound, NoPermission
from store.sqlite import SqliteStore
from tests.helpers.store import ORIGIN, Env, new

TEAM = "Other Users/alice/Team"


async def _shared(env: Env, rights: str) -> tuple[SqliteStore, SqliteStore, int, int]:
    """alice's Team with ``rights`` for bob: (bob's store, alice's store on another
    connection, bob's id, alice's id)."""
    bobs = await env.open()
    alices = await env.open()
    alice = await alices.create_user("alice", "pw")
    bob = await alices.create_user("bob", "pw")
    await alices.create_mailbox(alice.id, "Team", ORIGIN)
    await alices.set_acl(alice.id, "Team", "bob", acl.parse_modification(rights), ORIGIN)
    return bobs, alices, bob.id, alice.id


def _stored(env: Env, name: str = "Team") -> tuple[int, list[str]]:
    """(messages counter, flags of each message) of alice's mailbox ``name``, read from the
    file (not through the store under test)."""
    with env.db() as db:
        mid, count = db.execute(
            "SELECT m.id, m.messages FROM mailboxes m JOIN users u ON u.id = m.owner_id"
            " WHERE u.name = 'alice' AND m.name = ?",
            (name,),
        ).fetchone()
        flags = [
            r[0]
            for r in db.execute(
                "SELECT flags FROM messages WHERE mailbox_id = ? ORDER BY uid", (mid,)
            )
        ]
    return int(count), flags


def _head(env: Env) -> int:
    with env.db() as db:
        return int(db.execute("SELECT coalesce(max(seq), 0) FROM change_log").fetchone()[0])


async def test_a_revoke_after_the_lookup_refuses_the_append(env: Env) -> None:
    bobs, alices, bob, alice = await _shared(env, "lri")
    target = await bobs.get_mailbox(bob, TEAM)  # the handler's lookup: i is there
    assert "i" in target.rights
    await alices.set_acl(alice, "Team", "bob", acl.parse_modification("-i"), ORIGIN)
    head = _head(env)
    with pytest.raises(NoPermission) as refused:
        await bobs.append(bob, target.id, [new()], ORIGIN, need="i")
    assert refused.value.code == "NOPERM"
    assert _stored(env) == (0, [])
    assert _head(env) == head  # no change-log row: nothing was written
    env.check_counters()


async def test_a_revoke_of_every_right_answers_as_a_missing_mailbox(env: Env) -> None:
    """RFC 4314 §4/§6: a user without l or r on the mailbox learns nothing of it."""
    bobs, alices, bob, alice = await _shared(env, "lri")
    target = await bobs.get_mailbox(bob, TEAM)
    await alices.set_acl(alice, "Team", "bob", None, ORIGIN)
    with pytest.raises(MailboxNotFound) as refused:
        await bobs.append(bob, target.id, [new()], ORIGIN, need="i")
    assert refused.value.text == "Mailbox does not exist"
    assert _stored(env) == (0, [])


async def test_the_name_is_resolved_once_a_recreated_mailbox_is_not_the_target(
    env: Env,
) -> None:
    """The mailbox deleted and created again under the same name after the lookup is
    another mailbox (another UIDVALIDITY): the append resolved to the first is refused."""
    bobs, alices, bob, alice = await _shared(env, "lri")
    target = await bobs.get_mailbox(bob, TEAM)
    await alices.delete_mailbox(alice, "Team", ORIGIN)
    await alices.create_mailbox(alice, "Team", ORIGIN)
    await alices.set_acl(alice, "Team", "bob", acl.parse_modification("lri"), ORIGIN)
    with pytest.raises(MailboxNotFound):
        await bobs.append(bob, target.id, [new()], ORIGIN, need="i")
    assert _stored(env) == (0, [])


async def test_flags_are_filtered_with_the_rights_of_the_write(env: Env) -> None:
    """RFC 4314 §4: flags the user may not set are dropped, not refused; the rights are
    those of the write's transaction (w revoked after the lookup: $Work dropped)."""
    bobs, alices, bob, alice = await _shared(env, "lrisw")
    target = await bobs.get_mailbox(bob, TEAM)
    await alices.set_acl(alice, "Team", "bob", acl.parse_modification("-w"), ORIGIN)
    env.take()
    result = await bobs.append(
        bob, target.id, [new(flags=("\\Seen", "\\Deleted", "$Work"))], ORIGIN, need="i"
    )
    assert result.uids == (1,) and result.mailbox.name == "Team"
    assert _stored(env) == (1, ["\\Seen"])
    (added,) = [c for c in env.take() if isinstance(c, MessagesAdded)]
    assert [f.flags for f in added.messages] == [("\\Seen",)]
    assert added.counts.unseen == 0 and added.counts.deleted == 0
    env.check_counters()


async def test_a_revoke_after_the_lookup_refuses_copy_and_move(env: Env) -> None:
    bobs, alices, bob, alice = await _shared(env, "lrisw")
    await bobs.append(bob, "INBOX", [new(flags=("\\Seen", "\\Flagged"))], ORIGIN)
    inbox = await bobs.get_mailbox(bob, "INBOX")
    target = await bobs.get_mailbox(bob, TEAM)
    await alices.set_acl(alice, "Team", "bob", acl.parse_modification("-w"), ORIGIN)
    copied = await bobs.copy_messages(inbox.id, [1], bob, target.id, ORIGIN, need="i")
    assert copied.dest_uids == (1,)
    assert _stored(env) == (1, ["\\Seen"])  # \Flagged needs w, revoked since the lookup
    await alices.set_acl(alice, "Team", "bob", acl.parse_modification("-i"), ORIGIN)
    head = _head(env)
    for move in (False, True):
        with pytest.raises(NoPermission):
            await bobs.copy_messages(inbox.id, [1], bob, target.id, ORIGIN, move=move, need="i")
    assert _head(env) == head
    assert _stored(env) == (1, ["\\Seen"])
    assert (await bobs.get_mailbox(bob, "INBOX")).messages == 1  # the MOVE took nothing
    env.check_counters()


async def test_an_admin_demoted_after_the_lookup_loses_the_shared_mailbox(env: Env) -> None:
    """Admins have every right on shared mailboxes (store/acl.py): the admin flag, like
    the ACL, is read in the write's transaction."""
    bobs = await env.open()
    others = await env.open()
    root = await others.create_user("root", "pw", admin=True)
    await others.create_mailbox(root.id, "Shared/News", ORIGIN)
    target = await bobs.get_mailbox(root.id, "Shared/News")
    assert target.rights == acl.ALL
    await others.set_admin("root", False)
    with pytest.raises(MailboxNotFound):
        await bobs.append(root.id, target.id, [new()], ORIGIN, need="i")


async def test_without_need_the_name_form_checks_no_rights(env: Env) -> None:
    """LMTP delivery and `imapd import` append by name and check no rights; a \\Noselect
    target is still refused."""
    bobs, alices, bob, alice = await _shared(env, "lr")
    result = await bobs.append(bob, TEAM, [new(flags=("$Work",))], ORIGIN)
    assert result.uids == (1,)
    assert _stored(env) == (1, ["$Work"])
    await alices.create_mailbox(alice, "Team/Sub", ORIGIN)
    await alices.delete_mailbox(alice, "Team", ORIGIN)  # has children: \Noselect
    with pytest.raises(MailboxInvalid):
        await alices.append(alice, "Team", [new()], ORIGIN)
