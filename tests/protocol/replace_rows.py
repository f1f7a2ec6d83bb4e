"""Parser rows for REPLACE and UID REPLACE (RFC 8508 §5), good and hostile, in the shape of
`tests.protocol.test_parser.ROWS` (which takes them in, so each is fed whole, in pieces and
byte by byte)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from imapd.protocol import commands as c


def rep(
    number: int | None,
    mailbox: str,
    content: bytes,
    flags: tuple[str, ...] = (),
    when: dt.datetime | None = None,
    uid: bool = False,
) -> c.Replace:
    return c.Replace("a", uid, number, mailbox, c.AppendMessage(flags, when, content))


def replace_rows(bad: Any) -> list[tuple[str, bytes, Any]]:
    """``bad()``: the table's expected BAD."""
    when = dt.datetime(2015, 1, 1, 0, 5, tzinfo=dt.timezone(-dt.timedelta(hours=5)))
    return [
        ("replace", b"a REPLACE 4 Drafts {3}\r\nabc", rep(4, "Drafts", b"abc")),
        (
            "replace-rfc8508-example",
            b"a REPLACE 4 Drafts (\\Seen \\Draft) {2}\r\nhi",
            rep(4, "Drafts", b"hi", ("\\Seen", "\\Draft")),
        ),
        (
            "uid-replace",
            b"a uid replace 2000 inbox {2+}\r\nhi",
            rep(2000, "INBOX", b"hi", uid=True),
        ),
        ("replace-star", b"a REPLACE * x {1}\r\na", rep(None, "x", b"a")),
        (
            "replace-flags-date",
            b'a REPLACE 1 x (\\Draft) "01-Jan-2015 00:05:00 -0500" {1+}\r\na',
            rep(1, "x", b"a", ("\\Draft",), when),
        ),
        ("replace-literal8", b"a REPLACE 1 x ~{3}\r\na\x00b", rep(1, "x", b"a\x00b")),
        ("replace-mailbox-literal", b"a REPLACE 1 {1+}\r\nx {1+}\r\na", rep(1, "x", b"a")),
        ("replace-zero", b"a REPLACE 0 x {1}\r\na", bad()),
        ("replace-leading-zero", b"a REPLACE 01 x {1}\r\na", bad()),
        ("replace-set", b"a REPLACE 1:2 x {1}\r\na", bad()),
        ("replace-list", b"a REPLACE 1,2 x {1}\r\na", bad()),
        ("replace-saved", b"a REPLACE $ x {1}\r\na", bad()),
        ("replace-huge-number", b"a REPLACE 4294967296 x {1}\r\na", bad()),
        ("replace-no-mailbox", b"a REPLACE 1", bad()),
        ("replace-no-message", b"a REPLACE 1 x", bad()),
        ("replace-no-message-sp", b"a REPLACE 1 x ", bad()),
        ("replace-quoted-content", b'a REPLACE 1 x "abc"', bad()),
        ("replace-two-messages", b"a REPLACE 1 x {1}\r\na {1}\r\nb", bad()),
        ("replace-recent-flag", b"a REPLACE 1 x (\\Recent) {1}\r\na", bad()),
        ("replace-bad-date", b'a REPLACE 1 x "31-Feb-2021 13:01:02 +0000" {1}\r\na', bad()),
        ("replace-utf8-not-enabled", b"a REPLACE 1 x UTF8 (~{1}\r\na)", bad()),
        ("replace-double-space", b"a REPLACE  1 x {1}\r\na", bad()),
        ("replace-trailing", b"a REPLACE 1 x {1}\r\na extra", bad()),
        ("uid-replace-star-set", b"a UID REPLACE 1:* x {1}\r\na", bad()),
    ]
