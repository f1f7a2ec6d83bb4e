"""FETCH rendered from rows (`imapd.fetch_rows`, issue 17) sends what the record path sends.

For every attribute mix of up to three of the attributes the row path serves (imaptest's
mix and the other peek forms: header fields and their .NOT, partials, RFC822.HEADER, the
whole message), over hand-picked odd messages (UTF-8 and 8-bit headers, NUL octets, folded
and colon-less fields, no header at all, nested MIME): `fetch_rows.render` over the rows
`Store.fetch_plain` returns equals `fetch_line` over the records `Store.fetch` returns and
`fetch_response` serialised from the parsed structure, with and without UTF8=ACCEPT,
\\Recent, UIDONLY, and a view in which a message was expunged. The HEADER.FIELDS search
equals the line-by-line cut over header-shaped garbage.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd import fetch_rows
from imapd.fetch import fetch_line, fetch_response, prerender
from imapd.protocol.serializer import BIG_LITERAL, serialize
from imapd.protocol.values import FetchAtt, Section
from imapd.selected import SelectedView
from store.api import MessageRecord
from store.mime import parse_message, structure_from_json
from store.mime import structure_to_json as to_json
from store.mime.headers import field_spans, split_header
from store.mime.sections import _picked, top_header_fields
from tests.protocol.test_fetch_wire import MESSAGES

MESSAGES_ODD = [
    *MESSAGES,
    b"From\r\n : folded name\r\nTo :spaced\r\nSUBJECT: upper\r\nsubject: lower\r\n\r\nx",
    b"X-No-Colon\r\nFrom: a@b\r\nFrom: second@b\r\n\tcontinued\r\n\r\n",
    b"From: only\nTo: bare LF\n\nbody\n",
    b"From: no line end at all",
    b"\r\nFrom: after an empty first line\r\n\r\n",
    b" From: leading space\r\nTo: t\r\n\r\n",
    b"To: x\r\n\x0bFrom: vertical tab\r\n\r\n",
]

ATTS = [
    FetchAtt("UID"),
    FetchAtt("FLAGS"),
    FetchAtt("ENVELOPE"),
    FetchAtt("INTERNALDATE"),
    FetchAtt("BODY"),
    FetchAtt("BODYSTRUCTURE"),
    FetchAtt("RFC822.SIZE"),
    FetchAtt("MODSEQ"),
    FetchAtt("BODY", Section((), "HEADER.FIELDS", ("FROM", "TO", "SUBJECT", "DATE")), peek=True),
    FetchAtt("BODY", Section((), "HEADER.FIELDS.NOT", ("TO", "X-NO-COLON")), peek=True),
    FetchAtt("BODY", Section((), "HEADER.FIELDS", ("FROM",)), partial=(1, 12)),
    FetchAtt("BODY", Section((), "HEADER"), peek=True, partial=(2, 10)),
    FetchAtt("BODY", Section(), peek=True),
    FetchAtt("BODY", Section(), peek=True, partial=(0, 7)),
    FetchAtt("RFC822.HEADER"),
    FetchAtt("RFC822"),
]
WHEN = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.timezone(dt.timedelta(hours=-3, minutes=-30)))
FLAGS = ("\\Seen", "$Forwarded", "\\Answered")


def _records(raw: bytes, uid: int) -> tuple[MessageRecord, MessageRecord, dict[str, Any]]:
    """The record rendered from the structure, the one `Store.fetch` returns with the
    pre-rendered bytes, and the row's columns as `Store.fetch_plain` returns them."""
    structure = parse_message(raw)
    stored = structure_from_json(to_json(structure))
    old = MessageRecord(uid, 12, FLAGS, WHEN, len(raw), content=raw, structure=stored)
    header = raw[: structure.body_start]
    wire = prerender(structure)
    new = MessageRecord(uid, 12, FLAGS, WHEN, len(raw), content=raw, wire=wire, header=header)
    columns = {
        "modseq": 12,
        "flags": " ".join(FLAGS),
        "size": len(raw),
        "internaldate": WHEN.isoformat(),
        "wire": fetch_rows.pieces(wire),  # as imapd.fetch_cache hands it to render
        "header": header,
        "raw": raw,
    }
    return old, new, columns


def _view(**kw: Any) -> SelectedView:
    return SelectedView(1, [3, 7, 9], readonly=False, **kw)


@pytest.mark.parametrize("raw", MESSAGES_ODD, ids=range(len(MESSAGES_ODD)))
@pytest.mark.parametrize("utf8", [False, True])
def test_rows_render_what_records_render(raw: bytes, utf8: bool) -> None:
    old, new, columns = _records(raw, 7)
    # Every ordered pair, and every seventh of the triples (each attribute in many).
    mixes = [*itertools.permutations(ATTS, 2), *itertools.combinations(ATTS, 3)][::7]
    for atts in [*((a,) for a in ATTS), *mixes]:
        rplan = fetch_rows.plan(atts)
        assert rplan is not None, atts
        row = (7, *(columns[c] for c in rplan.columns))
        for kw in ({}, {"recent": {7}}, {"uidonly": True}):
            got = fetch_rows.render(_view(**kw), [row], rplan, utf8)
            assert got == fetch_line(_view(**kw), 2, new, atts, utf8), (atts, kw)
        want = serialize(fetch_response(_view(), 2, old, atts), utf8=utf8)
        assert fetch_rows.render(_view(), [row], rplan, utf8) == want, atts


def test_batch_of_rows_numbered_as_the_view_numbers_them() -> None:
    """Rows of UIDs 3, 7, 9 (sequence numbers 1-3); and with UID 7 gone from the view
    (expunged, told): 3 and 9 are numbers 1 and 2, the row of 7 skipped."""
    atts = (FetchAtt("UID"), FetchAtt("ENVELOPE"), FetchAtt("FLAGS"))
    rplan = fetch_rows.plan(atts)
    assert rplan is not None
    recs = [_records(MESSAGES_ODD[i], uid) for i, uid in ((0, 3), (1, 7), (2, 9))]
    rows = [(r[1].uid, *(r[2][c] for c in rplan.columns)) for r in recs]
    for uids in ([3, 7, 9], [3, 9]):
        view = SelectedView(1, uids, readonly=False)
        want = b"".join(
            fetch_line(SelectedView(1, uids, readonly=False), seq, rec[1], atts, False) or b""
            for seq, rec in enumerate((r for r in recs if r[1].uid in uids), 1)
        )
        assert fetch_rows.render(view, rows, rplan, False) == want
        assert want.count(b" FETCH (") == len(uids)


def test_what_rows_do_not_serve() -> None:
    """Part numbers, TEXT, MIME, BINARY, PREVIEW, SAVEDATE, EMAILID go the record way;
    a row without pre-rendered bytes, a header block the store did not return (over
    HEADER_ROW_MAX) and a big message (sent uncopied) make `render` answer None."""
    for att in (
        FetchAtt("BODY", Section((1,)), peek=True),
        FetchAtt("BODY", Section((), "TEXT"), peek=True),
        FetchAtt("BODY", Section((1,), "MIME"), peek=True),
        FetchAtt("BINARY", Section(()), peek=True),
        FetchAtt("PREVIEW"),
        FetchAtt("SAVEDATE"),
        FetchAtt("EMAILID"),
        FetchAtt("RFC822.TEXT"),
    ):
        assert fetch_rows.plan((FetchAtt("UID"), att)) is None, att
    view = _view()
    for att, value in (
        (FetchAtt("ENVELOPE"), None),
        (FetchAtt("BODY", Section((), "HEADER"), peek=True), None),
        (FetchAtt("BODY", Section(), peek=True), b"x" * BIG_LITERAL),
    ):
        rplan = fetch_rows.plan((att,))
        assert rplan is not None and len(rplan.columns) == 1
        assert fetch_rows.render(view, [(7, value)], rplan, False) is None


def test_flags_rendered_from_the_stored_column() -> None:
    """FLAGS from the space-separated column: empty, one, keywords, \\Recent appended;
    under IMAP4rev2 no \\Recent (RFC 9051 Appendix E item 12)."""
    rplan = fetch_rows.plan((FetchAtt("FLAGS"),))
    assert rplan is not None
    for flags in ("", "\\Seen", "\\Seen $Junk \\Deleted"):
        for kw in ({}, {"recent": {7}}, {"recent": {7}, "rev2": True}):
            record = MessageRecord(7, 1, tuple(flags.split()), WHEN, 1)
            want = fetch_line(_view(**kw), 2, record, rplan.atts, False)
            assert fetch_rows.render(_view(**kw), [(7, flags)], rplan, False) == want


HEADER_BITS = st.sampled_from(
    [
        *(b"From", b"fROM", b"To", b"Subject", b"Sub", b"X-A", b":", b" ", b"\t", b"\r\n"),
        *(b"\n", b"\r", b"\x0b", b"\x00", b"a", b"\xc3\xa9", b"To :", b"From\r\n :", b"\r\n "),
        *(b"\n\t", b"\r\n\r\n", b"\n\n"),
    ]
)


@settings(max_examples=400)
@given(
    st.lists(HEADER_BITS, max_size=30).map(b"".join),
    st.sampled_from([("FROM", "TO", "SUBJECT"), ("TO",), ("X-A", "SUB"), ("A:B", "X Y")]),
)
def test_header_fields_search_cuts_as_the_line_walk(header: bytes, fields: tuple[str, ...]) -> None:
    """`top_header_fields`' one-regex search (names at line starts, white space and
    continuation lines before the colon, a last line without its line end) picks and cuts
    the fields the line-by-line walk does."""
    end, _ = split_header(header, 0, len(header))
    want = _picked(header, field_spans(header, 0, end), fields, False)
    assert top_header_fields(header, fields, False) == want


def test_header_fields_memo_is_bounded_and_answers_as_the_search() -> None:
    """The remembered HEADER.FIELDS answers (`fetch_rows.header_fields`) are those of
    `top_header_fields`, for at most MEMO_ENTRIES blocks, none longer than MEMO_HEADER_MAX."""
    fields = ("SUBJECT", "FROM")
    long = b"Subject: " + b"x" * fetch_rows.MEMO_HEADER_MAX + b"\r\nFrom: f\r\n\r\n"
    for i in range(fetch_rows.MEMO_ENTRIES + 50):
        header = b"From: a%d\r\nSubject: s\r\n\tfolded\r\nTo: t\r\n\r\n" % i
        for _ in range(2):  # computed, then remembered
            got = fetch_rows.header_fields(header, fields, False)
            assert got == top_header_fields(header, fields, False)
            assert got == b"From: a%d\r\nSubject: s\r\n\tfolded\r\n\r\n" % i
    assert fetch_rows.header_fields(long, fields, True) == b"\r\n"
    assert fetch_rows.header_fields(long, fields, False) == long
    assert len(fetch_rows._memo) == fetch_rows.MEMO_ENTRIES
    assert all(len(key[0]) <= fetch_rows.MEMO_HEADER_MAX for key in fetch_rows._memo)
