"""REPLACE and UID REPLACE (RFC 8508) through a real server: rights, size limits, spooled
literals, and a round trip with imaplib (which sends the literal the way it sends APPEND's)
and imapclient (which sees the result)."""

from __future__ import annotations

import imaplib
import re
from typing import Any

from imapd.protocol.connection import Limits
from tests.helpers.imap import client
from tests.helpers.server import PASSWORD, RunningServer
from tests.rawclient import RawClient

DRAFT = b"From: a@example.org\r\nSubject: draft %d\r\n\r\nbody %d\r\n"


def raw(server: RunningServer, user: str = "alice") -> RawClient:
    c = RawClient.connect(server.host, server.port)
    c.login(user, PASSWORD)
    return c


def test_capability_advertises_replace(server: RunningServer) -> None:
    """RFC 8508 §5: capability =/ "REPLACE"."""
    c = raw(server)
    assert "REPLACE" in c.ok("a", "CAPABILITY")[0].split()


def test_imaplib_round_trip(server: RunningServer) -> None:
    """A draft saved three times by REPLACE leaves one message, the last, with its flags;
    imapclient reads it back and sees the old ones gone."""
    imaplib.Commands.setdefault("REPLACE", ("SELECTED",))
    m = imaplib.IMAP4(server.host, server.port)
    m.login("alice", PASSWORD)
    typ, data = m.append("Drafts", "(\\Draft)", None, DRAFT % (1, 1))
    assert typ == "OK"
    m.select("Drafts")
    m.literal = DRAFT % (2, 2)  # type: ignore[assignment]  # imaplib sends bytes
    typ, data = m._simple_command("REPLACE", "1", "Drafts", "(\\Draft \\Seen)")
    assert typ == "OK", data
    assert m.untagged_responses.get("OK", [])  # the untagged APPENDUID
    appenduid = [
        r for r in m.untagged_responses["OK"] if isinstance(r, bytes) and b"APPENDUID" in r
    ]
    assert appenduid and re.match(rb"\[APPENDUID \d+ 2\]", appenduid[-1]), appenduid
    m.literal = DRAFT % (3, 3)  # type: ignore[assignment]  # imaplib sends bytes
    typ, data = m.uid("REPLACE", "2", "Drafts", "(\\Draft)")
    assert typ == "OK", data
    m.logout()
    c = client(server)
    c.select_folder("Drafts")
    found = c.fetch(c.search("ALL"), ["FLAGS", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
    assert list(found) == [3]
    assert found[3][b"FLAGS"] == (b"\\Draft",)
    assert found[3][b"BODY[HEADER.FIELDS (SUBJECT)]"].strip() == b"Subject: draft 3"
    c.logout()


def test_rights_on_source_and_target(server: RunningServer) -> None:
    """RFC 8508 §4.1: "The Access Control List (ACL) rights [RFC4314] required for UID
    REPLACE are the union of the ACL rights required for UID STORE and UID EXPUNGE in the
    current mailbox, and APPEND in the target mailbox": t and e on the source, i on the
    target."""
    alice = raw(server)
    alice.ok("a1", "CREATE Project")
    alice.line("a2 APPEND Project {12+}")
    alice.send(b"Subject: 1\r\n\r\n")
    alice.until_tagged("a2")
    alice.ok("a3", "SETACL Project bob lrsw")  # no t, no e, no i
    bob = raw(server, "bob")
    bob.ok("b1", 'SELECT "Other Users/alice/Project"')
    bob.line("b2 UID REPLACE 1 INBOX {12+}")
    bob.send(b"Subject: x\r\n\r\n")
    assert bob.until_tagged("b2")[-1].startswith("b2 NO [NOPERM]")
    alice.ok("a4", "SETACL Project bob lrswte")  # t and e; still no i on Project
    bob.ok("b3", 'SELECT "Other Users/alice/Project"')  # rights are read at SELECT
    bob.line('b4 UID REPLACE 1 "Other Users/alice/Project" {12+}')
    bob.send(b"Subject: x\r\n\r\n")
    assert bob.until_tagged("b4")[-1].startswith("b4 NO [NOPERM]")
    bob.line("b5 UID REPLACE 1 INBOX {12+}")  # i on his own INBOX: done
    bob.send(b"Subject: y\r\n\r\n")
    reply = bob.until_tagged("b5")
    assert reply[0].startswith("* OK [APPENDUID "), reply
    assert "* 1 EXPUNGE" in reply and reply[-1].startswith("b5 OK")
    assert "MESSAGES 0" in alice.ok("a5", "STATUS Project (MESSAGES)")[0]


def test_toobig_and_spooled_literals(server_factory: Any) -> None:
    """RFC 8508 §3.4: "extensions that affect APPEND affect REPLACE in the same way":
    APPENDLIMIT (RFC 7889) refuses a larger synchronizing literal with NO [TOOBIG] before
    it is sent; a literal above the spool size is written to a file and stored from it."""
    srv = server_factory(limits=Limits(max_literal_size=200_000, literal_spool_size=4096))
    srv.add_user("alice")
    c = raw(srv)
    c.line("a1 APPEND INBOX {12+}")
    c.send(b"Subject: 1\r\n\r\n")
    c.until_tagged("a1")
    c.ok("a2", "SELECT INBOX")
    c.line("a3 REPLACE 1 INBOX {300000}")
    assert c.response().startswith("a3 NO [TOOBIG]")
    big = b"Subject: big\r\n\r\n" + b"x" * 100_000 + b"\r\n"
    c.line(f"a4 REPLACE 1 INBOX {{{len(big)}}}")
    assert c.response().startswith("+")
    c.send(big + b"\r\n")
    reply = c.until_tagged("a4")
    assert reply[0].startswith("* OK [APPENDUID "), reply
    assert reply[-1].startswith("a4 OK"), reply
    out = c.ok("a5", "FETCH 1 (UID RFC822.SIZE BODY.PEEK[TEXT]<0.5>)")
    assert out[0] == f"* 1 FETCH (UID 2 RFC822.SIZE {len(big)} BODY[TEXT]<0> {{5}}\r\nxxxxx)", out
