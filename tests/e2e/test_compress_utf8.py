"""COMPRESS=DEFLATE (RFC 4978) over a raw socket with zlib in the test (imapclient and
imaplib have no COMPRESS), and UTF8=ACCEPT (RFC 6855): UTF-8 mailbox names both ways,
APPEND UTF8 (literal8), no SEARCH CHARSET."""

from __future__ import annotations

import zlib

import imapclient
import pytest

from tests.helpers.deflate import DeflateClient
from tests.helpers.server import PASSWORD, RunningServer
from tests.rawclient import RawClient


def login(server: RunningServer) -> RawClient:
    raw = RawClient.connect(server.host, server.port)
    raw.login("alice", PASSWORD)
    return raw


def test_compress_both_directions(server: RunningServer) -> None:
    raw = login(server)
    assert raw.command("c", "COMPRESS DEFLATE") == ["c OK DEFLATE active"]
    z = DeflateClient(raw)
    assert z.command("d", b"NOOP") == [b"d OK NOOP completed"]
    # RFC 4978: a second COMPRESS is refused, and the layer stays on
    assert z.command("e", b"COMPRESS DEFLATE") == [
        b"e NO [COMPRESSIONACTIVE] DEFLATE active already"
    ]
    body = b"Subject: squeeze\r\n\r\n" + b"all work and no play " * 4000 + b"\r\n"
    z.send(b"f APPEND INBOX {%d}\r\n" % len(body))
    assert z.response().startswith(b"+")
    z.send(body + b"\r\n")
    assert z.response().startswith(b"f OK [APPENDUID")
    z.command("g", b"SELECT INBOX")
    before = z.wire_in
    fetched = z.command("h", b"FETCH 1 BODY.PEEK[]")
    assert fetched[0] == b"* 1 FETCH (BODY[] {%d}\r\n%s)" % (len(body), body)
    assert z.wire_in - before < len(body) // 10  # it really was compressed on the wire
    assert z.command("i", b"LOGOUT")[-1] == b"i OK LOGOUT completed"
    raw.close()


def test_compressed_bytes_sent_before_the_ok(server: RunningServer) -> None:
    """A client that does not wait for the OK: what follows COMPRESS is inflated too."""
    raw = login(server)
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    early = deflate.compress(b"n NOOP\r\n") + deflate.flush(zlib.Z_SYNC_FLUSH)
    raw.send(b"c COMPRESS DEFLATE\r\n" + early)
    assert raw.response() == "c OK DEFLATE active"
    inflate = zlib.decompressobj(-15)
    data = inflate.decompress(raw.buf)
    raw.sock.settimeout(5)
    while b"n OK" not in data:
        data += inflate.decompress(raw.sock.recv(65536))
    assert data == b"n OK NOOP completed\r\n"
    raw.close()


def test_compress_under_idle_and_refusals(server: RunningServer) -> None:
    before = RawClient.connect(server.host, server.port)
    assert before.response().startswith("* OK")
    assert before.command("a", "COMPRESS DEFLATE") == ["a BAD Command not allowed in this state"]
    before.close()
    raw = login(server)
    assert raw.command("b", "COMPRESS LZW")[0].startswith("b BAD")
    assert raw.command("c", "COMPRESS DEFLATE") == ["c OK DEFLATE active"]
    z = DeflateClient(raw)
    z.command("d", b"SELECT INBOX")
    z.send(b"e IDLE\r\n")
    assert z.response() == b"+ idling"
    other = imapclient.IMAPClient(server.host, port=server.port, ssl=False, timeout=10)
    other.login("alice", PASSWORD)
    other.append("INBOX", b"Subject: pushed\r\n\r\nx\r\n")
    assert z.response() == b"* 1 EXISTS"
    assert z.response() == b"* 1 RECENT"
    z.send(b"DONE\r\n")
    assert z.response() == b"e OK IDLE terminated"
    other.logout()
    raw.close()


def test_corrupt_deflate_data_closes_the_connection(server: RunningServer) -> None:
    raw = login(server)
    assert raw.command("c", "COMPRESS DEFLATE") == ["c OK DEFLATE active"]
    raw.send(b"\xff\xff\xff\xff not deflate at all")
    assert raw.closed()
    raw.close()
    # the server is fine
    again = login(server)
    assert again.command("n", "NOOP") == ["n OK NOOP completed"]
    again.close()


# --- UTF8=ACCEPT -------------------------------------------------------------------------------


def test_utf8_accept_names_both_ways(server: RunningServer) -> None:
    raw = login(server)
    plain = login(server)
    assert "UTF8=ACCEPT" in raw.command("a", "CAPABILITY")[0].split()
    assert raw.command("b", "ENABLE UTF8=ACCEPT") == [
        "* ENABLED UTF8=ACCEPT",
        "b OK ENABLE completed",
    ]
    assert raw.command("b2", "ENABLE UTF8=ACCEPT")[0] == "* ENABLED"  # only newly enabled
    raw.send('c CREATE "Entwürfe/Ünter"\r\n'.encode())
    assert raw.until_tagged("c") == ["c OK CREATE completed"]
    assert raw.command("d", 'LIST "" "Entw*"') == [
        '* LIST (\\HasChildren) "/" "Entwürfe"',
        '* LIST (\\HasNoChildren) "/" "Entwürfe/Ünter"',
        "d OK LIST completed",
    ]
    # a session without UTF8=ACCEPT sees modified UTF-7, and may not send UTF-8 quoted
    assert plain.command("e", 'LIST "" "Entw*"') == [
        '* LIST (\\HasChildren) "/" "Entw&APw-rfe"',
        '* LIST (\\HasNoChildren) "/" "Entw&APw-rfe/&ANw-nter"',
        "e OK LIST completed",
    ]
    plain.send('f SELECT "Entwürfe"\r\n'.encode())
    assert plain.until_tagged("f")[0].startswith("f BAD")
    # in UTF-8 mode "&" is just a character: no modified UTF-7 decoding
    raw.send(b'g STATUS "Entw&APw-rfe" (MESSAGES)\r\n')
    assert raw.until_tagged("g")[0].startswith("g NO [NONEXISTENT]")
    raw.send('h STATUS "Entwürfe/Ünter" (MESSAGES)\r\n'.encode())
    assert raw.until_tagged("h") == [
        '* STATUS "Entwürfe/Ünter" (MESSAGES 0)',
        "h OK STATUS completed",
    ]
    raw.close()
    plain.close()


def test_utf8_append_and_search(server: RunningServer) -> None:
    raw = login(server)
    message = "Subject: Grüße\r\nFrom: Jörg <jörg@exämple.org>\r\n\r\nBody\r\n".encode()
    raw.send(b"a APPEND INBOX UTF8 (~{%d+}\r\n%s)\r\n" % (len(message), message))
    assert raw.until_tagged("a")[-1].startswith("a BAD")  # not before ENABLE (RFC 6855 §4)
    raw.command("b", "ENABLE UTF8=ACCEPT")
    raw.send(b"c APPEND INBOX UTF8 (~{%d+}\r\n%s)\r\n" % (len(message), message))
    assert raw.until_tagged("c")[-1].startswith("c OK [APPENDUID")
    raw.command("d", "SELECT INBOX")
    raw.send(b"e FETCH 1 BODY.PEEK[]\r\n")
    assert raw.response_bytes() == b"* 1 FETCH (BODY[] {%d}\r\n%s)" % (len(message), message)
    assert raw.response() == "e OK FETCH completed"
    # RFC 6855 §3: no CHARSET after ENABLE UTF8=ACCEPT; UTF-8 quoted search strings instead
    assert raw.command("f", "SEARCH CHARSET UTF-8 ALL")[0].startswith("f BAD")
    raw.send('g SEARCH SUBJECT "Grüße"\r\n'.encode())
    assert raw.until_tagged("g") == ["* SEARCH 1", "g OK SEARCH completed"]
    raw.close()


def test_imapclient_enable(server: RunningServer) -> None:
    c = imapclient.IMAPClient(server.host, port=server.port, ssl=False, timeout=10)
    c.login("alice", PASSWORD)
    assert c.enable("UTF8=ACCEPT") == [b"UTF8=ACCEPT"]
    c.logout()


@pytest.mark.parametrize("enabled", [False, True])
def test_metadata_values_follow_utf8_mode(server: RunningServer, enabled: bool) -> None:
    raw = login(server)
    if enabled:
        raw.command("e", "ENABLE UTF8=ACCEPT")
    value = "Grüße".encode()
    raw.send(b"a SETMETADATA INBOX (/private/comment {%d+}\r\n%s)\r\n" % (len(value), value))
    assert raw.until_tagged("a") == ["a OK SETMETADATA completed"]
    raw.send(b"b GETMETADATA INBOX /private/comment\r\n")
    got = raw.response_bytes()
    if enabled:
        assert got == b'* METADATA "INBOX" (/private/comment "' + value + b'")'
    else:
        assert got == b'* METADATA "INBOX" (/private/comment {7}\r\n' + value + b")"
    raw.close()
