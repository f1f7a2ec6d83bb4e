"""A message holding NUL octets, end to end (issue 16 item 9).

RFC 3501 §9: ``literal = "{" number "}" CRLF *CHAR8`` and CHAR8 = %x01-ff: a plain literal
never carries NUL; only RFC 3516's literal8 may, in FETCH BINARY answers. Such messages
still arrive (APPEND from lenient clients, LMTP, import) and are stored as they are; on
output every NUL octet of a literal goes out as 0x80, as Dovecot does, so sizes and partial
offsets stay true.
"""

from __future__ import annotations

from tests.helpers.server import RunningServer

MESSAGE = b"Subject: nul\r\n\r\nA\x00B\x00\r\n"


def test_fetch_never_sends_nul_in_a_literal(server: RunningServer) -> None:
    c = server.raw()
    c.send(b"a1 APPEND INBOX {%d+}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n")
    assert c.until_tagged("a1")[-1].startswith("a1 OK")
    c.ok("a2", "SELECT INBOX")
    c.line("a3 FETCH 1 (RFC822.SIZE BODY.PEEK[] BODY.PEEK[TEXT]<1.3>)")
    fetch = c.response_bytes()
    tagged = c.response_bytes()
    assert tagged.startswith(b"a3 OK"), tagged
    assert b"\x00" not in fetch, fetch
    size = len(MESSAGE)
    assert b"RFC822.SIZE %d " % size in fetch
    assert b"BODY[] {%d}\r\n" % size + MESSAGE.replace(b"\x00", b"\x80") in fetch
    assert b"BODY[TEXT]<1> {3}\r\n\x80B\x80" in fetch
