"""Sections of a stored message: the octets of ``BODY[<section>]``, cut by offsets.

Owns: resolving a part number in a parsed `BodyPart` tree (RFC 3501 §6.4.5) and slicing
the raw message for HEADER, HEADER.FIELDS[.NOT], TEXT and MIME. Octets are returned as
stored. Stdlib only; imports nothing of imapd or notify.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from store.mime.bodystructure import BodyPart
from store.mime.headers import field_name, field_spans, split_header


def _resolve(top: BodyPart, path: tuple[int, ...]) -> BodyPart | None:
    """The entity a part number names (RFC 3501 §6.4.5): a multipart's children count
    from 1; a message that is not multipart has only part 1, its body (the same entity);
    a number after a message/rfc822 part continues inside the encapsulated message. Other
    leaves have no subparts: ``1.1`` of a text part does not exist (Dovecot lets it mean
    ``1``; the RFC gives it no meaning)."""
    cur = top
    is_message = True  # cur is a message (top level or encapsulated), not yet its body
    for i, n in enumerate(path):
        if cur.is_multipart:
            if not 1 <= n <= len(cur.parts):
                return None
            cur = cur.parts[n - 1]
        elif not (is_message and n == 1):
            return None
        is_message = False
        if i + 1 < len(path) and cur.message is not None and cur.is_message:
            cur = cur.message
            is_message = True
    return cur


#: The entity a part number names, or None (public for BINARY: imapd/fetch_binary.py).
resolve_part = _resolve


def header_spans(raw: bytes, part: BodyPart) -> list[tuple[int, int]]:
    """The spans of ``part``'s header fields, as `field_spans` cuts them."""
    header_end, _ = split_header(raw, part.header_start, part.body_start)
    return field_spans(raw, part.header_start, header_end)


def _header_fields(raw: bytes, part: BodyPart, fields: Sequence[str], exclude: bool) -> bytes:
    """HEADER.FIELDS (or .NOT): the matching fields in message order, folding and line
    ends kept, then the empty line (RFC 3501 §6.4.5); a last field without a line end
    gets a CRLF."""
    return _picked(raw, header_spans(raw, part), fields, exclude)


def top_header_fields(header: bytes, fields: Sequence[str], exclude: bool) -> bytes:
    """HEADER.FIELDS[.NOT] of a message (no part number) from its header block alone, the
    message's first ``body_start`` octets (what the store keeps as ``header_len``): the
    same octets as `section_bytes` cuts from the whole message and its structure."""
    header_end, _ = split_header(header, 0, len(header))
    names = None if exclude else _names(tuple(fields))
    found = None if names is None else _found_fields(header, header_end, names)
    if found is None:
        return _picked(header, field_spans(header, 0, header_end), fields, exclude)
    return found


@functools.lru_cache(maxsize=64)
def _names(fields: tuple[str, ...]) -> frozenset[bytes] | None:
    """The upper-cased names `_found_fields` can look for; None when it cannot (none, an
    empty or non-ASCII one: case-folding would differ)."""
    names = frozenset(f.strip().upper().encode("utf-8") for f in fields)
    if not names or not all(n.isascii() and n for n in names):
        return None
    return names


#: A line starting with these is a field whose name `field_name` strips of them; a search
#: for line-start + name misses it, so `_found_fields` leaves such blocks to `_picked`
#: (it looks for these three by name: a loop over them cost more than the search).
_ODD_STARTS = (b"\n\r", b"\n\x0b", b"\n\x0c")


def _found_fields(header: bytes, header_end: int, names: frozenset[bytes]) -> bytes | None:
    """The fields named (FETCH's common case) cut by one regex search over the header
    block (`_fields_pattern`), exactly as `field_spans` and `field_name` cut and name
    them, without a Python step per line or per hit; None for blocks where a field may
    start with whitespace, or names the pattern cannot spell (then the caller steps
    through the lines)."""
    block = header[:header_end]
    if block[:1].isspace() or b"\n\r" in block or b"\n\x0b" in block or b"\n\x0c" in block:
        return None
    pattern = _fields_pattern(names)
    if pattern is None:
        return None
    # Every field then starts after a line end and ends before one: a last line without
    # its line end gets a CRLF, as `_picked` gives it.
    found = pattern.findall(b"\n" + block + (b"" if block.endswith(b"\n") else b"\r\n"))
    return b"\n".join(found) + b"\n\r\n" if found else b"\r\n"


#: A field name as RFC 5322 §3.6.8 spells it (printable ASCII but colon).
_FIELD_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+")


@functools.lru_cache(maxsize=64)
def _fields_pattern(names: frozenset[bytes]) -> re.Pattern[bytes] | None:
    """A field whose `field_name` is one of ``names`` (upper-case ASCII): after a line end,
    the name in any case, white space (a line end only before a continuation line) up to
    the field's first colon, then the rest of the field with its continuation lines, up
    to its last line end (not taken: the next field starts after it; the leading line end
    makes the search a scan for one octet). None when a name has other octets (white
    space, a colon)."""
    if not all(_FIELD_NAME.fullmatch(n) for n in names):
        return None
    alternatives = b"|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(
        rb"\n((?:" + alternatives + rb")(?:[ \t\r\x0b\x0c]|\n(?=[ \t]))*:[^\n]*(?:\n[ \t][^\n]*)*)",
        re.IGNORECASE,
    )


def _picked(
    raw: bytes, spans: list[tuple[int, int]], fields: Sequence[str], exclude: bool
) -> bytes:
    names = {f.strip().upper().encode("utf-8") for f in fields}
    out: list[bytes] = []
    for start, end in spans:
        name = field_name(raw, start, end)
        matched = name is not None and name.upper() in names
        if matched != exclude:
            chunk = raw[start:end]
            out.append(chunk if chunk.endswith(b"\n") else chunk + b"\r\n")
    out.append(b"\r\n")
    return b"".join(out)


def section_bytes(
    raw: bytes,
    structure: BodyPart,
    part: tuple[int, ...],
    text: str | None,
    fields: tuple[str, ...] = (),
) -> bytes | None:
    """The octets of ``BODY[<part>.<text> (<fields>)]`` (RFC 3501 §6.4.5).

    ``part`` is the part path (``()`` for the whole message); ``text`` is None, "HEADER",
    "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT" or "MIME" (any case); ``fields`` the
    header names of the HEADER.FIELDS forms. Returns None when the section does not
    exist: a part number out of range, HEADER/TEXT after a part that is not
    message/rfc822, MIME without a part number. IMAP has no error for these; Dovecot
    answers with an empty string, so should the caller (not NIL, which some clients
    mishandle). Octets are as stored: bare LF line ends are not converted."""
    spec = (text or "").upper()
    target = _resolve(structure, part) if part else structure
    if target is None:
        return None
    if not spec:
        if not part:
            return raw
        return raw[target.body_start : target.body_end]
    if spec == "MIME":
        if not part:
            return None
        return raw[target.header_start : target.body_start]
    if part:
        # RFC 3501 §6.4.5: HEADER, HEADER.FIELDS[.NOT] and TEXT after a part number
        # need a MESSAGE/RFC822 part and address its encapsulated message.
        if target.message is None or not target.is_message:
            return None
        target = target.message
    if spec == "HEADER":
        return raw[target.header_start : target.body_start]
    if spec == "TEXT":
        return raw[target.body_start : target.body_end]
    if spec in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        return _header_fields(raw, target, fields, spec.endswith(".NOT"))
    return None
