"""FETCH from pre-rendered bytes and FETCH from the stored structure answer alike (issue 17).

A store from before migration 0010 has no content_wire rows: its messages are rendered from
contents.structure. The same FETCH before and after those rows are removed (as they would
be missing there) must send the same octets, with and without UTF8=ACCEPT (RFC 6855 §3).
"""

from __future__ import annotations

import sqlite3

from tests.e2e.messages import NESTED, SIMPLE
from tests.helpers.server import RunningServer

UTF8_MESSAGE = (
    "Subject: Grüße aus Köln\r\nFrom: Jörg <jörg@exämple.de>\r\nTo: a@b, c@d\r\n\r\nhallo\r\n"
).encode()
FETCH = (
    "FETCH 1:* (UID FLAGS ENVELOPE INTERNALDATE BODY BODYSTRUCTURE RFC822.SIZE "
    "BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT)] BODY.PEEK[HEADER.FIELDS.NOT (TO)] "
    "BODY.PEEK[HEADER]<3.20> RFC822.HEADER BODY.PEEK[1])"
)


def _answer(server: RunningServer, utf8: bool) -> bytes:
    c = server.raw()
    if utf8:
        c.ok("e", "ENABLE UTF8=ACCEPT")
    c.ok("s", "EXAMINE INBOX")
    c.line("f " + FETCH)
    out = b""
    while True:
        line = c.response_bytes()
        out += line
        if line.startswith(b"f "):
            break
    assert line.startswith(b"f OK"), line
    c.close()
    return out


def test_prerendered_and_structure_rendered_fetch_send_the_same(server: RunningServer) -> None:
    c = server.raw()
    for i, message in enumerate((SIMPLE, NESTED, UTF8_MESSAGE)):
        c.send(b"a%d APPEND INBOX {%d+}\r\n" % (i, len(message)) + message + b"\r\n")
        assert c.until_tagged(f"a{i}")[-1].startswith(f"a{i} OK")
    c.close()
    stored = {utf8: _answer(server, utf8) for utf8 in (False, True)}
    assert stored[False] != stored[True]  # the UTF-8 message: literals, or quoted strings
    assert stored[False].count(b" FETCH (") == 3
    db = sqlite3.connect(server.config.db_path)
    try:
        with db:
            assert db.execute("SELECT count(*) FROM content_wire").fetchone() == (3,)
            db.execute("DELETE FROM content_wire")
    finally:
        db.close()
    for utf8 in (False, True):
        assert _answer(server, utf8) == stored[utf8], utf8
