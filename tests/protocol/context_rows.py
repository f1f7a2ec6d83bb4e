"""Parser rows for RFC 5267 §4 contexts (CONTEXT, UPDATE with RFC 5465 §8's fetch-atts,
PARTIAL in SEARCH and SORT; CANCELUPDATE), good and hostile, in the shape of
`tests.protocol.test_parser.ROWS` (which takes them in: each is fed whole, in pieces and
byte by byte). RFC 5267 §5 is the grammar; §4.4 forbids PARTIAL twice and PARTIAL with ALL."""

from __future__ import annotations

from typing import Any

from imapd.protocol import commands as c
from imapd.protocol.values import FetchAtt, Section
from imapd.protocol.values import SearchKey as K

ALL = K("AND", children=(K("ALL"),))
DELETED = K("AND", children=(K("DELETED"),))
HEADER = FetchAtt("BODY", Section((), "HEADER.FIELDS", ("FROM",)), None, peek=True)


def context_rows(bad: Any) -> list[tuple[str, bytes, Any]]:
    """``bad()``: the table's expected BAD."""
    return [
        (
            "search-update-count",
            b"a UID SEARCH RETURN (UPDATE COUNT) DELETED",
            c.Search("a", True, DELETED, None, ("UPDATE", "COUNT"), None, ()),
        ),
        (
            "search-context-hint",
            b"a SEARCH RETURN (CONTEXT COUNT) ALL",
            c.Search("a", False, ALL, None, ("CONTEXT", "COUNT")),
        ),
        (
            "search-partial-reversed",
            b"a UID SEARCH RETURN (partial 500:400) ALL",
            c.Search("a", True, ALL, None, ("PARTIAL",), (500, 400)),
        ),
        (
            "search-update-atts-rfc5465-7",
            b"a SEARCH RETURN (COUNT UPDATE (UID BODY.PEEK[HEADER.FIELDS (FROM)])) ALL",
            c.Search("a", False, ALL, None, ("COUNT", "UPDATE"), None, (FetchAtt("UID"), HEADER)),
        ),
        (
            "search-update-atts-no-space",
            b"a SEARCH RETURN (UPDATE(UID UID) PARTIAL 1:1) ALL",
            c.Search("a", False, ALL, None, ("UPDATE", "PARTIAL"), (1, 1), (FetchAtt("UID"),)),
        ),
        (
            "sort-update-partial",
            b"a UID SORT RETURN (UPDATE PARTIAL 1:10 CONTEXT) (DATE) UTF-8 ALL",
            c.Sort(
                "a",
                True,
                (("DATE", False),),
                "UTF-8",
                ALL,
                ("UPDATE", "PARTIAL", "CONTEXT"),
                (1, 10),
                (),
            ),
        ),
        ("cancelupdate", b'a CANCELUPDATE "B01"', c.CancelUpdate("a", ("B01",))),
        (
            "cancelupdate-many",
            b'a cancelupdate "B01" "x y" "B01"',
            c.CancelUpdate("a", ("B01", "x y")),
        ),
        # hostile: RFC 5267 §4.4 and §5 grammar
        ("partial-and-all", b"a SEARCH RETURN (PARTIAL 1:5 ALL) ALL", bad()),
        ("all-and-partial", b"a SORT RETURN (ALL PARTIAL 1:5) (DATE) UTF-8 ALL", bad()),
        ("partial-twice", b"a SEARCH RETURN (PARTIAL 1:5 PARTIAL 6:9) ALL", bad()),
        ("partial-zero", b"a SEARCH RETURN (PARTIAL 0:5) ALL", bad()),
        ("partial-negative-rfc9394", b"a SEARCH RETURN (PARTIAL -1:-100) ALL", bad()),
        ("partial-star", b"a SEARCH RETURN (PARTIAL 1:*) ALL", bad()),
        ("partial-single", b"a SEARCH RETURN (PARTIAL 5) ALL", bad()),
        ("partial-no-range", b"a SEARCH RETURN (PARTIAL) ALL", bad()),
        ("partial-overflow", b"a SEARCH RETURN (PARTIAL 1:4294967296) ALL", bad()),
        ("partial-set", b"a SEARCH RETURN (PARTIAL 1:5,7:9) ALL", bad()),
        ("update-twice", b"a SEARCH RETURN (UPDATE UPDATE) ALL", bad()),
        ("update-empty-atts", b"a SEARCH RETURN (UPDATE ()) ALL", bad()),
        ("update-bad-att", b"a SEARCH RETURN (UPDATE (BOGUS)) ALL", bad()),
        ("update-atts-unclosed", b"a SEARCH RETURN (UPDATE (UID) ALL", bad()),
        ("update-macro", b"a SEARCH RETURN (UPDATE (ALL)) ALL", bad()),
        ("context-quoted", b'a SEARCH RETURN ("CONTEXT") ALL', bad()),
        ("sort-save-still-bad", b"a SORT RETURN (SAVE UPDATE) (DATE) UTF-8 ALL", bad()),
        ("cancelupdate-no-tag", b"a CANCELUPDATE", bad()),
        ("cancelupdate-atom", b"a CANCELUPDATE B01", bad()),
        ("cancelupdate-literal", b"a CANCELUPDATE {3}\r\nB01", bad()),
        ("cancelupdate-trailing-space", b'a CANCELUPDATE "B01" ', bad()),
        ("cancelupdate-list", b'a CANCELUPDATE ("B01")', bad()),
    ]
