"""SEARCH's text keys over one message, pure over its bytes and parsed structure: what
FROM, TO, CC, BCC, SUBJECT, HEADER, BODY, TEXT and the SENT* keys mean (RFC 3501 §6.4.4:
a case-insensitive substring of decoded text). Both backends ask these: SQLite as the SQL
functions ``imap_text``/``imap_sent`` and the content_search texts (store/sqlite/search.py),
PostgreSQL per message (store/postgres/search.py). Imports nothing of imapd or notify and
no database.
"""

from __future__ import annotations

import email.utils
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from store import mime
from store.mime import Address, BodyPart, Envelope
from store.mime.headers import decode_words, field_name, unfolded
from store.mime.sections import header_spans

log = logging.getLogger("store.search")

TEXT_KEYS = frozenset({"BCC", "BODY", "CC", "FROM", "HEADER", "SUBJECT", "TEXT", "TO"})
SENT_KEYS = frozenset({"SENTBEFORE", "SENTON", "SENTSINCE"})
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
    """The content_search texts of a message, in `STORED_KEYS` order, for APPEND: what
    `header_parts` gives for each key, with the header fields cut and named once for all
    five keys (one pass, not one per key: APPEND's CPU, issue 17)."""
    wanted: dict[bytes | None, str] = {k.lower().encode("ascii"): k for k in STORED_KEYS}
    values: dict[str, list[str]] = {key: [] for key in STORED_KEYS}
    for start, end in header_spans(raw, structure):
        key = wanted.get(field_name(raw, start, end))
        if key is not None:
            values[key].append(decode_words(unfolded(raw, start, end)).casefold())
    envelope = structure.envelope
    out: list[str] = []
    for key in STORED_KEYS:
        parts = values[key]
        addresses = _ENVELOPE.get(key)
        if addresses is not None and envelope is not None:
            text = mime.address_text(addresses(envelope))
            if text:
                parts.append(text.casefold())
        out.append("".join(_PART_SEP + p for p in parts))
    return tuple(out)


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
    return any(needle in body[i : i + step + overlap].casefold() for i in range(0, len(body), step))


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
            sent = sent_date(raw, self._parsed(content_id, structure).structure)
        except Exception:
            log.exception("date search failed on content %s", content_id)
            return 0
        if not sent:
            return 0
        if key == "SENTBEFORE":
            return int(sent < day)
        if key == "SENTON":
            return int(sent == day)
        return int(sent >= day)


def sent_date(raw: bytes, structure: BodyPart) -> str:
    """The date SENTBEFORE/SENTON/SENTSINCE compare: the first Date header's date in its
    own zone (RFC 3501 §6.4.4), 'YYYY-MM-DD'; '' without a valid one (no SENT* key matches
    it). Both stores decide by it: SQLite at SEARCH (`TextMatcher.sent`), PostgreSQL at
    APPEND into an indexed column (store/postgres/search.py). A message it cannot read
    (a bug: the failure is logged) has no valid Date either: SEARCH never fails on it."""
    try:
        values = mime.header_values(raw, structure, "Date")
        if not values:
            return ""
        return email.utils.parsedate_to_datetime(values[0].strip()).date().isoformat()
    except (ValueError, TypeError, IndexError, OverflowError):
        return ""
    except Exception:
        log.exception("the Date header could not be read")
        return ""


# --- issue 18: the text a prefilter index holds (store/postgres/trigram.py) -----------------
def index_text(raw: bytes, structure: BodyPart) -> str:
    """What a prefilter index holds of a message (store/postgres/trigram.py): every
    whitespace-separated piece of every text a text key can match, case-folded, each
    distinct piece once, joined by spaces. The invariant: whenever `TextMatcher.text` matches
    a non-empty needle, each of `index_pieces(needle)` is a substring of one piece here
    (a needle found in a text part has each of its whitespace-free runs inside one
    whitespace-free run of that part). The parts are those `TextMatcher._text` searches:
    the header block; a field's unfolded, RFC 2047-decoded value only where it can differ
    from the block by more than white space (encoded words, non-ASCII octets: `unfolded`
    only drops line breaks before white space and strips); the address texts of
    FROM/TO/CC/BCC; the body with attached messages' headers. Repeated pieces (the same
    address in three fields, a word said twice) are kept once, so the index's trigram
    extraction reads a shorter text (issue 18: APPEND's CPU on PostgreSQL). NUL, which
    PostgreSQL text cannot hold, becomes a space: an IMAP needle has none (RFC 3501 §4.3:
    CHAR8 excludes NUL)."""
    matcher = TextMatcher(cache_size=1)
    p = _Parsed(structure)
    head = raw[structure.header_start : structure.body_start]
    parts = [head.decode("utf-8", "replace")]
    for start, end in header_spans(raw, structure):
        field_bytes = raw[start:end]
        if b"=?" in field_bytes or not field_bytes.isascii():
            parts.append(decode_words(unfolded(raw, start, end)))
    envelope = structure.envelope
    if envelope is not None:
        parts.extend(mime.address_text(addresses(envelope)) for addresses in _ENVELOPE.values())
    parts.append(matcher._body(p, raw))
    text = "\n".join(parts).casefold().replace("\x00", " ")
    return " ".join(dict.fromkeys(text.split()))


def index_pieces(needle: str) -> list[str]:
    """The pieces of a needle `index_text` vouches for: its whitespace-free runs,
    case-folded, each once (none for a needle of white space only)."""
    return list(dict.fromkeys(needle.casefold().replace("\x00", " ").split()))
