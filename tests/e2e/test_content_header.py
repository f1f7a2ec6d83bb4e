"""The header block stored apart (issue 17; tests/store/test_content_header.py for the store)
through a real server: LMTP delivery and APPEND CATENATE store it too, and FETCH
BODY.PEEK[HEADER] / HEADER.FIELDS answer from it the octets the message starts with."""

from __future__ import annotations

import smtplib
import sqlite3
from typing import Any

from tests.helpers.server import PASSWORD, RunningServer
from tests.rawclient import RawClient

DELIVERED = b"Subject: lmtp\r\nX-Way: delivered\r\n\r\nDelivered words\r\n"
TEXT = b"Subject: catenated\r\nX-Way: catenate\r\n\r\nfirst part, "


def _blocks(server: RunningServer) -> list[tuple[bytes, bytes]]:
    """(stored block, the message's first header_len octets) of every contents row."""
    db = sqlite3.connect(server.config.db_path)
    try:
        return db.execute(
            "SELECT h.header, substr(c.raw, 1, c.header_len) FROM contents AS c"
            " LEFT JOIN content_header AS h ON h.id = c.id ORDER BY c.id"
        ).fetchall()
    finally:
        db.close()


def test_lmtp_and_catenate_store_the_block_fetch_reads_it(server_factory: Any) -> None:
    running: RunningServer = server_factory(lmtp="127.0.0.1:0")
    running.add_user("alice")
    assert running.server.lmtp is not None
    address = running.server.lmtp.addresses[0]
    assert isinstance(address, tuple)
    lmtp = smtplib.LMTP(*address, timeout=10)
    lmtp.ehlo()
    lmtp.sendmail("a@example.com", ["alice"], DELIVERED)
    lmtp.quit()

    c = RawClient.connect(running.host, running.port)
    c.login("alice", PASSWORD)
    c.send(f"a1 APPEND INBOX CATENATE (TEXT {{{len(TEXT)}+}}\r\n".encode() + TEXT)
    c.send(b' URL "/INBOX/;UID=1/;SECTION=TEXT")\r\n')
    assert c.until_tagged("a1")[-1].startswith("a1 OK")
    blocks = _blocks(running)
    assert [cut for _, cut in blocks] == [
        b"Return-Path: <a@example.com>\r\n" + DELIVERED[: DELIVERED.index(b"\r\n\r\n") + 4],
        TEXT[: TEXT.index(b"\r\n\r\n") + 4],
    ]
    assert [header for header, _ in blocks] == [cut for _, cut in blocks]

    c.line("a2 SELECT INBOX")
    c.until_tagged("a2")
    c.line("a3 FETCH 1:2 (BODY.PEEK[HEADER] BODY.PEEK[HEADER.FIELDS (X-WAY)])")
    out = b""
    while not out.endswith(b"a3 OK"):
        line = c.response_bytes()
        out += line if line.startswith(b"a3 ") else line + b"\r\n"
        assert not line.startswith(b"a3 ") or line.startswith(b"a3 OK"), line
        if line.startswith(b"a3 "):
            out = out[: -len(line)] + b"a3 OK"
    assert out.count(b" FETCH ") == 2
    for header, _ in blocks:
        assert b"BODY[HEADER] {%d}\r\n%s" % (len(header), header) in out
    for way in (b"delivered", b"catenate"):
        field = b"X-Way: %s\r\n\r\n" % way
        assert b"BODY[HEADER.FIELDS (X-WAY)] {%d}\r\n%s" % (len(field), field) in out
    c.line("a4 LOGOUT")
