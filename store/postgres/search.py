"""SEARCH in PostgreSQL: a `Criterion` tree compiled into ONE SQL expression over
``messages m`` (the PostgreSQL half of store/sqlite/search.py's compiler: the same meaning of
each key over the same columns).

The text keys (FROM, TO, CC, BCC, SUBJECT, HEADER, BODY, TEXT) are decided by
store/textsearch.py's `TextMatcher`, the rules the SQLite store uses: before the query, each
such leaf is evaluated over the mailbox's messages (in batches, in a worker thread, never
the whole mailbox in memory) and becomes ``m.uid = ANY($n)``. A text leaf reads only the
candidates the trigram index finds (store/postgres/trigram.py). The Date-header keys
(SENT*) compare ``messages.sent``, the date `textsearch.sent_date` made at APPEND (the one
`TextMatcher.sent` decides by on SQLite), through the (mailbox_id, sent) index; only rows
stored before that column existed (sent NULL) are decided by `TextMatcher`. Imports
nothing of imapd or notify.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from store import objectid
from store.api import Criterion
from store.textsearch import SENT_KEYS, TEXT_KEYS, TextMatcher

_FLAG_KEYS = {"ANSWERED": "\\Answered", "FLAGGED": "\\Flagged", "DRAFT": "\\Draft"}
_DATE_OPS = {"BEFORE": "<", "ON": "=", "SINCE": ">="}
#: SENT* over messages.sent ('YYYY-MM-DD', '' without a valid Date: never matched).
_SENT_OPS = {
    "SENTBEFORE": "m.sent <> '' AND m.sent < {}",
    "SENTON": "m.sent = {}",
    "SENTSINCE": "m.sent >= {}",
}
SCAN_BATCH = 200  # messages read per round trip by a text leaf's scan

#: Evaluates one text/date leaf over the mailbox: the matching UIDs.
TextLeaf = Callable[[Criterion], Awaitable[list[int]]]


@dataclass(slots=True)
class Compiled:
    sql: str
    params: list[object] = field(default_factory=list)


class _Builder:
    """Collects parameters ($1 is the mailbox id) while compiling."""

    def __init__(self) -> None:
        self.params: list[object] = []

    def p(self, value: object) -> str:
        self.params.append(value)
        return f"${len(self.params) + 1}"


def text_leaves(c: Criterion) -> list[Criterion]:
    """The leaves `TextMatcher` decides, in tree order (validated as the compiler does)."""
    out: list[Criterion] = []
    stack = [c]
    while stack:
        k = stack.pop()
        name = k.name.upper()
        if name in TEXT_KEYS or name in SENT_KEYS:
            out.append(k)
        stack.extend(reversed(k.children))
    return out


def compile_criterion(c: Criterion, now: dt.datetime, text_uids: dict[int, list[int]]) -> Compiled:
    """``text_uids`` maps id() of each text leaf to the UIDs it matched. Raises ValueError
    for an unknown key or a value of the wrong type."""
    b = _Builder()
    sql = _compile(c, int(now.timestamp()), b, text_uids)
    return Compiled(sql, b.params)


def _compile(c: Criterion, now: int, b: _Builder, text: dict[int, list[int]]) -> str:
    name = c.name.upper()
    if name in {"AND", "OR"}:
        if name == "OR" and not c.children:
            raise ValueError("OR needs operands")
        parts = [_compile(k, now, b, text) for k in c.children]
        if not parts:
            return "true"
        return "(" + f" {name} ".join(f"({p})" for p in parts) + ")"
    if name == "NOT":
        if len(c.children) != 1:
            raise ValueError("NOT needs one operand")
        return f"NOT ({_compile(c.children[0], now, b, text)})"
    if name in {"ALL", "SAVEDATESUPPORTED"}:
        return "true"
    if name in {"SEEN", "UNSEEN"}:
        return "m.seen" if name == "SEEN" else "NOT m.seen"
    if name in {"DELETED", "UNDELETED"}:
        return "m.deleted" if name == "DELETED" else "NOT m.deleted"
    if name.removeprefix("UN") in _FLAG_KEYS:
        flag = _FLAG_KEYS[name.removeprefix("UN")]
        op = "=" if name.startswith("UN") else ">"
        return f"strpos(' ' || m.flags || ' ', {b.p(f' {flag} ')}) {op} 0"
    if name in {"KEYWORD", "UNKEYWORD"}:
        keyword = _str(c)
        op = "=" if name == "UNKEYWORD" else ">"
        return f"strpos(' ' || lower(m.flags) || ' ', {b.p(f' {keyword.lower()} ')}) {op} 0"
    if name in _DATE_OPS:  # the date part of INTERNALDATE in its own offset (RFC 3501)
        return f"substr(m.internaldate, 1, 10) {_DATE_OPS[name]} {b.p(_date(c))}"
    if name.startswith("SAVED") and name[5:] in _DATE_OPS:  # RFC 8514
        return f"substr(m.savedate, 1, 10) {_DATE_OPS[name[5:]]} {b.p(_date(c))}"
    if name in {"LARGER", "SMALLER"}:
        return f"m.size {'>' if name == 'LARGER' else '<'} {b.p(_int(c))}"
    if name == "MODSEQ":
        return f"m.modseq >= {b.p(_int(c))}"
    if name == "OLDER":
        return f"m.internal_epoch <= {b.p(now - _int(c))}"
    if name == "YOUNGER":
        return f"m.internal_epoch >= {b.p(now - _int(c))}"
    if name == "EMAILID":  # RFC 8474 §6 (store/objectid.py)
        content_id = objectid.content_of(_str(c))
        return "false" if content_id is None else f"m.content_id = {b.p(content_id)}"
    if name == "THREADID":  # none computed: "MUST NOT match any messages" (§5.2)
        _str(c)
        return "false"
    if name in {"UIDS", "UID"}:
        ranges = c.value
        if not isinstance(ranges, tuple):
            raise ValueError(f"{c.name} needs a tuple of UID ranges")
        pairs = [(int(lo), int(hi)) for lo, hi in ranges]
        if not pairs:
            return "false"
        return (
            f"EXISTS (SELECT 1 FROM unnest({b.p([p[0] for p in pairs])}::bigint[],"
            f" {b.p([p[1] for p in pairs])}::bigint[]) AS r(lo, hi)"
            " WHERE m.uid BETWEEN r.lo AND r.hi)"
        )
    if name in SENT_KEYS:  # the indexed messages.sent; rows from before it: `text`
        sent = f"(m.sent IS NOT NULL AND {_SENT_OPS[name].format(b.p(_date(c)))})"
        legacy = text.get(id(c))
        return f"({sent} OR m.uid = ANY({b.p(legacy)}::bigint[]))" if legacy else sent
    if name in TEXT_KEYS:
        return f"m.uid = ANY({b.p(text[id(c)])}::bigint[])"
    raise ValueError(f"unsupported search key {c.name!r}")


def validate(c: Criterion) -> None:
    """The value checks of the text and date leaves (before any scan)."""
    for leaf in text_leaves(c):
        name = leaf.name.upper()
        if name in SENT_KEYS:
            _date(leaf)
        else:
            _str(leaf)
            if name == "HEADER" and not leaf.header:
                raise ValueError("HEADER needs a field name")


def match_batch(
    matcher: TextMatcher, leaf: Criterion, rows: list[tuple[int, int, bytes, str]]
) -> list[int]:
    """UIDs among ``rows`` (uid, content id, raw, structure) that ``leaf`` matches."""
    name = leaf.name.upper()
    out = []
    for uid, content_id, raw, structure in rows:
        if name in SENT_KEYS:
            hit = matcher.sent(content_id, raw, structure, name, _date(leaf))
        else:
            header = leaf.header if name == "HEADER" else None
            hit = matcher.text(content_id, raw, structure, name, header, _str(leaf))
        if hit:
            out.append(uid)
    return out


async def in_thread(
    matcher: TextMatcher, leaf: Criterion, rows: list[tuple[int, int, bytes, str]]
) -> list[int]:
    return await asyncio.to_thread(match_batch, matcher, leaf, rows)


def _str(c: Criterion) -> str:
    if not isinstance(c.value, str):
        raise ValueError(f"{c.name} needs a string")
    return c.value


def _int(c: Criterion) -> int:
    if not isinstance(c.value, int) or isinstance(c.value, bool):
        raise ValueError(f"{c.name} needs a number")
    return c.value


def _date(c: Criterion) -> str:
    value = c.value
    if isinstance(value, dt.datetime):
        value = value.date()
    if not isinstance(value, dt.date):
        raise ValueError(f"{c.name} needs a date")
    return value.isoformat()
