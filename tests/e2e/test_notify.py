"""NOTIFY (RFC 5465) end to end over raw sockets: back-pressure (§5.8, §9), rights (§3.1,
§5.9), delivery latency, IDLE (§4) and the registration's life (§3.1). The RFC sections are
named in each test's docstring; the transcripts (tests/transcripts/notify_*.imap) cover the
rest."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import pytest

from imapd import control
from store.acl import Modification
from store.changes import Counts, MessagesAdded, Origin
from store.sqlite import SqliteStore
from tests.helpers.server import PASSWORD, RunningServer
from tests.rawclient import RawClient

BOTH_BACKENDS = True  # tests/conftest.py: SQLite and PostgreSQL (issue 18)


def _append(c: RawClient, tag: str, mailbox: str, n: int = 1) -> None:
    c.append(tag, mailbox, f"Subject: {n}\r\n\r\nx\r\n")


@pytest.mark.sqlite_only  # the session's queue, fed by a synthetic publish: no store write
def test_overflow_then_notify_none(server_factory: Any) -> None:
    """RFC 5465 §5.8, §9: a burst larger than the session's bounded NOTIFY queue (published in one
    go, as a client that does not read would let it pile up) ends in ``* OK
    [NOTIFICATIONOVERFLOW]`` and then nothing more, as after NOTIFY NONE; the queue never
    holds more than its limit."""
    server = server_factory(notify_queue_limit=3)
    server.add_user("alice")
    listener, writer = server.raw(), server.raw()
    writer.ok("w0", "CREATE Work")
    listener.ok("a1", "NOTIFY SET (subtree Work (MessageNew MessageExpunge))")
    store = server.server.store

    async def burst() -> int:
        user = await store.get_user("alice")
        ref = (await store.get_mailbox(user.id, "Work")).ref
        at = dt.datetime.now(dt.UTC)
        changes = [
            MessagesAdded(10_000 + i, at, Origin(), ref, Counts(i, i, i + 1, i, 0), ())
            for i in range(10)
        ]
        server.server.bus.publish(changes)
        queues = [s.notify.sub for s in server.server.sessions if s.notify.sub is not None]
        return max(len(q.pending) for q in queues)

    assert server.call(burst()) <= 3
    assert listener.response() == (
        "* OK [NOTIFICATIONOVERFLOW] Too many notifications; NOTIFY NONE now"
    )
    _append(writer, "w1", "Work")
    assert listener.quiet() == b""
    listener.ok("a2", "NOOP")


@pytest.mark.sqlite_only  # the bus's push; both backends' publish: tests/store/test_messages.py
def test_delivery_within_milliseconds(server: RunningServer) -> None:
    """RFC 5465 §3.1, §6.1.1: pushed while no command runs, driven by the bus (no polling)."""
    listener, writer = server.raw(), server.raw()
    writer.ok("w0", "CREATE Fast")
    listener.ok("a1", "NOTIFY SET (mailboxes Fast (MessageNew MessageExpunge))")
    delays = []
    for i in range(5):
        _append(writer, f"w{i + 1}", "Fast", i)
        t0 = time.monotonic()
        line = listener.response()
        delays.append(time.monotonic() - t0)
        assert line.startswith('* STATUS "Fast" (MESSAGES'), line
    assert max(delays) < 0.2, delays


@pytest.mark.sqlite_only  # NOTIFY's filter and IDLE: backend-irrelevant
def test_idle_sends_exactly_the_registered_events(server: RunningServer) -> None:
    """§4, RFC 5465 §3.1: under NOTIFY without FlagChange a running IDLE gets no flag FETCH; the
    held FETCH goes out at the next command (RFC 3501 reporting, docs/notify.md "NOTIFY NONE")."""
    a, b = server.raw(), server.raw()
    _append(b, "b0", "INBOX")
    a.ok("a1", "SELECT INBOX")
    b.ok("b1", "SELECT INBOX")
    a.ok("a2", "NOTIFY SET (selected (MessageNew MessageExpunge))")
    a.line("a3 IDLE")
    assert a.response() == "+ idling"
    b.ok("b2", "STORE 1 +FLAGS (\\Flagged)")
    assert a.quiet() == b""
    _append(b, "b3", "INBOX")
    assert a.response() == "* 2 EXISTS"
    a.line("DONE")
    rest = a.until_tagged("a3")
    assert any("FETCH (UID 1 FLAGS (\\Flagged" in line for line in rest), rest


def test_rights_no_events_without_l_and_r(server: RunningServer) -> None:
    """RFC 5465 §3.1, §5, §5.9 (RFC 4314 §2.1: l and r decide), README "Access control": no
    event about another user's mailbox without l; \\NoAccess with l but not r; losing l
    stops monitoring, regaining it restarts it."""
    alice, bob = server.raw(), server.raw("bob")
    alice.ok("a1", "CREATE Team")
    alice.ok("a2", "CREATE Secret")
    alice.ok("a3", "SETACL Team bob l")
    out = bob.ok(
        "b1",
        'NOTIFY SET STATUS (mailboxes ("Other Users/alice/Team"'
        ' "Other Users/alice/Secret" Nowhere) (MessageNew MessageExpunge'
        " MailboxName))",
    )
    assert out[:-1] == ['* LIST (\\NoAccess) "/" "Other Users/alice/Team"'], out
    _append(alice, "a4", "Secret")
    _append(alice, "a5", "Team")
    assert bob.quiet() == b""  # l without r: no message data; Secret: nothing at all
    alice.ok("a6", "SETACL Team bob lr")
    assert bob.response() == '* LIST (\\HasNoChildren) "/" "Other Users/alice/Team"'
    _append(alice, "a7", "Team")
    line = bob.response()
    assert line.startswith('* STATUS "Other Users/alice/Team" (MESSAGES 2 UIDNEXT 3'), line
    alice.ok("a8", "DELETEACL Team bob")
    assert bob.response() == '* LIST (\\NoAccess) "/" "Other Users/alice/Team"'
    _append(alice, "a9", "Team")
    assert bob.quiet() == b""
    alice.ok("a10", "SETACL Team bob lr")
    assert bob.response().startswith('* LIST (\\HasNoChildren) "/" "Other Users/alice/Team"')
    _append(alice, "a11", "Team")
    assert bob.response().startswith('* STATUS "Other Users/alice/Team" (MESSAGES 4')


@pytest.mark.sqlite_only  # NOTIFY's filter (notify/filters.py): backend-irrelevant
def test_personal_never_reaches_other_owners(server: RunningServer) -> None:
    """RFC 5465 §6.2, README: `personal` hears only the user's own mailboxes, even with rights
    elsewhere; alice's change to her own mailbox reaches alice's other session only."""
    alice, alice2, bob = server.raw(), server.raw(), server.raw("bob")
    alice.ok("a1", "SETACL INBOX bob lr")
    bob.ok("b1", "NOTIFY SET (personal (MessageNew MessageExpunge MailboxName))")
    alice2.ok("c1", "NOTIFY SET (personal (MessageNew MessageExpunge MailboxName))")
    _append(alice, "a2", "INBOX")
    assert alice2.response().startswith('* STATUS "INBOX" (MESSAGES 1 ')
    alice.ok("a3", "CREATE Fresh")
    assert alice2.response() == '* LIST (\\HasNoChildren) "/" "Fresh"'
    assert bob.quiet() == b""


def test_registration_ends_with_the_connection_and_restart(server_factory: Any) -> None:
    """RFC 5465 §3.1: a registration lasts until the connection ends (SELECT/UNSELECT keep it);
    it is not stored: after a server restart a new connection starts without one (RFC 5465 §3.1)."""
    server = server_factory()
    server.add_user("alice")
    a, b = server.raw(), server.raw()
    a.ok("a1", "NOTIFY SET (mailboxes INBOX (MessageNew MessageExpunge))")
    a.ok("a2", "SELECT Archive")
    a.ok("a3", "UNSELECT")
    _append(b, "b1", "INBOX")
    assert a.response().startswith('* STATUS "INBOX" (MESSAGES 1 ')
    a.close()
    deadline = time.monotonic() + 5
    while any(s.notify.active for s in server.server.sessions) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(s.notify.active for s in server.server.sessions)
    b.close()
    server.call(server.server.shutdown())
    again = server_factory()  # the same data directory
    a, b = again.raw(), again.raw()
    _append(b, "b2", "INBOX")
    assert a.quiet() == b""
    out = a.ok("a4", "NOOP")
    assert out == ["a4 OK NOOP completed"], out


@pytest.mark.sqlite_only  # NOTIFY parsing and session state: no store involved
def test_failed_notify_keeps_the_previous_registration(server: RunningServer) -> None:
    """RFC 5465 §3.1: a NO or BAD NOTIFY leaves the registration; a SET replaces it whole."""
    a, b = server.raw(), server.raw()
    a.ok("a1", "NOTIFY SET (mailboxes INBOX (MessageNew MessageExpunge))")
    assert a.command("a2", "NOTIFY SET (personal (AnnotationChange MessageNew MessageExpunge))")[
        -1
    ].startswith("a2 NO [BADEVENT")
    assert a.command("a3", "NOTIFY SET (personal (MessageNew))")[-1].startswith("a3 BAD")
    _append(b, "b1", "INBOX")
    assert a.response().startswith('* STATUS "INBOX"')
    a.ok("a4", "NOTIFY SET (personal (MailboxName))")
    _append(b, "b2", "INBOX")
    assert a.quiet() == b""


@pytest.mark.sqlite_only  # NOTIFY's lines; both backends' changes: tests/store/test_metadata.py
def test_metadata_events(server: RunningServer) -> None:
    """RFC 5465 §5.6, §5.7; RFC 5464 §4.4, §4.4.2: METADATA with entry names only, without
    ENABLE METADATA."""
    a, b = server.raw(), server.raw()
    a.ok("a1", "NOTIFY SET (personal (MailboxMetadataChange ServerMetadataChange))")
    b.ok("b1", 'SETMETADATA INBOX (/private/comment "hello")')
    assert a.response() == '* METADATA "INBOX" /private/comment'
    b.ok("b2", "SETMETADATA INBOX (/private/comment NIL)")
    assert a.response() == '* METADATA "INBOX" /private/comment'
    b.ok("b3", 'SETMETADATA "" (/private/comment "x")')
    assert a.response() == '* METADATA "" /private/comment'


def test_other_users_mailboxes_come_into_view(server: RunningServer) -> None:
    """RFC 5465 §5.4, §6.5 (subtree): a mailbox of another user that becomes visible
    after NOTIFY is heard of: created under a mailbox the user may list (it inherits the
    parent's ACL, RFC 4314 §4) or renamed to a name a group covers; then watched for
    message events too. A mailbox created where the user has no right stays unheard of."""
    alice, bob = server.raw(), server.raw("bob")
    alice.ok("a1", "CREATE Team")
    alice.ok("a2", "SETACL Team bob lr")
    bob.ok(
        "b1",
        'NOTIFY SET (subtree "Other Users/alice/Team" (MessageNew MessageExpunge MailboxName))',
    )
    alice.ok("a3", "CREATE Team/Sub")
    assert bob.response() == '* LIST (\\HasNoChildren) "/" "Other Users/alice/Team/Sub"'
    assert bob.response() == '* LIST (\\HasChildren) "/" "Other Users/alice/Team"'
    _append(alice, "a4", "Team/Sub")
    assert bob.response().startswith('* STATUS "Other Users/alice/Team/Sub" (MESSAGES 1 ')
    alice.ok("a5", "CREATE Private")
    alice.ok("a6", "CREATE Private/Team")
    assert bob.quiet() == b""  # no right there, and outside the subtree
    alice.ok("a7", "CREATE Elsewhere")
    alice.ok("a8", "SETACL Elsewhere bob lr")
    assert bob.quiet() == b""  # listable, but no group names it (yet)
    alice.ok("a9", "RENAME Elsewhere Team/Moved")
    assert bob.response() == (
        '* LIST (\\HasNoChildren) "/" "Other Users/alice/Team/Moved"'
        ' ("OLDNAME" ("Other Users/alice/Elsewhere"))'
    )
    _append(alice, "a10", "Team/Moved")
    assert bob.response().startswith('* STATUS "Other Users/alice/Team/Moved" (MESSAGES 1 ')


@pytest.mark.sqlite_only  # a second SqliteStore on the server's file, in this process
def test_rename_in_the_same_batch_as_the_acl_that_shows_it(server: RunningServer) -> None:
    """RFC 5465 §5.4, §5.9: rights are read again before the next change is rendered. Another
    process (the CLI, a second store on the file) grants ``l`` on a mailbox and renames it
    into a watched subtree; the server publishes both rows in one batch, and the rename is
    heard (it used to be dropped: the rights were re-read only after the batch)."""
    alice, bob = server.raw(), server.raw("bob")
    alice.ok("a1", "CREATE Team")
    alice.ok("a2", "SETACL Team bob lr")
    alice.ok("a3", "CREATE Elsewhere")
    bob.ok(
        "b1",
        'NOTIFY SET (subtree "Other Users/alice/Team" (MessageNew MessageExpunge MailboxName))',
    )

    async def other_process() -> None:
        cli_origin = Origin(user="alice", service="cli")
        other = await SqliteStore.open(server.config.db_path, lambda changes: None, scrypt_n=2)
        try:
            owner = (await other.get_user("alice")).id
            await other.set_acl(owner, "Elsewhere", "bob", Modification("", "lr"), cli_origin)
            await other.rename_mailbox(owner, "Elsewhere", "Team/Moved", cli_origin)
        finally:
            await other.close()
        await control.notify_changed(server.config.data_dir)

    asyncio.run(other_process())
    assert bob.response() == (
        '* LIST (\\HasNoChildren) "/" "Other Users/alice/Team/Moved"'
        ' ("OLDNAME" ("Other Users/alice/Elsewhere"))'
    )


@pytest.mark.sqlite_only  # the bus's fan-out; both backends: tests/store/test_metadata.py
def test_shared_server_metadata_reaches_every_listener(server: RunningServer) -> None:
    """RFC 5465 §5.7; RFC 5464 §4.4: a /shared server entry belongs to no user: every session
    that registered ServerMetadataChange hears of it (name only, mailbox ""); one that did not,
    does not."""
    server.call(server.server.store.create_user("admin", PASSWORD, admin=True))
    alice, bob, carol = server.raw("admin"), server.raw("bob"), server.raw("bob")
    bob.ok("b1", "NOTIFY SET (personal (ServerMetadataChange))")
    carol.ok("c1", "NOTIFY SET (personal (MailboxName))")
    alice.ok("a1", 'SETMETADATA "" (/shared/comment "hello")')
    assert bob.response() == '* METADATA "" /shared/comment'
    assert carol.quiet() == b""
    alice.ok("a2", 'SETMETADATA "" (/private/comment "mine")')
    assert bob.quiet() == b""  # the admin's /private entry is theirs alone
