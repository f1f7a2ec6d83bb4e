"""NOTIFY (RFC 5465) items from shared/reference/NOTIFY.md that a transcript cannot state
well: N35 (a command line of a thousand names) and N55 (a server defect, marked xfail).
The other items are in tests/transcripts/notify_*.imap."""

from __future__ import annotations

import re

from tests.conftest import RunningServer
from tests.rawclient import RawClient


def _append(c: RawClient, tag: str, mailbox: str, n: int = 1) -> None:
    c.append(tag, mailbox, f"Subject: {n}\r\n")


def _uidvalidity(c: RawClient, tag: str, mailbox: str) -> int:
    out = c.ok(tag, f"STATUS {mailbox} (UIDVALIDITY)")
    m = re.fullmatch(rf'\* STATUS "{mailbox}" \(UIDVALIDITY (\d+)\)', out[0])
    assert m, out
    return int(m.group(1))


def test_too_many_mailboxes_is_notificationoverflow(server: RunningServer) -> None:
    """N35, N38, N26 (RFC 5465 §3.1): a request too expensive to honour (here: more than
    1000 mailbox names, counted over all groups) is refused with ``NO
    [NOTIFICATIONOVERFLOW]``, and the previous registration stays in force; 1000 names
    are accepted."""
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
    assert a.quiet() == b""  # a4 replaced a1 (N24): INBOX is no longer watched


def test_uidvalidity_change_is_reported(server: RunningServer) -> None:
    """N55 (RFC 5465 §5.1): with FlagChange requested, the server MUST notify the client of
    UIDVALIDITY changes by a STATUS that includes UIDVALIDITY. DELETE and CREATE of a
    watched name give it a new UIDVALIDITY (RFC 3501 §2.3.1.1)."""
    a, b = server.raw(), server.raw()
    a.ok("a1", "CREATE Work")
    out = a.ok("a2", "NOTIFY SET STATUS (mailboxes Work (MessageNew MessageExpunge"
                       " FlagChange))")
    m = re.fullmatch(r'\* STATUS "Work" \(MESSAGES 0 UIDNEXT 1 UIDVALIDITY (\d+) UNSEEN 0\)',
                     out[0])
    assert m and len(out) == 2, out
    old = int(m.group(1))
    b.ok("b1", "DELETE Work")
    b.ok("b2", "CREATE Work")
    new = _uidvalidity(b, "b3", "Work")
    assert new != old
    pushed = a.quiet(0.5).decode()
    assert re.search(rf'^\* STATUS "Work" \([^)]*UIDVALIDITY {new}[ )]', pushed, re.M), pushed


def test_pushed_highestmodseq_covers_only_what_was_told(server: RunningServer) -> None:
    """D18, D22 (RFC 7162 §3.2: a QRESYNC server MUST send untagged events so that the
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
