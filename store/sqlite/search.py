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
import email.utils
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from store import mime, objectid
from store.api import Criterion
from store.mime import Address, BodyPart, Envelope

log = logging.getLogger("store.search")

TEXT_KEYS = frozenset({"BCC", "BODY", "CC", "FROM", "HEADER", "SUBJECT", "TEXT", "TO"})
SENT_KEYS = frozenset({"SENTBEFORE", "SENTON", "SENTSINCE"})
_FLAG_KEYS = {
    "ANSWERED": "\\Answered",
    "FLAGGED": "\\Flagged",
    "DRAFT": "\\Draft",
}
_DATE_OPS = {"BEFORE": "<", "ON": "=", "SINCE": ">="}
# Ranges up to this many are inlined as BETWEENs, beyond it passed as one JSON parameter.
_INLINE_RANGES = 8
# Headers whose decoded values TEXT also searches (encoded words are not in the raw bytes).
_TEXT_HEADERS = ("Subject", "From", "To", "Cc", "Bcc", "Reply-To", "Sender")
# Header keys whose search texts APPEND stores, by content_search column, in the order
# `search_texts` returns them.
STORED_KEYS = {
    "FROM": "from_text",
    "TO": "to_text",
    "CC": "cc_text",
    "BCC": "bcc_text",
    "SUBJECT": "subject_text",
}
_ENVELOPE: dict[str, Callable[[Envelope], tuple[Address, ...]]] = {
    "FROM": lambda e: e.from_,
    "TO": lambda e: e.to,
    "CC": lambda e: e.cc,
    "BCC": lambda e: e.bcc,
}
# Each part of a stored text is preceded by it: a needle without it matches the joined text
# exactly when it matches one part, and the text is '' exactly when there is no part.
_PART_SEP = "\n"
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


def header_parts(raw: bytes, structure: BodyPart, key: str) -> list[str]:
    """What FROM, TO, CC, BCC or SUBJECT ``key`` searches in a message, case-folded: every
    value of that header field, unfolded and RFC 2047-decoded, and for the address keys also
    the envelope's addresses as `mime.address_text` writes them (display names decoded), so
    a name and an address both match whatever the quoting or encoding."""
    parts = [v.casefold() for v in mime.header_values(raw, structure, key.title())]
    addresses = _ENVELOPE.get(key)
    if addresses is not None and structure.envelope is not None:
        text = mime.address_text(addresses(structure.envelope))
        if text:
            parts.append(text.casefold())
    return parts


def search_texts(raw: bytes, structure: BodyPart) -> tuple[str, ...]:
    """The content_search texts of a message, in `STORED_KEYS` order, for APPEND."""
    return tuple("".join(_PART_SEP + p for p in header_parts(raw, structure, key))
                 for key in STORED_KEYS)


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
        return Compiled("0") if content_id is None else Compiled("m.content_id = ?",
                                                                 [content_id])
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
            "imap_text(c.id, c.raw, c.structure, ?, ?, ?)", [name, header, _str(c)], True,
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
        return Compiled(f"COALESCE({stored} <> '', {fallback})", [key, value], False, _STORED,
                        True)
    return Compiled(f"COALESCE(instr({stored}, ?) > 0, {fallback})", [needle, key, value],
                    False, _STORED, True)


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
            paired.append(Compiled(
                f"({a.sql}){op}({b.sql})", a.params + b.params,
                a.needs_content or b.needs_content, max(a.cost, b.cost),
                a.needs_search or b.needs_search,
            ))
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


def _contains(body: str, needle: str) -> bool:
    """``needle`` (case-folded) in `TextMatcher._body`'s text: folded already when short,
    else folded and searched a piece at a time, so that no single call holds the GIL for
    long (the event loop thread needs it at every socket operation; issue 14: a SEARCH
    BODY over a 30 MB message held other clients for 0.5 s). Pieces overlap by
    len(needle) characters: a character folds to at least one, so any match of the needle
    in the folded text lies within one folded piece."""
    if len(body) <= mime.PIECE:
        return needle in body
    step, overlap = mime.PIECE, len(needle)
    return any(needle in body[i : i + step + overlap].casefold()
               for i in range(0, len(body), step))


def _attached(part: BodyPart) -> list[BodyPart]:
    """The encapsulated messages anywhere inside ``part``, outermost first."""
    out: list[BodyPart] = []
    stack = [part]
    while stack:
        current = stack.pop()
        if current.message is not None:
            out.append(current.message)
            stack.append(current.message)
        stack.extend(reversed(current.parts))
    return out


@dataclass(slots=True)
class _Parsed:
    structure: BodyPart
    headers: dict[str, list[str]] = field(default_factory=dict)
    parts: dict[str, list[str]] = field(default_factory=dict)
    body: str | None = None
    header_text: str | None = None


class TextMatcher:
    """The Python side of ``imap_text`` and ``imap_sent``. Parsed structures and decoded
    texts are cached by content id (contents ids are never reused, contents never change),
    so several text keys on one message parse it once. Only ever called from the reader
    connection's thread."""

    def __init__(self, cache_size: int = 64) -> None:
        self._cache: OrderedDict[int, _Parsed] = OrderedDict()
        self._cache_size = cache_size

    def _parsed(self, content_id: int, structure: str) -> _Parsed:
        found = self._cache.get(content_id)
        if found is None:
            found = _Parsed(mime.structure_from_json(structure))
            self._cache[content_id] = found
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(content_id)
        return found

    def _header(self, p: _Parsed, raw: bytes, name: str) -> list[str]:
        key = name.lower()
        if key not in p.headers:
            p.headers[key] = [v.casefold() for v in mime.header_values(raw, p.structure, name)]
        return p.headers[key]

    def _body(self, p: _Parsed, raw: bytes) -> str:
        """Decoded text parts, plus the headers of attached messages (message/rfc822): they
        are part of this message's body (RFC 3501 §6.4.4 BODY). Case-folded when short;
        a long one stays as it is, for `_contains` to fold piece by piece."""
        if p.body is None:
            nested = [
                raw[m.header_start : m.body_start].decode("utf-8", "replace")
                for m in _attached(p.structure)
            ]
            body = "\n".join([mime.body_text(raw, p.structure), *nested])
            p.body = body.casefold() if len(body) <= mime.PIECE else body
        return p.body

    def _header_text(self, p: _Parsed, raw: bytes) -> str:
        if p.header_text is None:
            head = raw[p.structure.header_start : p.structure.body_start]
            decoded = [" ".join(self._header(p, raw, h)) for h in _TEXT_HEADERS]
            p.header_text = "\n".join([head.decode("utf-8", "replace").casefold(), *decoded])
        return p.header_text

    def text(
        self, content_id: int, raw: bytes, structure: str, key: str, header: str | None, value: str
    ) -> int:
        """SQL ``imap_text(id, raw, structure, key, header, value)`` -> 0 or 1."""
        try:
            return int(self._text(content_id, raw, structure, key, header, value.casefold()))
        except Exception:  # a broken message must not make the whole SEARCH fail
            log.exception("text search failed on content %s", content_id)
            return 0

    def _text(
        self, content_id: int, raw: bytes, structure: str, key: str, header: str | None, needle: str
    ) -> bool:
        p = self._parsed(content_id, structure)
        if key == "BODY":
            return _contains(self._body(p, raw), needle)
        if key == "TEXT":
            return needle in self._header_text(p, raw) or _contains(self._body(p, raw), needle)
        if key in STORED_KEYS:  # the same parts as the stored texts
            values = p.parts.get(key)
            if values is None:
                values = p.parts[key] = header_parts(raw, p.structure, key)
        else:
            values = self._header(p, raw, header if key == "HEADER" and header else key.title())
        if not needle:  # RFC 3501 §6.4.4 HEADER: an empty string matches any such field
            return bool(values)
        return any(needle in v for v in values)

    def sent(self, content_id: int, raw: bytes, structure: str, key: str, day: str) -> int:
        """SQL ``imap_sent(id, raw, structure, key, 'YYYY-MM-DD')`` -> 0 or 1: the Date
        header's date in its own zone (RFC 3501 §6.4.4), no match without a valid one."""
        try:
            p = self._parsed(content_id, structure)
            values = mime.header_values(raw, p.structure, "Date")
            if not values:
                return 0
            sent = email.utils.parsedate_to_datetime(values[0].strip()).date().isoformat()
        except (ValueError, TypeError, IndexError):
            return 0
        except Exception:
            log.exception("date search failed on content %s", content_id)
            return 0
        if key == "SENTBEFORE":
            return int(sent < day)
        if key == "SENTON":
            return int(sent == day)
        return int(sent >= day)
