"""RFC 8474 OBJECTID end to end beyond the transcript (tests/transcripts/objectid.imap): the
MAILBOXID rules of §4 for DELETE + CREATE, the \\Noselect placeholder and RENAME INBOX;
EMAILID across users' shared contents; ``vnd.cmu.emailid`` in the events (opt-in, as in
Cyrus); NOTIFY's MessageNew FETCH carrying EMAILID."""

from __future__ import annotations

import re
from typing import Any

from notify import cyrus
from tests.helpers.server import PASSWORD, RunningServer
from tests.notify.listener import Listener
from tests.rawclient import RawClient

MSG = "Subject: hi\r\nMessage-ID: <a@x>\r\n\r\nbody\r\n"


def raw(server: RunningServer, user: str = "alice") -> RawClient:
    c = RawClient.connect(server.host, server.port)
    c.login(user, PASSWORD)
    return c


def mailboxid(c: RawClient, name: str) -> str:
    [status, _] = c.ok("s", f'STATUS "{name}" (MAILBOXID)')
    found = re.fullmatch(r'\* STATUS "?[^"]*"? \(MAILBOXID \(([A-Za-z0-9_-]{1,255})\)\)', status)
    assert found, status
    return found[1]


def created(c: RawClient, name: str) -> str:
    tagged = c.ok("c", f"CREATE {name}")[-1]
    found = re.fullmatch(r"c OK \[MAILBOXID \(([A-Za-z0-9_-]{1,255})\)\] CREATE completed", tagged)
    assert found, tagged
    return found[1]


def emailids(c: RawClient, box: str) -> list[str]:
    c.ok("x", f"EXAMINE {box}")
    lines = c.ok("f", "FETCH 1:* (EMAILID)")[:-1]
    out = []
    for line in lines:
        found = re.fullmatch(r"\* \d+ FETCH \(EMAILID \(([A-Za-z0-9_-]{1,255})\)\)", line)
        assert found, line
        out.append(found[1])
    return out


def test_mailboxid_never_reused_and_renamed_with_the_mailbox(server: RunningServer) -> None:
    c = raw(server)
    first = created(c, "a")
    assert mailboxid(c, "a") == first
    c.ok("d", "DELETE a")
    again = created(c, "a")  # same name, new UIDVALIDITY: a new mailbox (RFC 8474 §4)
    assert again != first
    # A parent deleted while it has a child stays as a \Noselect placeholder; CREATE brings it
    # back with a new UIDVALIDITY, so the id must change although the row is the same.
    parent = created(c, "p")
    created(c, "p/child")
    c.ok("d2", "DELETE p")
    revived = created(c, "p")
    assert revived not in (parent, first, again)
    # RENAME keeps the id, with children (§4: "MUST keep the same MAILBOXID").
    child = mailboxid(c, "p/child")
    c.ok("r", "RENAME p q")
    assert (mailboxid(c, "q"), mailboxid(c, "q/child")) == (revived, child)
    # RENAME INBOX creates a new mailbox: INBOX keeps its id, the new name gets another.
    inbox = mailboxid(c, "INBOX")
    c.append("ap", "INBOX", MSG)
    [email] = emailids(c, "INBOX")
    c.ok("ri", "RENAME INBOX old-inbox")
    assert mailboxid(c, "INBOX") == inbox
    moved = mailboxid(c, "old-inbox")
    assert moved not in (inbox, first, again, revived, child)
    assert emailids(c, "old-inbox") == [email]  # the messages moved, same content
    c.close()


def test_emailid_same_for_copies_distinct_for_appends(server: RunningServer) -> None:
    c = raw(server)
    c.append("a1", "INBOX", MSG)
    c.append("a2", "INBOX", MSG)  # identical bytes: a new contents row, so a new EMAILID
    c.ok("s", "SELECT INBOX")
    c.ok("cp", "COPY 1:2 INBOX")
    ids = emailids(c, "INBOX")
    assert len(ids) == 4 and ids[0] != ids[1]
    assert ids[2:] == ids[:2]  # RFC 8474 §5.1: the COPYUID pairing keeps the EMAILID
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", i) and i.upper() != "NIL" for i in ids)
    c.close()


def test_events_carry_the_emailid_when_asked(server_factory: Any) -> None:
    listener = Listener()
    try:
        server: RunningServer = server_factory(
            notify_socket=listener.path,
            event_groups=("message",),
            event_extra_params=(*cyrus.DEFAULT_EXTRA_PARAMS, "vnd.cmu.emailid"),
        )
        server.add_user("alice")
        c = raw(server)
        c.append("a", "INBOX", MSG)
        [appended] = listener.take(1)
        assert appended["event"] == "MessageAppend"
        [email] = emailids(c, "INBOX")
        assert appended["vnd.cmu.emailid"] == email
        ranks = [cyrus.KEY_ORDER.index(k) for k in appended]
        assert ranks == sorted(ranks), list(appended)
        c.ok("s", "SELECT INBOX")
        c.ok("cp", "COPY 1 INBOX")
        [copied] = listener.take(1)  # Cyrus sends it on MessageAppend/MessageNew only
        assert copied["event"] == "vnd.cmu.MessageCopy" and "vnd.cmu.emailid" not in copied
        c.close()
    finally:
        listener.cleanup()


def test_events_without_the_param_have_no_emailid(server_factory: Any) -> None:
    listener = Listener()
    try:
        server: RunningServer = server_factory(
            notify_socket=listener.path, event_groups=("message",)
        )
        server.add_user("alice")
        c = raw(server)
        c.append("a", "INBOX", MSG)
        [appended] = listener.take(1)
        assert appended["event"] == "MessageAppend" and "vnd.cmu.emailid" not in appended
        c.close()
    finally:
        listener.cleanup()


def test_notify_message_new_fetch_carries_emailid(server: RunningServer) -> None:
    watcher, writer = raw(server), raw(server)
    watcher.ok("s", "SELECT INBOX")
    watcher.ok("n", "NOTIFY SET (SELECTED (MessageNew (UID EMAILID) MessageExpunge))")
    writer.append("a", "INBOX", MSG)
    writer.close()
    assert watcher.response() == "* 1 EXISTS"
    line = watcher.response()
    if line == "* 1 RECENT":
        line = watcher.response()
    found = re.fullmatch(r"\* 1 FETCH \(UID 1 EMAILID \((M\d+)\)\)", line)
    assert found, line
    assert watcher.ok("f", "FETCH 1 EMAILID")[0] == f"* 1 FETCH (EMAILID ({found[1]}))"
    watcher.close()
