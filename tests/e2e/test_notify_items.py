"""NOTIFY (RFC 5465) requirements that a transcript cannot state well: §3.1 (a command line of
a thousand names), §5.1, LMTP delivery and expiry (§5.2, §5.3), an admin's shared mailbox
(RFC 2342), and LIST-STATUS on a mailbox without ``r`` (RFC 5819 §2). The search-context
items (§5.1-§5.3, §7, §8) are in tests/e2e/test_notify_contexts.py; the others in
tests/transcripts/*.imap."""

from __future__ import annotations

import datetime as dt
import re
import smtplib
from typing import Any

from tests.helpers.server import PASSWORD, RunningServer
from tests.rawclient import RawClient


def _append(c: RawClient, tag: str, mailbox: str, n: int = 1) -> None:
    c.append(tag, mailbox, f"Subject: {n}\r\n")


def _uidvalidity(c: RawClient, tag: str, mailbox: str) -> int:
    out = c.ok(tag, f"STATUS {mailbox} (UIDVALIDITY)")
    m = re.fullmatch(rf'\* STATUS "{mailbox}" \(UIDVALIDITY (\d+)\)', out[0])
    assert m, out
    return int(m.group(1))


def test_too_many_mailboxes_is_notificationoverflow(server: RunningServer) -> None:
    """RFC 5465 §3.1: a request too expensive to honour (here: more than
    1000 mailbox names, counted over all groups) is refused with ``NO
    [NOTIFICATIONOVERFLOW]``, and the previous registration stays in force; 1000 names
    are accepted.  (INFO: clients should watch few mailboxes, §3.1, §9) is advice to
    clients; the server's side of it is this limit.  (RFC 5530): the mandatory code is
    there, not replaced by another one."""
    a, b = server.raw(), server.raw()
    a.ok("a1", "NOTIFY SET (mailboxes INBOX (MessageNew MessageExpunge))")
    names = " ".join(f"M{i}" for i in range(1001))
    out = a.command("a2", f"NOTIFY SET (mailboxes ({names}) (MessageNew MessageExpunge))")
    assert out == ["a2 NO [NOTIFICATIONOVERFLOW] Too many mailboxes to watch"], out
    split = (
        "NOTIFY SET (mailboxes (M0 M1) (MessageNew MessageExpunge)) (subtree ("
        + " ".join(f"S{i}" for i in range(999))
        + ") (MailboxName))"
    )
    out = a.command("a3", split)
    assert out == ["a3 NO [NOTIFICATIONOVERFLOW] Too many mailboxes to watch"], out
    _append(b, "b1", "INBOX")  # the registration of a1 is still in force
    line = a.response()
    assert re.fullmatch(
        r'\* STATUS "INBOX" \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+ UNSEEN 1\)', line
    ), line
    names = " ".join(f"M{i}" for i in range(1000))
    out = a.command("a4", f"NOTIFY SET (mailboxes ({names}) (MessageNew MessageExpunge))")
    assert out == ["a4 OK NOTIFY completed"], out
    _append(b, "b2", "INBOX")
    assert a.quiet() == b""  # a4 replaced a1 (RFC 5465 §3.1): INBOX is no longer watched


def test_uidvalidity_change_is_reported(server: RunningServer) -> None:
    """RFC 5465 §5.1: with FlagChange requested, the server MUST notify the client of
    UIDVALIDITY changes by a STATUS that includes UIDVALIDITY. DELETE and CREATE of a
    watched name give it a new UIDVALIDITY (RFC 3501 §2.3.1.1)."""
    a, b = server.raw(), server.raw()
    a.ok("a1", "CREATE Work")
    out = a.ok("a2", "NOTIFY SET STATUS (mailboxes Work (MessageNew MessageExpunge FlagChange))")
    m = re.fullmatch(
        r'\* STATUS "Work" \(MESSAGES 0 UIDNEXT 1 UIDVALIDITY (\d+) UNSEEN 0'
        r" HIGHESTMODSEQ 1\)",
        out[0],
    )  # HIGHESTMODSEQ: RFC 5465 §3.1
    assert m and len(out) == 2, out
    old = int(m.group(1))
    b.ok("b1", "DELETE Work")
    b.ok("b2", "CREATE Work")
    new = _uidvalidity(b, "b3", "Work")
    assert new != old
    pushed = a.quiet(0.5).decode()
    assert re.search(rf'^\* STATUS "Work" \([^)]*UIDVALIDITY {new}[ )]', pushed, re.M), pushed


def test_pushed_highestmodseq_covers_only_what_was_told(server: RunningServer) -> None:
    """RFC 7162 §3.1.4.2, §3.2.10.2 (§3.2: a QRESYNC server MUST send untagged events so that the
    client loses no change if the connection drops; a received HIGHESTMODSEQ is the
    client's new sync point, §6). A HIGHESTMODSEQ pushed by NOTIFY must stay below every
    change not reported yet, the held flag FETCH included."""
    a, b = server.raw(), server.raw()
    _append(b, "b0", "INBOX", 0)
    _append(b, "b1", "INBOX", 1)
    a.ok("a0", "ENABLE QRESYNC")
    a.ok("a1", "SELECT INBOX")
    a.ok("a2", "NOTIFY SET (selected-delayed (MessageNew MessageExpunge))")
    b.ok("b2", "SELECT INBOX")
    b.ok("b3", "STORE 1 +FLAGS (\\Flagged)")
    b.ok("b4", "STORE 2 +FLAGS.SILENT (\\Deleted)")
    b.ok("b5", "EXPUNGE")
    pushed = a.quiet(0.5).decode()
    out = a.ok("a3", "NOOP")
    fetch = next(line for line in out if line.startswith("* 1 FETCH"))
    held = int(re.search(r"MODSEQ \((\d+)\)", fetch).group(1))  # type: ignore[union-attr]
    told = [int(v) for v in re.findall(r"\[HIGHESTMODSEQ (\d+)\]", pushed)]
    # Exchange seen (modseqs: \Flagged on UID 1 = 4, expunge of UID 2 = 6):
    #   (no command running)  S: * OK [HIGHESTMODSEQ 5] Highest
    #   C: a3 NOOP            S: * VANISHED 2
    #                         S: * 1 FETCH (UID 1 FLAGS (\Flagged \Recent) MODSEQ (4))
    assert told and all(v < held for v in told), (pushed, fetch)
    # Once the NOOP told everything, the value goes up again to cover it all.
    raised = [int(v) for line in out for v in re.findall(r"\[HIGHESTMODSEQ (\d+)\]", line)]
    assert "* VANISHED 2" in out and raised and raised[-1] > held, out
    assert out.index(fetch) < max(i for i, line in enumerate(out) if "HIGHESTMODSEQ" in line)


def test_message_events_cover_every_rfc5423_source(server_factory: Any) -> None:
    """RFC 5465 §5.2, §5.3: MessageNew covers RFC 5423 MessageNew and
    MessageAppend: APPEND, COPY, MOVE into the mailbox and LMTP delivery; MessageExpunge
    covers MessageExpunge and MessageExpire: EXPUNGE, UID EXPUNGE, MOVE out, CLOSE and the
    expiry run. Each is pushed to the selected mailbox (EXISTS + FETCH, EXPUNGE) and to
    another watched mailbox (STATUS)."""
    server = server_factory(lmtp="127.0.0.1:0", expire_interval=0)
    server.add_user("alice")
    a, b = server.raw(), server.raw()
    b.ok("b0", "CREATE Work")
    for i in range(3):
        _append(b, f"b1{i}", "Work", i)
    a.ok("a1", "SELECT INBOX")
    a.ok(
        "a2",
        "NOTIFY SET (selected (MessageNew (UID) MessageExpunge))"
        " (mailboxes Archive (MessageNew MessageExpunge))",
    )
    b.ok("b2", "SELECT Work")

    def new(n: int, uid: int) -> None:
        got = [a.response() for _ in range(3)]
        assert got == [f"* {n} EXISTS", f"* {n} RECENT", f"* {n} FETCH (UID {uid})"], got

    def archive(messages: int, uidnext: int) -> None:
        line = a.response()
        assert re.fullmatch(
            rf'\* STATUS "Archive" \(MESSAGES {messages} UIDNEXT {uidnext}'
            rf" UIDVALIDITY \d+ UNSEEN {messages}\)",
            line,
        ), line

    _append(b, "b3", "INBOX")  # APPEND
    new(1, 1)
    b.ok("b4", "COPY 1 INBOX")  # COPY
    new(2, 2)
    b.ok("b5", "COPY 1 Archive")
    archive(1, 2)
    b.ok("b6", "MOVE 1 INBOX")  # MOVE in
    new(3, 3)
    b.ok("b7", "MOVE 1 Archive")
    archive(2, 3)
    assert server.server.lmtp is not None
    host, port = server.server.lmtp.addresses[0]
    with smtplib.LMTP(host, port, timeout=10) as lmtp:  # delivery
        lmtp.ehlo_or_helo_if_needed()
        assert (
            lmtp.sendmail("x@example.net", ["alice@example.org"], b"Subject: by LMTP\r\n\r\nhi\r\n")
            == {}
        )
    new(4, 4)
    assert a.quiet() == b""

    b.ok("b8", "SELECT INBOX")
    b.ok("b9", "STORE 4 +FLAGS.SILENT (\\Deleted)")
    b.ok("b10", "EXPUNGE")  # EXPUNGE
    assert a.response() == "* 4 EXPUNGE"
    b.ok("b11", "STORE 3 +FLAGS.SILENT (\\Deleted)")
    b.ok("b12", "UID EXPUNGE 3")  # UID EXPUNGE
    assert a.response() == "* 3 EXPUNGE"
    b.ok("b13", "MOVE 2 Archive")  # MOVE out
    got = sorted(a.response() for _ in range(2))
    assert got[0] == "* 2 EXPUNGE", got
    assert re.fullmatch(
        r'\* STATUS "Archive" \(MESSAGES 3 UIDNEXT 4 UIDVALIDITY \d+'
        r" UNSEEN 3\)",
        got[1],
    ), got
    b.ok("b14", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.ok("b15", "CLOSE")  # CLOSE
    assert a.response() == "* 1 EXPUNGE"
    _append(b, "b16", "INBOX")
    new(1, 5)
    store = server.server.store
    user = server.call(store.get_user("alice"))
    for name in ("INBOX", "Archive"):
        server.call(store.set_retention(user.id, name, 1))
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=5)
    assert server.call(store.expire(later)) == 4  # expiry
    got = sorted(a.response() for _ in range(2))
    assert got[0] == "* 1 EXPUNGE", got
    assert re.fullmatch(
        r'\* STATUS "Archive" \(MESSAGES 0 UIDNEXT 4 UIDVALIDITY \d+'
        r" UNSEEN 0\)",
        got[1],
    ), got
    assert a.quiet() == b""


def test_personal_is_the_personal_namespace(server: RunningServer) -> None:
    """RFC 2342; RFC 5465 §6.2: `personal` is the personal namespace ("" here):
    neither another user's mailbox (``Other Users/``) nor a shared one (``Shared/``) is in
    it, even with every right needed; `subtree` reaches both."""
    server.call(server.server.store.create_user("admin", PASSWORD, admin=True))
    alice, bob, admin = server.raw(), server.raw("bob"), server.raw("admin")
    out = alice.ok("a0", "NAMESPACE")
    assert out[0] == '* NAMESPACE (("" "/")) (("Other Users/" "/")) (("Shared/" "/"))', out
    admin.ok("x1", 'CREATE "Shared/News"')
    admin.ok("x2", 'SETACL "Shared/News" alice lr')
    bob.ok("b1", "SETACL INBOX alice lr")
    alice.ok("a1", "NOTIFY SET (personal (MessageNew MessageExpunge MailboxName))")
    _append(admin, "x3", "Shared/News")
    _append(bob, "b2", "INBOX")
    assert alice.quiet() == b""
    _append(bob, "b3", "Archive")  # bob's personal Archive, not alice's
    assert alice.quiet() == b""
    alice.ok(
        "a2", 'NOTIFY SET (subtree ("Shared" "Other Users/bob/INBOX") (MessageNew MessageExpunge))'
    )
    _append(admin, "x4", "Shared/News")
    line = alice.response()
    assert line.startswith('* STATUS "Shared/News" (MESSAGES 2 UIDNEXT 3 '), line
    _append(bob, "b4", "INBOX")
    line = alice.response()
    assert line.startswith('* STATUS "Other Users/bob/INBOX" (MESSAGES 2 UIDNEXT 3 '), line


def test_list_status_unreadable_is_noselect(server: RunningServer) -> None:
    """RFC 5819 §2: "If an attempted STATUS for a listed mailbox fails because the
    mailbox can't be selected (e.g., if the "l" ACL right is granted to the mailbox and the
    "r" right is not granted ...), the STATUS response MUST NOT be returned and the LIST
    response MUST include the \\NoSelect attribute." Seen: ``* LIST () "/"
    "Other Users/alice/Team"`` (no STATUS, which is right, but no \\Noselect)."""
    alice, bob = server.raw(), server.raw("bob")
    alice.ok("a1", "CREATE Team")
    alice.ok("a2", "SETACL Team bob l")
    out = bob.ok("b1", 'LIST "" "Other Users/alice/Team" RETURN (STATUS (MESSAGES))')
    assert len(out) == 2, out  # the LIST, no STATUS, the tagged OK
    m = re.fullmatch(r'\* LIST \(([^)]*)\) "/" "Other Users/alice/Team"', out[0])
    assert m, out
    assert "\\noselect" in m.group(1).lower().split(), out
