"""Parser rows for SORT and THREAD (RFC 5256 §5, RFC 5957 §5, RFC 5267 §6), good and
hostile, in the shape of `tests.protocol.test_parser.ROWS` (which takes them in, so each is
fed whole, in pieces and byte by byte)."""

from __future__ import annotations

from typing import Any

from imapd.protocol import commands as c
from imapd.protocol.values import SearchKey as K
from imapd.protocol.values import SequenceSet as S

ALL = K("AND", children=(K("ALL"),))


def sort(
    *criteria: tuple[str, bool],
    uid: bool = False,
    charset: str = "UTF-8",
    key: K = ALL,
    ret: tuple[str, ...] | None = None,
) -> c.Sort:
    return c.Sort("a", uid, criteria, charset, key, ret)


def sort_rows(bad: Any, no: Any) -> list[tuple[str, bytes, Any]]:
    """``bad()`` / ``no(code)``: the table's expected BAD and NO values."""
    charset_no = no("BADCHARSET (UTF-8 US-ASCII)")
    return [
        ("sort", b"a SORT (DATE) UTF-8 ALL", sort(("DATE", False))),
        (
            "sort-lower",
            b"a sort (reverse subject date) us-ascii all",
            sort(("SUBJECT", True), ("DATE", False), charset="US-ASCII"),
        ),
        (
            "sort-every-key",
            b"a UID SORT (ARRIVAL CC DATE FROM SIZE SUBJECT TO DISPLAYFROM DISPLAYTO) UTF-8 ALL",
            sort(
                *(
                    (k, False)
                    for k in (
                        "ARRIVAL",
                        "CC",
                        "DATE",
                        "FROM",
                        "SIZE",
                        "SUBJECT",
                        "TO",
                        "DISPLAYFROM",
                        "DISPLAYTO",
                    )
                ),
                uid=True,
            ),
        ),
        (
            "sort-quoted-charset",
            b'a SORT (SIZE) "utf-8" 1:3 UNSEEN',
            sort(("SIZE", False), key=K("AND", children=(K("SEQSET", S(((1, 3),))), K("UNSEEN")))),
        ),
        ("sort-esort-empty", b"a SORT RETURN () (DATE) UTF-8 ALL", sort(("DATE", False), ret=())),
        (
            "sort-esort",
            b"a UID SORT RETURN (min MAX count ALL min) (DATE) UTF-8 ALL",
            sort(("DATE", False), uid=True, ret=("MIN", "MAX", "COUNT", "ALL")),
        ),
        ("sort-charset-unknown", b"a SORT (DATE) KOI8-R ALL", charset_no),
        ("sort-charset-literal", b"a SORT (DATE) {5+}\r\nUTF-8 ALL", bad()),
        ("sort-no-criteria", b"a SORT () UTF-8 ALL", bad()),
        ("sort-no-list", b"a SORT DATE UTF-8 ALL", bad()),
        ("sort-unknown-key", b"a SORT (DATE BOGUS) UTF-8 ALL", bad()),
        ("sort-reverse-alone", b"a SORT (REVERSE) UTF-8 ALL", bad()),
        ("sort-reverse-twice", b"a SORT (REVERSE REVERSE DATE) UTF-8 ALL", bad()),
        ("sort-reverse-glued", b"a SORT (REVERSEDATE) UTF-8 ALL", bad()),
        ("sort-unclosed", b"a SORT (DATE UTF-8 ALL", bad()),
        ("sort-two-lists", b"a SORT (DATE)(SIZE) UTF-8 ALL", bad()),
        ("sort-double-space", b"a SORT (DATE)  UTF-8 ALL", bad()),
        ("sort-no-charset", b"a SORT (DATE)", bad()),
        ("sort-no-keys", b"a SORT (DATE) UTF-8", bad()),
        ("sort-trailing-space", b"a SORT (DATE) UTF-8 ALL ", bad()),
        ("sort-bad-search-key", b"a SORT (DATE) UTF-8 BOGUS", bad()),
        ("sort-save", b"a SORT RETURN (SAVE) (DATE) UTF-8 ALL", bad()),
        ("sort-return-unclosed", b"a SORT RETURN (MIN (DATE) UTF-8 ALL", bad()),
        ("sort-return-no-list", b"a SORT RETURN (DATE) UTF-8 ALL", bad()),
        ("sort-nul", b"a SORT (DATE\x00) UTF-8 ALL", bad()),
        ("sort-8bit-key", b"a SORT (D\xc3\xa4TE) UTF-8 ALL", bad()),
        ("sort-many-keys", b"a SORT (" + b"DATE " * 10000 + b"DATE) UTF-8 ALL", bad()),
        ("sort-deep-search", b"a SORT (DATE) UTF-8 " + b"(" * 100 + b"ALL" + b")" * 100, bad()),
        (
            "thread-references",
            b"a THREAD REFERENCES UTF-8 ALL",
            c.Thread("a", False, "REFERENCES", "UTF-8", ALL),
        ),
        (
            "thread-uid-ordered",
            b'a uid thread orderedsubject "US-ASCII" ALL',
            c.Thread("a", True, "ORDEREDSUBJECT", "US-ASCII", ALL),
        ),
        ("thread-unknown-algorithm", b"a THREAD BOGUS UTF-8 ALL", bad()),
        ("thread-algorithm-list", b"a THREAD (REFERENCES) UTF-8 ALL", bad()),
        ("thread-no-charset", b"a THREAD REFERENCES", bad()),
        ("thread-no-keys", b"a THREAD REFERENCES UTF-8", bad()),
        ("thread-charset-unknown", b"a THREAD ORDEREDSUBJECT BIG5 ALL", charset_no),
        ("thread-unclosed-search", b"a THREAD REFERENCES UTF-8 (ALL", bad()),
        ("uid-sort-bare", b"a UID SORT", bad()),
    ]
