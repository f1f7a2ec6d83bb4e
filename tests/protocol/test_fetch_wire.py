"""FETCH's pre-rendered answers (issue 17) are the bytes rendering at FETCH time sends.

What APPEND stores (`imapd.fetch.prerender`, cut by `imapd.fetch_wire.piece`) must equal
what the renderer and serializer make from the structure as stored and read back (JSON),
with and without UTF8=ACCEPT; header fields cut from the header block alone must equal
`section_bytes` over the whole message; `fetch_line` must equal `fetch_response`
serialised. Over hand-picked messages (UTF-8, NUL, long and 8-bit strings, quotes) and
generated ones (the MIME tests' strategies).
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.fetch import (
    fetch_line,
    fetch_response,
    prerender,
    render_bodystructure,
    render_envelope,
)
from imapd.fetch_wire import ITEMS, piece
from imapd.protocol.serializer import serialize, serialize_value
from imapd.protocol.values import FetchAtt, Section
from imapd.selected import SelectedView
from store.api import MessageRecord
from store.mime import BodyPart, parse_message, section_bytes, structure_from_json
from store.mime import structure_to_json as to_json
from store.mime.sections import top_header_fields
from tests.e2e.messages import NESTED, SIMPLE
from tests.store.test_mime import FRAGMENTS, Renderer, body_parts, trees

MESSAGES = [
    SIMPLE,
    NESTED,
    "Subject: Grüße aus Köln\r\nFrom: Jörg <jörg@exämple.de>\r\n\r\nhallo\r\n".encode(),
    b'Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nTo: "a \\" b" <a@b>\r\n\r\nx\r\n',
    b"Subject: bad \xff\xfe octets\r\nFrom: \xc3(a@b)\r\n\r\nx\r\n",
    b"Subject: nul \x00 inside\r\n\r\nA\x00B\r\n",
    b"Subject: " + b"long " * 300 + b"\r\nMessage-ID: <x@y>\r\n\r\nbody\r\n",
    b"Subject: folded\r\n line two\r\nIn-Reply-To: <p@q>\r\n\r\n",
    b"no header at all",
    b"",
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n"
    b"\r\nSubject: inner \xc3\xa9\r\nFrom: i@n\r\n\r\ninner body\r\n--b--\r\n",
    b'Content-Type: text/plain; charset="utf-8"; name="r\xc3\xa9sum\xc3\xa9.txt"\r\n'
    b"Content-Disposition: attachment; filename*=utf-8''%C3%A9\r\nContent-Language: de, en\r\n"
    b"Content-Location: http://x/y\r\nContent-MD5: abc\r\n\r\nbody\r\n",
]

FIELDS = [("SUBJECT",), ("FROM", "TO", "SUBJECT", "DATE", "MESSAGE-ID"), ("X-NONE",), ()]


def expected(stored: BodyPart, name: str, utf8: bool) -> bytes:
    """What FETCH sent before issue 17: rendered from the structure as read back."""
    if name == "ENVELOPE":
        value = render_envelope(stored.envelope)
    else:
        value = render_bodystructure(stored, extensible=name == "BODYSTRUCTURE")
    return serialize_value(value, utf8=utf8)


def check_part(structure: BodyPart) -> None:
    stored = structure_from_json(to_json(structure))
    wire = prerender(structure)
    for name, utf8 in itertools.product(ITEMS, (False, True)):
        assert piece(wire, name, utf8) == expected(stored, name, utf8), (name, utf8)


def check_message(raw: bytes) -> None:
    structure = parse_message(raw)
    check_part(structure)
    header = raw[: structure.body_start]
    assert section_bytes(raw, structure, (), "HEADER") == header
    for fields, text in itertools.product(FIELDS, ("HEADER.FIELDS", "HEADER.FIELDS.NOT")):
        whole = section_bytes(raw, structure, (), text, fields)
        assert top_header_fields(header, fields, text.endswith(".NOT")) == whole, (fields, text)


@pytest.mark.parametrize("raw", MESSAGES, ids=range(len(MESSAGES)))
def test_prerendered_bytes_equal_rendering_at_fetch(raw: bytes) -> None:
    check_message(raw)


def test_utf8_accept_gets_its_own_bytes_where_they_differ() -> None:
    """RFC 6855 §3: a UTF8=ACCEPT session gets non-ASCII strings quoted, the others get
    literals; both are kept, and a session gets its own."""
    wire = prerender(parse_message(MESSAGES[2]))
    assert piece(wire, "ENVELOPE", False) != piece(wire, "ENVELOPE", True)
    assert '"Grüße aus Köln"'.encode() in piece(wire, "ENVELOPE", True)
    literal = "Grüße aus Köln".encode()
    assert b"{%d}\r\n%s" % (len(literal), literal) in piece(wire, "ENVELOPE", False)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=80).map(b"".join))
def test_mime_shaped_garbage(raw: bytes) -> None:
    check_message(raw)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=1500))
def test_any_bytes(raw: bytes) -> None:
    check_message(raw)


@settings(max_examples=100, deadline=None)
@given(trees(), st.sampled_from([b"\r\n", b"\n"]))
def test_generated_messages(tree: object, nl: bytes) -> None:
    check_message(Renderer(nl).message(tree, ()))  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(body_parts())
def test_generated_structures(part: BodyPart) -> None:
    """Any stored structure: texts with quotes, backslashes, CR/LF, NUL, non-ASCII."""
    check_part(part)


ATTS = [
    FetchAtt("UID"),
    FetchAtt("FLAGS"),
    FetchAtt("ENVELOPE"),
    FetchAtt("INTERNALDATE"),
    FetchAtt("BODY"),
    FetchAtt("BODYSTRUCTURE"),
    FetchAtt("RFC822.SIZE"),
    FetchAtt("MODSEQ"),
    FetchAtt("BODY", Section((), "HEADER.FIELDS", ("FROM", "SUBJECT")), peek=True),
    FetchAtt("BODY", Section((), "HEADER"), peek=True, partial=(2, 10)),
    FetchAtt("BODY", Section((1,), None), peek=True),
    FetchAtt("RFC822.HEADER"),
]


@pytest.mark.parametrize("raw", MESSAGES[:4] + MESSAGES[10:], ids=range(6))
@pytest.mark.parametrize("utf8", [False, True])
def test_fetch_line_equals_fetch_response(raw: bytes, utf8: bool) -> None:
    """The bytes FETCH sends through `fetch_line` from what the store returns with
    ``wire``/``header`` equal `fetch_response` serialised from the structure and contents
    (the path of stores without pre-rendered bytes)."""
    structure = parse_message(raw)
    stored = structure_from_json(to_json(structure))
    when = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    old = MessageRecord(7, 12, ("\\Seen",), when, len(raw), content=raw, structure=stored)
    new = MessageRecord(
        7,
        12,
        ("\\Seen",),
        when,
        len(raw),
        content=raw,
        wire=prerender(structure),
        header=raw[: structure.body_start],
    )
    for n in (1, 2, 3):
        for atts in itertools.permutations(ATTS, n):
            view = SelectedView(1, [3, 7], readonly=False, recent={7})
            # A part number needs the structure: the store returns it then (`needs`).
            parts = any(a.section is not None and a.section.part for a in atts)
            fast = fetch_line(view, 2, replace(new, structure=stored) if parts else new, atts, utf8)
            assert fast == serialize(fetch_response(view, 2, old, atts), utf8=utf8), atts


def test_fetch_line_internaldate_keeps_each_zone() -> None:
    """Equal instants in two zones are two INTERNALDATEs (the rendering is cached)."""
    utc = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    east = utc.astimezone(dt.timezone(dt.timedelta(hours=2)))
    view = SelectedView(1, [3, 7], readonly=False)
    atts = (FetchAtt("INTERNALDATE"),)
    for when in (utc, east, utc):
        record = MessageRecord(7, 1, (), when, 10)
        line = fetch_line(view, 2, record, atts, False)
        assert line == serialize(fetch_response(view, 2, record, atts))
    assert b"07:06:07 +0200" in (
        fetch_line(view, 2, MessageRecord(7, 1, (), east, 10), atts, False) or b""
    )
