"""SORT and THREAD through real client libraries: imapclient's ``sort()`` and ``thread()``
(its own response parsers read our SORT and nested THREAD responses), and imaplib's
``sort()`` / ``thread()``.

neomutt (20220429 here) sorts and threads on the client: its binary holds no SORT or THREAD
command, so no neomutt run can exercise ours (see docs/sort-thread.md).
"""

from __future__ import annotations

import imaplib

from tests.helpers.interop import imap
from tests.helpers.server import PASSWORD, RunningServer


def _msg(subject: str, date: str, mid: str, refs: str = "", sender: str = "a@x.org") -> bytes:
    head = f"From: {sender}\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: {mid}\r\n" + (
        f"References: {refs}\r\n" if refs else ""
    )
    return (head + "\r\nbody\r\n").encode()


MESSAGES = [
    _msg("Trip", "Mon, 2 Jan 2023 10:00:00 +0000", "<t1@x>", sender="zoe@x.org"),
    _msg("Re: Trip", "Mon, 2 Jan 2023 12:00:00 +0000", "<t2@x>", "<t1@x>", "bob@x.org"),
    _msg("Budget", "Mon, 2 Jan 2023 09:00:00 +0000", "<b1@x>", sender="amy@x.org"),
    _msg("Re: Trip", "Mon, 2 Jan 2023 11:00:00 +0000", "<t3@x>", "<t1@x>", "cid@x.org"),
    _msg("Re: Re: Trip", "Mon, 2 Jan 2023 13:00:00 +0000", "<t4@x>", "<t1@x> <t3@x>"),
]


def test_imapclient_sort_and_thread(server: RunningServer) -> None:
    with imap(server) as c:
        assert c.has_capability("SORT") and c.has_capability("THREAD=REFERENCES")
        for raw in MESSAGES:
            c.append("INBOX", raw)
        c.select_folder("INBOX")
        uids = c.search("ALL")
        assert uids == [1, 2, 3, 4, 5]
        assert c.sort(["DATE"]) == [3, 1, 4, 2, 5]
        assert c.sort(["FROM"]) == [5, 3, 2, 4, 1]  # a, amy, bob, cid, zoe
        assert c.sort(["SUBJECT", "REVERSE", "DATE"], ["NOT", "FROM", "amy"]) == [5, 2, 4, 1]
        # 1 <- (3 <- 5, 2): the replies ordered by date, 3 (11:00) before 2 (12:00)
        assert c.thread("REFERENCES") == ((3,), (1, (4, 5), (2,)))
        assert c.thread("ORDEREDSUBJECT") == ((3,), (1, (4,), (2,), (5,)))
        assert c.thread("REFERENCES", ["SUBJECT", "Trip", "NOT", "UID", "1"]) == (((4, 5), (2,)),)


def test_imaplib_sort_and_thread(server: RunningServer) -> None:
    with imap(server) as setup:
        for raw in MESSAGES:
            setup.append("INBOX", raw)
    c = imaplib.IMAP4(server.host, server.port)
    try:
        c.login("alice", PASSWORD)
        c.select("INBOX")
        assert c.sort("(REVERSE DATE)", "UTF-8", "ALL") == ("OK", [b"5 2 4 1 3"])
        assert c.uid("SORT", "(SIZE)", "UTF-8", "SUBJECT", "Budget") == ("OK", [b"3"])
        assert c.thread("REFERENCES", "UTF-8", "ALL") == ("OK", [b"(3)(1 (4 5)(2))"])
        typ, data = c.thread("BOGUS", "UTF-8", "ALL")
    except imaplib.IMAP4.error as exc:
        assert "thread algorithm" in str(exc)
    else:
        raise AssertionError(f"THREAD BOGUS answered {typ} {data}")
    finally:
        c.logout()
