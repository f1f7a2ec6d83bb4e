"""PREVIEW (RFC 8970) end to end: stored at APPEND and LMTP delivery, shared by COPY, computed
at the first FETCH for messages stored before the store kept previews (LAZY answers NIL for
those), through a raw socket, imaplib and imapclient.

The grammar, the RFC's examples and the algorithm's cases on the wire are in
tests/transcripts/preview.imap; the algorithm itself in tests/store/test_preview.py.
"""

from __future__ import annotations

import imaplib
import smtplib
import sqlite3
from typing import Any

from tests.helpers.imap import client
from tests.helpers.server import PASSWORD, RunningServer

TEXT = "Grüße aus Köln, wie geht's?"
MESSAGE = ("Subject: hi\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + TEXT).encode()
LONG = b"Subject: long\r\n\r\n" + b"Lorem ipsum dolor sit amet. " * 200_000  # 5.6 MB


def _previews(server: RunningServer) -> dict[int, str]:
    db = sqlite3.connect(server.config.db_path)
    try:
        return dict(db.execute("SELECT id, preview FROM content_preview").fetchall())
    finally:
        db.close()


def _forget_previews(server: RunningServer) -> None:
    """As a store from before the migration: contents without content_preview rows."""
    db = sqlite3.connect(server.config.db_path)
    try:
        with db:
            db.execute("DELETE FROM content_preview")
    finally:
        db.close()


def test_imapclient_round_trip_stored_at_append_shared_by_copy(server: RunningServer) -> None:
    c = client(server)
    assert b"PREVIEW" in c.capabilities()
    c.append("INBOX", MESSAGE)
    c.select_folder("INBOX")
    assert list(_previews(server).values()) == [TEXT]
    got = c.fetch([1], ["PREVIEW", "FLAGS"])[1]
    assert got[b"PREVIEW"].decode() == TEXT  # a literal: UTF-8 without UTF8=ACCEPT
    assert b"\\Seen" not in got[b"FLAGS"]  # PREVIEW is no body fetch (RFC 3501 §6.4.5)
    c.create_folder("Other")
    c.copy([1], "Other")
    c.select_folder("Other")
    assert c.fetch([1], ["PREVIEW (LAZY)"])[1][b"PREVIEW"].decode() == TEXT
    assert len(_previews(server)) == 1  # one contents row, one preview
    c.logout()


def test_imaplib_preview_of_a_message_before_the_migration(server: RunningServer) -> None:
    """RFC 8970 §4.1: with LAZY the server MAY answer NIL when the preview is not at hand
    (a message stored before previews were kept); without LAZY it MUST NOT, so the preview
    is computed then, and kept: LAZY has it afterwards."""
    c = imaplib.IMAP4(server.host, server.port)
    c.login("alice", PASSWORD)
    for message in (MESSAGE, LONG, b"Subject: empty\r\n\r\n"):
        assert c.append("INBOX", None, None, message)[0] == "OK"
    _forget_previews(server)
    c.select("INBOX")
    typ, data = c.fetch("1:3", "(UID PREVIEW (LAZY))")
    assert typ == "OK"
    assert data == [b"1 (UID 1 PREVIEW NIL)", b"2 (UID 2 PREVIEW NIL)", b"3 (UID 3 PREVIEW NIL)"]
    assert _previews(server) == {}  # LAZY computed nothing
    typ, data = c.fetch("1:3", "(PREVIEW)")
    assert typ == "OK"
    first = data[0]
    assert isinstance(first, tuple)
    assert first[1].decode() == TEXT
    long_preview = ("Lorem ipsum dolor sit amet. " * 8)[:200].rstrip()
    assert data[2] == b'2 (PREVIEW "' + long_preview.encode() + b'")'
    assert data[3] == b'3 (PREVIEW "")'
    assert sorted(_previews(server).values()) == sorted(["", long_preview, TEXT])
    typ, data = c.fetch("2", "(PREVIEW (LAZY))")
    assert data == [b'2 (PREVIEW "' + long_preview.encode() + b'")']
    c.logout()


def test_lmtp_delivery_stores_the_preview(server_factory: Any) -> None:
    running: RunningServer = server_factory(lmtp="127.0.0.1:0")
    running.add_user("alice")
    assert running.server.lmtp is not None
    address = running.server.lmtp.addresses[0]
    assert isinstance(address, tuple)
    host, port = address
    lmtp = smtplib.LMTP(host, port, timeout=10)
    lmtp.ehlo()
    lmtp.sendmail("a@example.com", ["alice"], b"Subject: lmtp\r\n\r\nDelivered  words\r\n")
    lmtp.quit()
    assert list(_previews(running).values()) == ["Delivered words"]
    c = client(running)
    c.select_folder("INBOX", readonly=True)
    assert c.fetch([1], ["PREVIEW (LAZY)"])[1][b"PREVIEW"] == b"Delivered words"
    c.logout()
