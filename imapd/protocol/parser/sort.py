"""The grammar of SORT and THREAD: RFC 5256 §5, SORT=DISPLAY's keys (RFC 5957 §5) and
ESORT's return options (RFC 5267 §3, §6). Must not import asyncio, socket, ssl, store or
notify.
"""

from __future__ import annotations

from typing import Final

from imapd.protocol import commands as cmd
from imapd.protocol.errors import CommandRefused
from imapd.protocol.parser.context import ReturnOptions, return_options
from imapd.protocol.parser.message import fetch_att, search_key
from imapd.protocol.parser.primitives import ATOM, Cursor, atom, quoted
from imapd.protocol.values import SearchKey

SORT_KEYS: Final = frozenset(
    {"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"}
)
THREAD_ALGORITHMS: Final = frozenset({"ORDEREDSUBJECT", "REFERENCES"})
_RETURN_SORT: Final = frozenset({"MIN", "MAX", "ALL", "COUNT"})
_CHARSETS: Final = frozenset({"UTF-8", "US-ASCII"})


def _criteria(c: Cursor) -> tuple[tuple[str, bool], ...]:
    """sort-criteria = "(" sort-criterion *(SP sort-criterion) ")"
    sort-criterion = ["REVERSE" SP] sort-key
    sort-key = "ARRIVAL" / "CC" / "DATE" / "FROM" / "SIZE" / "SUBJECT" / "TO" /
               "DISPLAYFROM" / "DISPLAYTO"                       ; RFC 5957 §5"""
    c.char(b"(", '"(" and sort criteria')
    out: list[tuple[str, bool]] = []
    while True:
        c.count_arg()
        reverse = c.keyword(b"REVERSE")
        if reverse:
            c.sp()
        start = c.pos
        m = c.match(ATOM)
        name = m.group().decode("ascii").upper() if m is not None else ""
        if name not in SORT_KEYS:
            c.pos = start
            raise c.error("sort key")
        out.append((name, reverse))
        if c.try_char(b")"):
            return tuple(out)
        c.sp()


def _search_criteria(c: Cursor) -> tuple[str, SearchKey]:
    """search-criteria = charset 1*(SP search-key)
    charset = atom / quoted   ; US-ASCII and UTF-8; another is a tagged
                              ; NO [BADCHARSET] (as SEARCH's CHARSET, RFC 3501 §6.4.4)"""
    raw = quoted(c) if c.peek() == ord('"') else atom(c).encode("ascii")
    charset = raw.decode("ascii", "replace").upper()
    if charset not in _CHARSETS:
        raise CommandRefused("Unsupported charset", code="BADCHARSET (UTF-8 US-ASCII)")
    keys: list[SearchKey] = []
    while c.try_char(b" "):
        keys.append(search_key(c))
    if not keys:
        raise c.error("SP and search key")
    return charset, SearchKey("AND", children=tuple(keys))


def sort(c: Cursor, t: str, uid: bool) -> cmd.Sort:
    """sort = ["UID" SP] "SORT" [search-return-opts] SP sort-criteria SP search-criteria
    ; RFC 5256 §5, RFC 5267 §6 (extended-sort)"""
    c.sp()
    returns: tuple[str, ...] | None = None
    opts = ReturnOptions(())
    if c.keyword(b"RETURN"):
        # ESORT's MIN, MAX, ALL, COUNT (RFC 5267 §3.1) and CONTEXT=SORT's (§4)
        c.sp()
        opts = return_options(c, _RETURN_SORT, "sort return option", fetch_att)
        returns = opts.names
        c.sp()
    criteria = _criteria(c)
    c.sp()
    charset, key = _search_criteria(c)
    return cmd.Sort(t, uid, criteria, charset, key, returns, opts.partial, opts.update)


def thread(c: Cursor, t: str, uid: bool) -> cmd.Thread:
    """thread = ["UID" SP] "THREAD" SP thread-alg SP search-criteria
    thread-alg = "ORDEREDSUBJECT" / "REFERENCES" / thread-alg-ext   ; others: BAD"""
    c.sp()
    start = c.pos
    m = c.match(ATOM)
    algorithm = m.group().decode("ascii").upper() if m is not None else ""
    if algorithm not in THREAD_ALGORITHMS:
        c.pos = start
        raise c.error("thread algorithm (ORDEREDSUBJECT or REFERENCES)")
    c.sp()
    charset, key = _search_criteria(c)
    return cmd.Thread(t, uid, algorithm, charset, key)
