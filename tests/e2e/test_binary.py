"""BINARY (RFC 3516) end to end: literal8 APPEND of a message holding NUL, FETCH BINARY of
base64, quoted-printable and binary parts through a raw socket, imaplib and imapclient.

The grammar, the refusals (UNKNOWN-CTE, BAD shapes) and non-leaf sections are specified by
tests/transcripts/binary_fetch.imap and binary_grammar.imap; here are the octets that a text
transcript cannot hold (NUL, bare LF, megabytes).
"""

from __future__ import annotations

import base64
import imaplib
import os
import quopri
import re

from tests.helpers.imap import client
from tests.helpers.server import PASSWORD, RunningServer

PAYLOAD = bytes(range(256)) * 4  # every octet, NUL included


def mime(*parts: tuple[str, str, bytes]) -> bytes:
    """A multipart/mixed message of (content-type, transfer-encoding, encoded body) parts."""
    out = [b"From: a@example.com\r\nSubject: binary\r\nMIME-Version: 1.0\r\n"]
    out.append(b'Content-Type: multipart/mixed; boundary="xx"\r\n\r\n')
    for ctype, cte, body in parts:
        out.append(b"--xx\r\nContent-Type: %s\r\n" % ctype.encode())
        out.append(b"Content-Transfer-Encoding: %s\r\n\r\n" % cte.encode() + body + b"\r\n")
    out.append(b"--xx--\r\n")
    return b"".join(out)


def _append_literal8(server: RunningServer, message: bytes) -> None:
    c = server.raw()
    c.line(f"a1 APPEND INBOX ~{{{len(message)}}}")
    assert c.response().startswith("+")
    c.send(message + b"\r\n")
    assert c.until_tagged("a1")[-1].startswith("a1 OK")
    c.close()


def _fetch(server: RunningServer, what: str) -> tuple[bytes, bytes]:
    c = server.raw()
    c.ok("s", "EXAMINE INBOX")
    c.line("f FETCH 1 " + what)
    data = c.response_bytes()
    tagged = c.response_bytes()
    c.close()
    return data, tagged


def test_rfc3516_append_literal8_with_nul_then_binary_fetch(server: RunningServer) -> None:
    """RFC 3516 §4.4: APPEND takes a literal8 holding NUL, and nothing is lost (the message
    is stored as sent); §4.3: BINARY of its binary part comes back in a literal8 with the
    NUL octets, BINARY.SIZE matches; BODY[] keeps issue 16's decision for a plain literal
    (NUL sent as 0x80, RFC 3501 §9 CHAR8)."""
    message = mime(("application/octet-stream", "binary", PAYLOAD))
    _append_literal8(server, message)
    data, tagged = _fetch(server, "(RFC822.SIZE BINARY.PEEK[1] BINARY.SIZE[1])")
    assert tagged.startswith(b"f OK"), tagged
    assert b"RFC822.SIZE %d " % len(message) in data
    assert b"BINARY[1] ~{%d}\r\n" % len(PAYLOAD) + PAYLOAD + b" " in data
    assert b"BINARY.SIZE[1] %d)" % len(PAYLOAD) in data
    body, tagged = _fetch(server, "BODY.PEEK[]")
    assert tagged.startswith(b"f OK"), tagged
    assert b"\x00" not in body
    assert b"BODY[] {%d}\r\n" % len(message) + message.replace(b"\x00", b"\x80") in body


def test_base64_and_qp_decoded_literal8_only_with_nul(server: RunningServer) -> None:
    """RFC 3516 §4.3: decoded data without NUL SHOULD go in a <string> (a literal here),
    with NUL in a literal8; a partial counts in DECODED octets (§4.2)."""
    text = "Grüße\r\n".encode() * 3
    message = mime(
        ("application/octet-stream", "base64", base64.encodebytes(PAYLOAD)),
        ("text/plain; charset=utf-8", "quoted-printable", quopri.encodestring(text)),
        ("image/png", "BASE64", base64.encodebytes(b"\x89PNG no nul here")),
    )
    _append_literal8(server, message)
    data, tagged = _fetch(
        server, "(BINARY.PEEK[1] BINARY.PEEK[2] BINARY.PEEK[3] BINARY.PEEK[1]<1.3>)"
    )
    assert tagged.startswith(b"f OK"), tagged
    assert b"BINARY[1] ~{%d}\r\n" % len(PAYLOAD) + PAYLOAD in data
    assert b"BINARY[2] {%d}\r\n" % len(text) + text in data
    assert b"BINARY[3] {16}\r\n\x89PNG no nul here" in data
    assert b"BINARY[1]<1> {3}\r\n\x01\x02\x03" in data  # no NUL in the slice: a literal


def test_text_parts_go_out_with_crlf(server: RunningServer) -> None:
    """RFC 9051 §7.5.2 (RFC 3516 §6): textual sections go out with CRLF line ends, whatever
    the stored ones; BINARY.SIZE is the size BINARY sends (a MUST)."""
    encoded = base64.encodebytes(b"one\ntwo\rthree\r\nfour\n")
    message = mime(("text/plain", "base64", encoded), ("application/x-raw", "base64", encoded))
    _append_literal8(server, message)
    data, tagged = _fetch(server, "(BINARY.PEEK[1] BINARY.SIZE[1] BINARY.PEEK[2])")
    assert tagged.startswith(b"f OK"), tagged
    crlf = b"one\r\ntwo\r\nthree\r\nfour\r\n"
    assert b"BINARY[1] {%d}\r\n" % len(crlf) + crlf in data
    assert b"BINARY.SIZE[1] %d " % len(crlf) in data
    raw = b"one\ntwo\rthree\r\nfour\n"
    assert b"BINARY[2] {%d}\r\n" % len(raw) + raw in data  # not text: as decoded


def test_imaplib_round_trip(server: RunningServer) -> None:
    """imaplib (stdlib) sends BINARY.PEEK and reads the literal8 answer back intact."""
    blob = os.urandom(5000) + b"\x00"
    server_message = mime(("application/octet-stream", "base64", base64.encodebytes(blob)))
    c = imaplib.IMAP4(server.host, server.port)
    c.login("alice", PASSWORD)
    _, caps = c.capability()
    assert b"BINARY" in caps[0].split()
    assert c.append("INBOX", None, None, server_message)[0] == "OK"
    c.select("INBOX")
    typ, data = c.fetch("1", "(BINARY.PEEK[1] BINARY.SIZE[1])")
    assert typ == "OK"
    first, rest = data[0], data[1]
    assert isinstance(first, tuple) and isinstance(rest, bytes), data
    head, value = first
    assert re.search(rb"BINARY\[1\] ~\{5001\}$", head), head
    assert value == blob
    assert b"BINARY.SIZE[1] 5001" in rest
    c.logout()


def test_imapclient_round_trip_sets_seen(server: RunningServer) -> None:
    """imapclient: BINARY[1] (not PEEK) returns the decoded part and sets \\Seen (RFC 3516
    §4.2, as BODY[] does, RFC 3501 §6.4.5); BINARY.PEEK does not."""
    body = "Übergröße, quoted-printable\r\n".encode()
    message = mime(("text/plain; charset=utf-8", "quoted-printable", quopri.encodestring(body)))
    c = client(server)
    assert b"BINARY" in c.capabilities()
    c.append("INBOX", message)
    c.select_folder("INBOX")
    peeked = c.fetch([1], ["BINARY.PEEK[1]", "FLAGS"])[1]
    assert peeked[b"BINARY[1]"] == body
    assert b"\\Seen" not in peeked[b"FLAGS"]
    got = c.fetch([1], ["BINARY[1]<0.5>"])[1]
    assert got[b"BINARY[1]<0>"] == body[:5]
    assert b"\\Seen" in c.get_flags([1])[1]
    c.logout()


def test_large_part_through_the_worker_thread(server: RunningServer) -> None:
    """A 5.6 MB base64 part (past RENDER_IN_THREAD / BINARY_WEIGHT: decoded and serialised in
    a worker thread) comes back exact, twice in one command, with its size."""
    blob = os.urandom(4 << 20) + b"\x00"
    _append_literal8(server, mime(("application/zip", "base64", base64.encodebytes(blob))))
    data, tagged = _fetch(server, "(BINARY.SIZE[1] BINARY.PEEK[1] BINARY.PEEK[1]<4194300.100>)")
    assert tagged.startswith(b"f OK"), tagged
    assert b"BINARY.SIZE[1] %d " % len(blob) in data
    assert b"BINARY[1] ~{%d}\r\n" % len(blob) + blob + b" " in data
    assert b"BINARY[1]<4194300> ~{5}\r\n" + blob[-5:] + b")" in data


def test_multiappend_and_replace_take_literal8(server: RunningServer) -> None:
    """RFC 3516 §4.4 (append =/ ... SP literal8) in MULTIAPPEND (RFC 3502) and REPLACE
    (RFC 8508 §5, the same append-message): messages holding NUL stored unchanged, and
    their previews computed as they are stored (RFC 8970)."""
    one = mime(("application/octet-stream", "binary", b"\x00one\x00"))
    two = b"Subject: two\r\n\r\nsecond\x00text\r\n"
    c = server.raw()
    c.line(f"a1 APPEND INBOX ~{{{len(one)}}}")
    assert c.response().startswith("+")
    c.send(one + b" (\\Seen) ~{%d}\r\n" % len(two))
    assert c.response().startswith("+")
    c.send(two + b"\r\n")
    assert c.until_tagged("a1")[-1].startswith("a1 OK")
    c.ok("s", "SELECT INBOX")
    three = b"Subject: three\r\n\r\n\x00third\r\n"
    c.line(f"r UID REPLACE 2 INBOX ~{{{len(three)}}}")
    assert c.response().startswith("+")
    c.send(three + b"\r\n")
    assert c.until_tagged("r")[-1].startswith("r OK")
    c.line("f UID FETCH 1:* (RFC822.SIZE BINARY.PEEK[1] PREVIEW)")
    first, second = c.response_bytes(), c.response_bytes()
    assert c.response_bytes().startswith(b"f OK")
    c.close()
    assert b"BINARY[1] ~{5}\r\n\x00one\x00" in first and b"RFC822.SIZE %d " % len(one) in first
    assert b"UID 3 " in second and b"RFC822.SIZE %d " % len(three) in second
    assert b"BINARY[1] ~{8}\r\n\x00third\r\n" in second  # text: CRLF, NUL kept
    assert b'PREVIEW "third"' in second  # control characters are no preview text
