"""CATENATE's TEXT part may be a literal8 (as APPEND's message under BINARY, RFC 3516 §4.4)
and is invited like one; a URL is an astring (RFC 4469 §5: url = "URL" SP astring), so
``URL ~{n}`` is BAD before any "+"."""

from __future__ import annotations

import pytest

from imapd.protocol import commands as c
from imapd.protocol.connection import ContinueRequest, Rejected
from imapd.protocol.responses import Tagged
from imapd.protocol.state import Selected
from tests.protocol.feeding import connection, feed

SELECTED = Selected("u", "INBOX", False)


@pytest.mark.parametrize(
    "line",
    [
        b"a APPEND Drafts CATENATE (TEXT ~{5}",
        b"a APPEND Drafts (\\Seen) CATENATE (URL /x/;UID=1 TEXT ~{5}",
        b"a UID REPLACE 7 Drafts CATENATE (TEXT ~{5}",
        b"a APPEND Drafts CATENATE (TEXT {1+}\r\nx TEXT ~{5}",
        b"a APPEND Drafts CATENATE (URL {5}",  # a URL may be a plain literal
    ],
)
def test_literal_in_catenate_is_invited(line: bytes) -> None:
    conn = connection(SELECTED)
    assert feed(conn, [line + b"\r\n"]) == [ContinueRequest("Ready for literal data")]


@pytest.mark.parametrize(
    "line",
    [
        b"a APPEND Drafts CATENATE (URL ~{5}",
        b"a APPEND Drafts CATENATE (TEXT {1+}\r\nx URL ~{5}",
        b"a append Drafts catenate (text {1+}\r\nx url ~{5}",
    ],
)
def test_literal8_as_catenate_url_is_bad_at_once(line: bytes) -> None:
    conn = connection(SELECTED)
    events = feed(conn, [line + b"\r\nb NOOP\r\n"])
    assert events == [
        Rejected(
            Tagged("a", "BAD", "literal8 (~{n}) is only allowed as APPEND or SETMETADATA data")
        ),
        c.Noop("b"),
    ]
