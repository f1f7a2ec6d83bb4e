"""SEARCH evaluation: a `Criterion` tree compiled into ONE SQL expression.

Owns: the meaning of each search key over the stored columns, and the search texts stored
at APPEND (`search_texts`). Keys on flags, keywords, dates, sizes, UIDs, MODSEQ and SAVEDATE
become plain SQL over ``messages m`` (SEEN/UNSEEN and DELETED/UNDELETED are index ranges).
FROM, TO, CC, BCC and SUBJECT are ``instr`` over the case-folded texts that APPEND stored in
``content_search s`` (migration 0006; LEFT JOINed, a join costs half a correlated subquery);
a message stored without them (NULL: before that migration) falls back, in the same
expression, to ``imap_text``. The other text keys (BODY, HEADER, TEXT) and the Date-header keys
(SENTBEFORE, SENTON, SENTSINCE) are calls of the SQL functions ``imap_text`` and
``imap_sent``, which `TextMatcher` implements in Python with the `store.mime` helpers; they
are registered on the reader connection, so they run in its worker thread, never on the
event loop. Inside AND the terms go cheapest first (plain SQL, stored texts, Python) so that
SQLite only evaluates the dear ones on the candidate rows the others left (SQLite evaluates
WHERE terms in order and stops at the first false one). Matching is a case-insensitive
(casefold) substring of decoded text (RFC 3501 §6.4.4). Imports nothing of imapd or notify.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from dataclasses import dataclass, field

from store import objectid
from store.api import Criterion

# The text rules moved to store/textsearch.py (shared with the PostgreSQL store); the
# names stay importable from here (store/sqlite/messages.py, store.py, tests).
from store.textsearch import _PART_SEP, SENT_KEYS, TEXT_KEYS
from store.textsearch import STORED_KEYS as STORED_KEYS
from store.textsearch import TextMatcher as TextMatcher
from store.textsearch import header_parts as header_parts
from store.textsearch import search_texts as search_texts

log = logging.getLogger("store.search")

_FLAG_KEYS = {
    "ANSWERED": "\\Answered",
    "FLAGGED": "\\Flagged",
    "DRAFT": "\\Draft",
}
_DATE_OPS = {"BEFORE": "<", "ON": "=", "SINCE": ">="}
# Ranges up to this many are inlined as BETWEENs, beyond it passed as one JSON parameter.
_INLINE_RANGES = 8
# Evaluation cost classes, for the order of AND terms.
_SQL, _STORED, _PYTHON = 0, 1, 2


@dataclass(slots=True)
class Compiled:
    """``sql`` is an expression over ``messages m``, and ``contents c`` when
    ``needs_content``, and ``content_search s`` (LEFT JOIN: NULLs for a message stored
    before migration 0006) when ``needs_search``; ``params`` its positional parameters in
    order; ``cost`` how dear it is to evaluate per row (_SQL, _STORED or _PYTHON)."""

    sql: str
    params: list[object] = field(default_factory=list)
    needs_content: bool = False
    cost: int = _SQL
    needs_search: bool = False


def compile_criterion(criterion: Criterion, now: dt.datetime) -> Compiled:
    """Raises ValueError for an unknown key or a value of the wrong type. ``now`` (aware)
    anchors OLDER/YOUNGER (RFC 5032)."""
    return _compile(criterion, int(now.timestamp()))


def _compile(c: Criterion, now: int) -> Compiled:
    name = c.name.upper()
    if name == "AND":
        parts = sorted((_compile(k, now) for k in _operands(c, "AND")), key=lambda p: p.cost)
        return _join(parts, " AND ", "1")
    if name == "OR":
        if not c.children:
            raise ValueError("OR needs operands")
        return _join([_compile(k, now) for k in _operands(c, "OR")], " OR ", "0")
    if name == "NOT":
        if len(c.children) != 1:
            raise ValueError("NOT needs one operand")
        inner_c = c.children[0]
        if inner_c.name.upper() == "NOT" and len(inner_c.children) == 1:
            return _compile(inner_c.children[0], now)  # NOT NOT x is x: one nesting less
        inner = _compile(inner_c, now)
        return dataclasses.replace(inner, sql=f"NOT ({inner.sql})")
    if name in {"ALL", "SAVEDATESUPPORTED"}:
        return Compiled("1")
    if name in {"SEEN", "UNSEEN"}:
        return Compiled(f"m.seen = {int(name == 'SEEN')}")
    if name in {"DELETED", "UNDELETED"}:
        return Compiled(f"m.deleted = {int(name == 'DELETED')}")
    if name.removeprefix("UN") in _FLAG_KEYS:
        flag = _FLAG_KEYS[name.removeprefix("UN")]
        op = "=" if name.startswith("UN") else ">"
        return Compiled(f"instr(' ' || m.flags || ' ', ?) {op} 0", [f" {flag} "])
    if name in {"KEYWORD", "UNKEYWORD"}:
        keyword = _str(c)
        op = "=" if name == "UNKEYWORD" else ">"
        return Compiled(f"instr(' ' || lower(m.flags) || ' ', ?) {op} 0", [f" {keyword.lower()} "])
    if name in _DATE_OPS:
        # RFC 3501 §6.4.4: dates "disregarding time and timezone": the date part of the
        # stored ISO INTERNALDATE is the date in the message's own offset.
        return Compiled(f"substr(m.internaldate, 1, 10) {_DATE_OPS[name]} ?", [_date(c)])
    if name.startswith("SAVED") and name[5:] in _DATE_OPS:  # RFC 8514
        return Compiled(f"substr(m.savedate, 1, 10) {_DATE_OPS[name[5:]]} ?", [_date(c)])
    if name in {"LARGER", "SMALLER"}:
        return Compiled(f"m.size {'>' if name == 'LARGER' else '<'} ?", [_int(c)])
    if name == "MODSEQ":  # RFC 7162 §3.1.5: equal to or greater than
        return Compiled("m.modseq >= ?", [_int(c)])
    if name == "OLDER":  # RFC 5032 §2: "less recent than or equal to the target time"
        return Compiled("m.internal_epoch <= ?", [now - _int(c)])
    if name == "YOUNGER":  # "more recent than or equal to the target time": both match at it
        return Compiled("m.internal_epoch >= ?", [now - _int(c)])
    if name in {"UIDS", "UID"}:
        return _uids(c)
    if name == "EMAILID":  # RFC 8474 §6: the messages whose EMAILID is the value
        content_id = objectid.content_of(_str(c))
        return Compiled("0") if content_id is None else Compiled("m.content_id = ?", [content_id])
    if name == "THREADID":  # no THREADID is computed: "MUST NOT match any messages" (§5.2)
        _str(c)
        return Compiled("0")
    if name in STORED_KEYS:
        return _stored(name, _str(c))
    if name in TEXT_KEYS:
        header = c.header if name == "HEADER" else None
        if name == "HEADER" and not header:
            raise ValueError("HEADER needs a field name")
        return Compiled(
            "imap_text(c.id, c.raw, c.structure, ?, ?, ?)",
            [name, header, _str(c)],
            True,
            _PYTHON,
        )
    if name in SENT_KEYS:
        return Compiled(
            "imap_sent(c.id, c.raw, c.structure, ?, ?)", [name, _date(c)], True, _PYTHON
        )
    raise ValueError(f"unsupported search key {c.name!r}")


def _stored(key: str, value: str) -> Compiled:
    """``key`` over its stored text (`search_texts`), falling back to ``imap_text`` where
    the text is NULL. Both sides mean "a part contains the case-folded needle" (`_text`);
    a needle holding the part separator can only be matched part by part, in Python. The
    fallback reads contents by primary key, only where needed (COALESCE evaluates its
    second argument only on NULL)."""
    needle = value.casefold()
    fallback = (
        "(SELECT imap_text(f.id, f.raw, f.structure, ?, NULL, ?)"
        " FROM contents AS f WHERE f.id = m.content_id)"
    )
    if _PART_SEP in needle:
        return Compiled(fallback, [key, value], False, _PYTHON)
    stored = f"s.{STORED_KEYS[key]}"
    if not needle:  # RFC 3501 §6.4.4: an empty string matches any such field
        return Compiled(f"COALESCE({stored} <> '', {fallback})", [key, value], False, _STORED, True)
    return Compiled(
        f"COALESCE(instr({stored}, ?) > 0, {fallback})", [needle, key, value], False, _STORED, True
    )


def _operands(c: Criterion, op: str) -> list[Criterion]:
    """The operands of an ``op`` node with nested ``op`` nodes flattened into it: IMAP's
    binary OR makes ``OR a OR b OR c ...`` a chain as deep as it is long."""
    out: list[Criterion] = []
    stack = list(reversed(c.children))
    while stack:
        k = stack.pop()
        if k.name.upper() == op and (op == "AND" or k.children):
            stack.extend(reversed(k.children))
        else:
            out.append(k)
    return out


def _join(parts: list[Compiled], op: str, empty: str) -> Compiled:
    """``parts`` joined by ``op`` as a balanced tree of parenthesised pairs: SQLite's parser
    (its stack holds ~100 entries) and its expression depth limit (1000) see a nesting of
    log2(len(parts)), not len(parts), so long OR chains and key lists compile (issue 14:
    31 ORs overflowed the parser stack). Order is kept (AND terms come cheapest first)."""
    if not parts:
        return Compiled(empty)
    level = parts
    while len(level) > 1:
        paired: list[Compiled] = []
        for i in range(0, len(level) - 1, 2):
            a, b = level[i], level[i + 1]
            paired.append(
                Compiled(
                    f"({a.sql}){op}({b.sql})",
                    a.params + b.params,
                    a.needs_content or b.needs_content,
                    max(a.cost, b.cost),
                    a.needs_search or b.needs_search,
                )
            )
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def _uids(c: Criterion) -> Compiled:
    ranges = c.value
    if not isinstance(ranges, tuple):
        raise ValueError(f"{c.name} needs a tuple of UID ranges")
    pairs = [(int(lo), int(hi)) for lo, hi in ranges]
    if not pairs:
        return Compiled("0")
    if len(pairs) <= _INLINE_RANGES:
        sql = " OR ".join("m.uid BETWEEN ? AND ?" for _ in pairs)
        return Compiled(sql, [v for pair in pairs for v in pair])
    sql = "EXISTS (SELECT 1 FROM json_each(?) r WHERE m.uid BETWEEN r.value->>0 AND r.value->>1)"
    return Compiled(sql, [json.dumps(pairs)])


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
