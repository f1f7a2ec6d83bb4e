"""REPLACE's message may be a literal8 (RFC 8508 §5 append-message, RFC 3516 §4.4): the
framer invites it as it does APPEND's, and still refuses one where the grammar cannot
take it (the mailbox name) before any "+"."""

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
        b"a REPLACE 1 x ~{5}",
        b"a UID REPLACE 7 x (\\Seen) ~{5}",
        b'a REPLACE * x "01-Jan-2026 00:00:00 +0000" ~{5}',
        b"a REPLACE 1 {1+}\r\nx ~{5}",
    ],
)
def test_literal8_as_replace_data_is_invited(line: bytes) -> None:
    conn = connection(SELECTED)
    assert feed(conn, [line + b"\r\n"]) == [ContinueRequest("Ready for literal data")]


@pytest.mark.parametrize("line", [b"a REPLACE 1 ~{5}", b"a UID REPLACE ~{5}"])
def test_literal8_as_replace_mailbox_is_bad_at_once(line: bytes) -> None:
    conn = connection(SELECTED)
    events = feed(conn, [line + b"\r\nb NOOP\r\n"])
    assert events == [
        Rejected(
            Tagged("a", "BAD", "literal8 (~{n}) is only allowed as APPEND or SETMETADATA data")
        ),
        c.Noop("b"),
    ]
