"""Serializer rows, and the round trip: what goes out as a string comes back the same."""

from __future__ import annotations

import pytest

from imapd.protocol import commands as c
from imapd.protocol.connection import ContinueRequest
from imapd.protocol.responses import (
    Atom,
    Continuation,
    Literal8,
    MailboxName,
    Raw,
    Response,
    Tagged,
    Untagged,
    UntaggedStatus,
    Value,
)
from imapd.protocol.serializer import (
    BIG_LITERAL,
    serialize,
    serialize_all,
    serialize_pieces,
    serialize_string,
    serialize_value,
)
from imapd.protocol.state import Authenticated
from imapd.protocol.values import Secret
from tests.protocol.feeding import connection, feed

VALUES: list[tuple[str, Value, bytes]] = [
    ("nil", None, b"NIL"),
    ("int", 42, b"42"),
    ("zero", 0, b"0"),
    ("atom", Atom("\\Seen"), b"\\Seen"),
    ("str", "hello", b'"hello"'),
    ("str-empty", "", b'""'),
    ("str-escapes", 'a"b\\c', b'"a\\"b\\\\c"'),
    ("str-cr", "a\rb", b"{3}\r\na\rb"),  # pymap's bug: a CR must not go out quoted
    ("str-lf", "a\nb", b"{3}\r\na\nb"),
    # RFC 3501 §9: a {n} literal is CHAR8, no NUL: NUL goes out as 0x80 (as Dovecot)
    ("str-nul", "a\x00b", b"{3}\r\na\x80b"),
    ("str-tab", "a\tb", b'"a\tb"'),
    ("str-nonascii", "\u00e9", b"{2}\r\n\xc3\xa9"),
    ("str-long", "x" * 1001, b"{1001}\r\n" + b"x" * 1001),
    ("str-1000", "x" * 1000, b'"' + b"x" * 1000 + b'"'),
    ("bytes", b"ab\r\n", b"{4}\r\nab\r\n"),
    ("bytes-empty", b"", b"{0}\r\n"),
    ("bytes-nul", b"\x00a\x00\r\n\x00", b"{6}\r\n\x80a\x80\r\n\x80"),
    ("literal8", Literal8(b"\x00\x01"), b"~{2}\r\n\x00\x01"),
    ("raw", Raw(b"(BODY stuff)"), b"(BODY stuff)"),
    ("mailbox", MailboxName("INBOX"), b'"INBOX"'),
    ("mailbox-mutf7", MailboxName("Entw\u00fcrfe & Co"), b'"Entw&APw-rfe &- Co"'),
    ("list", (Atom("FLAGS"), (Atom("\\Seen"), Atom("$X")), 5, None), b"(FLAGS (\\Seen $X) 5 NIL)"),
    ("list-empty", (), b"()"),
    ("pylist", [1, [2, 3]], b"(1 (2 3))"),
]


@pytest.mark.parametrize(("value", "expected"), [pytest.param(v, e, id=n) for n, v, e in VALUES])
def test_value(value: Value, expected: bytes) -> None:
    assert serialize_value(value) == expected


def test_utf8_mode_quotes_unicode_and_skips_mutf7() -> None:
    assert serialize_value("\u00e9", utf8=True) == '"\u00e9"'.encode()
    assert serialize_value(MailboxName("Entw\u00fcrfe"), utf8=True) == '"Entw\u00fcrfe"'.encode()
    assert serialize_value("a\rb", utf8=True) == b"{3}\r\na\rb"


def test_lone_surrogate_goes_out_as_literal() -> None:
    assert serialize_string("a\udcff") == b"{2}\r\na\xff"


def test_bool_is_refused() -> None:
    with pytest.raises(TypeError):
        serialize_value(True)


RESPONSES: list[tuple[str, Response, bytes]] = [
    ("untagged", Untagged((3, Atom("EXISTS"))), b"* 3 EXISTS\r\n"),
    (
        "fetch",
        Untagged((1, Atom("FETCH"), (Atom("UID"), 7, Atom("BODY[]"), b"hi"))),
        b"* 1 FETCH (UID 7 BODY[] {2}\r\nhi)\r\n",
    ),
    (
        "status-code",
        UntaggedStatus("OK", "UIDs valid", "UIDVALIDITY 3"),
        b"* OK [UIDVALIDITY 3] UIDs valid\r\n",
    ),
    ("bye", UntaggedStatus("BYE", "Logging out"), b"* BYE Logging out\r\n"),
    ("tagged", Tagged("a1", "OK", "done"), b"a1 OK done\r\n"),
    ("tagged-code", Tagged("a1", "NO", "Too big", "TOOBIG"), b"a1 NO [TOOBIG] Too big\r\n"),
    ("tagged-crlf-in-text", Tagged("a", "BAD", "x\r\ny"), b"a BAD x  y\r\n"),
    ("tagged-empty-text", Tagged("a", "OK", ""), b"a OK\r\n"),
    ("continuation", Continuation("Ready"), b"+ Ready\r\n"),
    ("continuation-empty", Continuation(), b"+ \r\n"),
]


@pytest.mark.parametrize(
    ("response", "expected"), [pytest.param(r, e, id=n) for n, r, e in RESPONSES]
)
def test_response(response: Response, expected: bytes) -> None:
    assert serialize(response) == expected


STRINGS = [
    "",
    "x",
    "a b",
    'q"uo\\te',
    "a\rb",
    "cr\r\nlf",
    "tab\t",
    "\u00e9t\u00e9",
    "\U0001f600",
    "x" * 2000,
    "\x7f\x01",
]


@pytest.mark.parametrize("utf8", [False, True])
@pytest.mark.parametrize("s", STRINGS)
def test_round_trip_strings_through_the_parser(s: str, utf8: bool) -> None:
    conn = connection()
    conn.utf8 = utf8
    wire = (
        b"a LOGIN "
        + serialize_string(s, utf8=utf8)
        + b" "
        + serialize_string(s, utf8=utf8)
        + b"\r\n"
    )
    events = [e for e in feed(conn, [wire]) if not isinstance(e, ContinueRequest)]
    assert events == [c.Login("a", s, Secret(s))]


@pytest.mark.parametrize("utf8", [False, True])
@pytest.mark.parametrize(
    "name", ["INBOX", "a&b", "Entw\u00fcrfe", "\u53f0\u5317/\u65e5\u672c", "x\ry", "sp ace", "~%*"]
)
def test_round_trip_mailbox_names(name: str, utf8: bool) -> None:
    conn = connection(Authenticated("u"))
    conn.utf8 = utf8
    wire = b"a SELECT " + serialize_value(MailboxName(name), utf8=utf8) + b"\r\n"
    events = [e for e in feed(conn, [wire]) if not isinstance(e, ContinueRequest)]
    assert events == [c.Select("a", name)]


def test_pieces_leave_big_literals_uncopied() -> None:
    big = b"x" * BIG_LITERAL
    big8 = b"\x00" * (BIG_LITERAL + 1)
    responses: list[Response] = [
        Untagged(("OK",)),
        Untagged((3, Atom("FETCH"), (Atom("BODY[]"), big, Atom("UID"), 9, Atom("X"), b"y"))),
        Untagged((Atom("METADATA"), (Atom("/v"), Literal8(big8)))),
        Tagged("a", "OK", "done"),
    ]
    pieces = serialize_pieces(responses)
    assert b"".join(pieces) == serialize_all(responses)
    assert any(p is big for p in pieces) and any(p is big8 for p in pieces)
    small = [Untagged((1, Atom("FETCH"), (Atom("BODY[]"), b"z" * 10)))]
    assert serialize_pieces(small) == [serialize_all(small)]


def test_pieces_send_no_nul_in_a_big_literal() -> None:
    """RFC 3501 §9: a {n} literal is *CHAR8, which excludes NUL; the big-literal path (sent
    uncopied) follows `literal`: NUL goes out as 0x80, length unchanged. A Literal8 keeps it."""
    big = b"a\x00b" * BIG_LITERAL
    responses: list[Response] = [Untagged((1, Atom("FETCH"), (Atom("BODY[]"), big)))]
    wire = b"".join(serialize_pieces(responses))
    assert wire == serialize_all(responses)
    assert b"\x00" not in wire and wire.count(b"\x80") == BIG_LITERAL
    assert b"{%d}\r\n" % len(big) in wire
