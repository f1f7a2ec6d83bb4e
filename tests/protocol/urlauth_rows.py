"""Parser rows for CATENATE (RFC 4469 §5) and URLAUTH's commands (RFC 4467 §9, RFC 5524 §5),
good and hostile, in the shape of `tests.protocol.test_parser.ROWS` (which takes them in, so
each is fed whole, in pieces and byte by byte)."""

from __future__ import annotations

from typing import Any

from imapd.protocol import commands as c

URL = b"imap://joe@example.com/INBOX/;uid=20/;section=1.2;urlauth=submit+fred"
FULL = URL + b":internal:91354a473744909de610943775f92038"


def cat(*parts: c.CatText | c.CatUrl, flags: tuple[str, ...] = ()) -> c.Append:
    return c.Append("a", "Drafts", (c.AppendMessage(flags, None, c.Catenation(parts)),))


def urlauth_rows(bad: Any) -> list[tuple[str, bytes, Any]]:
    """``bad()``: the table's expected BAD."""
    u = c.CatUrl
    t = c.CatText
    return [
        # -- CATENATE
        (
            "catenate-rfc4469-example",
            b'a APPEND Drafts (\\Seen \\Draft $MDNSent) CATENATE (URL "/Drafts;UIDVALIDITY='
            b'385759045/;UID=20/;section=HEADER" TEXT {4}\r\n\r\n-- URL "/x/;UID=3")',
            cat(
                u("/Drafts;UIDVALIDITY=385759045/;UID=20/;section=HEADER"),
                t(b"\r\n--"),
                u("/x/;UID=3"),
                flags=("\\Seen", "\\Draft", "$MDNSent"),
            ),
        ),
        (
            "catenate-lowercase",
            b"a append Drafts catenate (text {1+}\r\nx url /a/;UID=1)",
            cat(t(b"x"), u("/a/;UID=1")),
        ),
        (
            "catenate-literal8",
            b"a APPEND Drafts CATENATE (TEXT ~{3}\r\na\x00b)",
            cat(t(b"a\x00b", True)),
        ),
        (
            "catenate-url-literal",
            b"a APPEND Drafts CATENATE (URL {9}\r\n/a/;UID=1)",
            cat(u("/a/;UID=1")),
        ),
        (
            "catenate-multiappend",
            b"a APPEND Drafts CATENATE (URL /a/;UID=1) {1}\r\nx CATENATE (TEXT {1}\r\ny)",
            c.Append(
                "a",
                "Drafts",
                (
                    c.AppendMessage((), None, c.Catenation((u("/a/;UID=1"),))),
                    c.AppendMessage((), None, b"x"),
                    c.AppendMessage((), None, c.Catenation((t(b"y"),))),
                ),
            ),
        ),
        ("catenate-empty", b"a APPEND Drafts CATENATE ()", bad()),
        ("catenate-no-list", b"a APPEND Drafts CATENATE", bad()),
        ("catenate-unclosed", b"a APPEND Drafts CATENATE (URL /a/;UID=1", bad()),
        ("catenate-text-quoted", b'a APPEND Drafts CATENATE (TEXT "abc")', bad()),
        ("catenate-text-nul", b"a APPEND Drafts CATENATE (TEXT {3}\r\na\x00b)", bad()),
        ("catenate-unknown-part", b"a APPEND Drafts CATENATE (FILE /etc/passwd)", bad()),
        ("catenate-nested", b"a APPEND Drafts CATENATE ((URL /a/;UID=1))", bad()),
        ("catenate-url-nil", b"a APPEND Drafts CATENATE (URL)", bad()),
        ("catenate-double-space", b"a APPEND Drafts CATENATE (URL /a  URL /b)", bad()),
        ("catenate-url-8bit", b'a APPEND Drafts CATENATE (URL "/\xc3\xa9/;UID=1")', bad()),
        ("catenate-url-huge", b"a APPEND Drafts CATENATE (URL " + b"a" * 9000 + b")", bad()),
        ("catenate-utf8-wrapped", b"a APPEND Drafts UTF8 (CATENATE (URL /a/;UID=1))", bad()),
        # -- GENURLAUTH
        (
            "genurlauth-rfc4467",
            b'a GENURLAUTH "' + URL + b'" INTERNAL',
            c.GenUrlAuth("a", ((URL.decode(), "INTERNAL"),)),
        ),
        (
            "genurlauth-two",
            b'a GENURLAUTH "' + URL + b'" internal "' + URL + b'" X-Y.1',
            c.GenUrlAuth("a", ((URL.decode(), "INTERNAL"), (URL.decode(), "X-Y.1"))),
        ),
        ("genurlauth-no-mech", b'a GENURLAUTH "' + URL + b'"', bad()),
        ("genurlauth-nothing", b"a GENURLAUTH", bad()),
        ("genurlauth-bad-mech", b'a GENURLAUTH "' + URL + b'" INTER+NAL', bad()),
        ("genurlauth-list", b'a GENURLAUTH ("' + URL + b'" INTERNAL)', bad()),
        # -- RESETKEY
        ("resetkey", b"a RESETKEY", c.ResetKey("a", None, ())),
        ("resetkey-mailbox", b"a RESETKEY inbox", c.ResetKey("a", "INBOX", ())),
        (
            "resetkey-mechs",
            b"a RESETKEY INBOX INTERNAL xsample",
            c.ResetKey("a", "INBOX", ("INTERNAL", "XSAMPLE")),
        ),
        ("resetkey-trailing-space", b"a RESETKEY ", bad()),
        ("resetkey-bad-mech", b'a RESETKEY INBOX "INTERNAL"', bad()),
        # -- URLFETCH (RFC 4467 §9 and RFC 5524 §5)
        ("urlfetch", b'a URLFETCH "' + FULL + b'"', c.UrlFetch("a", ((FULL.decode(), None),))),
        (
            "urlfetch-rfc5524",
            b'a URLFETCH ("'
            + FULL
            + b'" BINARY BODYPARTSTRUCTURE) "'
            + FULL
            + b'" ("'
            + FULL
            + b'")',
            c.UrlFetch(
                "a",
                (
                    (FULL.decode(), ("BINARY", "BODYPARTSTRUCTURE")),
                    (FULL.decode(), None),
                    (FULL.decode(), ()),
                ),
            ),
        ),
        ("urlfetch-nothing", b"a URLFETCH", bad()),
        ("urlfetch-nil", b"a URLFETCH NIL NIL", c.UrlFetch("a", (("NIL", None), ("NIL", None)))),
        ("urlfetch-unclosed", b'a URLFETCH ("' + FULL + b'" BINARY', bad()),
        ("urlfetch-nested", b'a URLFETCH (("' + FULL + b'"))', bad()),
        ("urlfetch-8bit", b'a URLFETCH "imap://\xff"', bad()),
    ]
