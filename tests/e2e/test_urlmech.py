"""RFC 4467 §7 (BASE.6.3.RESETKEY): "Any current IMAP session logged in as the user that has
the mailbox selected will receive an untagged OK response with the URLMECH status response
code", through a real server and raw clients: RESETKEY of a mailbox and of all keys (the
second form "removes all mailbox access keys in the user's mailbox access key table", so
every mailbox a session of the user has selected is concerned), at the next command and
during IDLE, under NOTIFY, not to another user sharing the mailbox, not to a session of the
user with another mailbox (or none) selected; the session that ran it has the code in its
tagged OK (§7.1) instead. The reset yields no RFC 5423 event (notify socket). Across two
``--workers`` processes on SQLite and two PostgreSQL instances: test_urlmech_cluster.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.test_urlauth import MESSAGE, append, genurlauth, urlfetch
from tests.helpers.server import RunningServer
from tests.notify.listener import Listener
from tests.rawclient import RawClient

BOTH_BACKENDS = True

#: What a session whose selected mailbox's access key was reset receives (RFC 4467 §7.1:
#: ``resp-text-code =/ "URLMECH" SP "INTERNAL" *(SP mechanism ["=" base64])``, INTERNAL
#: being the one mechanism this server has).
URLMECH_OK = "* OK [URLMECH INTERNAL] Mailbox access key reset"


@pytest.fixture
def listener() -> Iterator[Listener]:
    lis = Listener()
    yield lis
    lis.cleanup()


@pytest.fixture
def running(server_factory: Any, listener: Listener) -> RunningServer:
    server: RunningServer = server_factory(notify_socket=listener.path)
    server.add_user("alice")
    server.add_user("bob")
    return server


def selecting(server: RunningServer, user: str, mailbox: str | None) -> RawClient:
    c = server.raw(user)
    if mailbox is not None:
        c.ok("s", f'SELECT "{mailbox}"')
    return c


def untagged_after_noop(c: RawClient, tag: str = "n") -> list[str]:
    out = c.ok(tag, "NOOP")
    return out[:-1]


def idle_start(c: RawClient) -> None:
    c.line("i IDLE")
    assert c.response().startswith("+ "), "IDLE continuation"


def idle_stop(c: RawClient) -> list[str]:
    c.line("DONE")
    out = c.until_tagged("i")
    assert out[-1].startswith("i OK"), out
    return out[:-1]


def events_until_marker(owner: RawClient, listener: Listener, name: str) -> list[str]:
    """The event names the notify socket gets up to the MailboxCreate of a new mailbox
    ``name`` (events go out in commit order: all earlier changes' are in the list)."""
    owner.ok("m", f"CREATE {name}")
    out: list[str] = []
    while True:
        event = listener.next()
        out.append(event["event"])
        if event["event"] == "MailboxCreate" and f"/{name};" in event["uri"]:
            return out


def test_resetkey_mailbox_tells_the_users_sessions_with_it_selected(
    running: RunningServer, listener: Listener
) -> None:
    alice = selecting(running, "alice", "INBOX")
    alice.ok("c", "CREATE Work")
    uid = append(alice)
    alice.ok("acl", "SETACL INBOX bob lr")
    url = genurlauth(alice, f"imap://alice@localhost/INBOX/;uid={uid};urlauth=authuser")
    same = selecting(running, "alice", "INBOX")  # told at its next command
    idler = selecting(running, "alice", "INBOX")  # told at once, in IDLE
    other_box = selecting(running, "alice", "Work")
    nothing = selecting(running, "alice", None)
    sharer = selecting(running, "bob", "Other Users/alice/INBOX")  # another user: his own keys
    assert urlfetch(sharer, url) == MESSAGE
    idle_start(idler)
    events_until_marker(alice, listener, "Before")  # every earlier event read

    out = alice.command("a32", "RESETKEY INBOX")
    # §7.1: "this status response code can be sent in the tagged OK response instead of
    # requiring a separate untagged OK response": only there for the session that ran it.
    assert out == ["a32 OK [URLMECH INTERNAL] Key reset"], out
    assert idler.response() == URLMECH_OK
    assert idle_stop(idler) == []
    assert untagged_after_noop(same) == [URLMECH_OK]
    assert untagged_after_noop(same, "n2") == []  # told once
    assert untagged_after_noop(other_box) == []
    assert untagged_after_noop(nothing) == []
    assert untagged_after_noop(sharer) == []
    assert untagged_after_noop(alice) == []
    # No RFC 5423 event for the reset: the next event the socket gets is the marker's.
    assert events_until_marker(alice, listener, "After") == ["MailboxCreate"]
    # The URL made before the reset is revoked (RFC 4467 §7), a new one works.
    assert urlfetch(sharer, url) is None
    renewed = genurlauth(alice, f"imap://alice@localhost/INBOX/;uid={uid};urlauth=authuser")
    assert renewed != url and urlfetch(sharer, renewed) == MESSAGE


def test_resetkey_of_all_keys_tells_every_session_of_the_user_with_a_mailbox_selected(
    running: RunningServer, listener: Listener
) -> None:
    alice = selecting(running, "alice", None)
    alice.ok("c", "CREATE Work")
    uid = append(alice)
    wuid = append(alice, "Work")
    alice.ok("acl", "SETACL INBOX bob lr")
    inbox = genurlauth(alice, f"imap://alice@localhost/INBOX/;uid={uid};urlauth=authuser")
    work = genurlauth(alice, f"imap://alice@localhost/Work/;uid={wuid};urlauth=authuser")
    on_inbox = selecting(running, "alice", "INBOX")
    on_work = selecting(running, "alice", "Work")
    examining = running.raw("alice")
    examining.ok("e", "EXAMINE Work")
    nothing = selecting(running, "alice", None)
    sharer = selecting(running, "bob", "Other Users/alice/INBOX")
    bob_own = selecting(running, "bob", "INBOX")
    events_until_marker(alice, listener, "Before")

    # The session that runs it with nothing selected: the example's "OK All keys removed".
    assert alice.command("a31", "RESETKEY") == ["a31 OK All keys removed"]
    for c in (on_inbox, on_work, examining):
        assert untagged_after_noop(c) == [URLMECH_OK]
    for c in (nothing, sharer, bob_own, alice):
        assert untagged_after_noop(c) == []
    # The session that runs it with a mailbox selected is a session of the user with the
    # mailbox selected too: the untagged OK, before its tagged one ("All keys removed"
    # carries no URLMECH: which mailbox would it be about?).
    out = on_work.command("w1", "RESETKEY")
    assert out == [URLMECH_OK, "w1 OK All keys removed"], out
    assert untagged_after_noop(on_inbox) == [URLMECH_OK]
    # RESETKEY of a mailbox that is not the one selected says nothing to that session.
    out = on_work.command("w2", "RESETKEY INBOX")
    assert out == ["w2 OK [URLMECH INTERNAL] Key reset"], out
    assert untagged_after_noop(on_work) == []
    assert untagged_after_noop(on_inbox) == [URLMECH_OK]
    assert events_until_marker(alice, listener, "After") == ["MailboxCreate"]
    assert urlfetch(sharer, inbox) is None and urlfetch(sharer, work) is None


def test_resetkey_under_notify(running: RunningServer, listener: Listener) -> None:
    """RFC 5465 NOTIFY has no event for a key reset: a listening session of the user with
    nothing selected hears nothing of it; one with the mailbox selected and a selected
    group gets the URLMECH OK pushed at once (any untagged response may go out under
    NOTIFY, RFC 5465 §3.1), and no NOTIFY response with it."""
    alice = selecting(running, "alice", None)
    every = "(MessageNew MessageExpunge FlagChange)"
    names = "(MessageNew MessageExpunge MailboxName SubscriptionChange MailboxMetadataChange)"
    watcher = selecting(running, "alice", None)
    watcher.ok("ns", f"NOTIFY SET (personal {names})")
    selected = selecting(running, "alice", "INBOX")
    selected.ok("ns", f"NOTIFY SET (selected {every}) (personal {names})")
    events_until_marker(alice, listener, "Before")  # its LIST goes to both listeners
    watcher.quiet(0.2)
    selected.quiet(0.2)
    assert alice.command("r", "RESETKEY INBOX") == ["r OK [URLMECH INTERNAL] Key reset"]
    assert selected.response() == URLMECH_OK
    assert selected.quiet(0.5) == b""
    assert watcher.quiet(0.5) == b""
    assert alice.command("r2", "RESETKEY") == ["r2 OK All keys removed"]
    assert selected.response() == URLMECH_OK
    assert selected.quiet(0.5) == b"" and watcher.quiet(0.5) == b""
    assert untagged_after_noop(watcher) == []
    assert events_until_marker(alice, listener, "After") == ["MailboxCreate"]
