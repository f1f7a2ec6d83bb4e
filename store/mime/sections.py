"""Sections of a stored message: the octets of ``BODY[<section>]``, cut by offsets.

Owns: resolving a part number in a parsed `BodyPart` tree (RFC 3501 §6.4.5) and slicing
the raw message for HEADER, HEADER.FIELDS[.NOT], TEXT and MIME. Octets are returned as
stored. Stdlib only; imports nothing of imapd or notify.
"""

from __future__ import annotations

import functools
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
#: for line-start + name misses it, so `_found_fields` leaves such blocks to `_picked`.
_ODD_STARTS = (b"\n\r", b"\n\x0b", b"\n\x0c")


def _found_fields(header: bytes, header_end: int, names: frozenset[bytes]) -> bytes | None:
    """The fields named (FETCH's common case) found by a search for each name at a line
    start instead of a Python step per header line, each hit then cut and checked as
    `field_spans` and `field_name` would; None for blocks where a field may start with
    whitespace (then the caller steps through the lines)."""
    block = header[:header_end]
    if block[:1].isspace() or any(odd in block for odd in _ODD_STARTS):
        return None
    low = b"\n" + block.lower()  # low[i] == b"\n" where a line starts at block[i]
    starts: set[int] = set()
    for wanted in names:
        needle = b"\n" + wanted.lower()
        i = low.find(needle)
        while i >= 0:
            starts.add(i)
            i = low.find(needle, i + 1)
    out: list[bytes] = []
    for start in sorted(starts):
        end = _field_end(block, start, header_end)
        name = field_name(block, start, end)
        if name is not None and name.upper() in names:
            chunk = block[start:end]
            out.append(chunk if chunk.endswith(b"\n") else chunk + b"\r\n")
    out.append(b"\r\n")
    return b"".join(out)


def _field_end(raw: bytes, start: int, end: int) -> int:
    """Where the field starting at ``start`` ends: after its last continuation line."""
    nl = raw.find(b"\n", start, end)
    pos = end if nl < 0 else nl + 1
    while pos < end and raw[pos] in (0x20, 0x09):
        nl = raw.find(b"\n", pos, end)
        pos = end if nl < 0 else nl + 1
    return pos


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
