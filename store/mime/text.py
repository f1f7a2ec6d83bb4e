"""Decoded text of a stored message, for SEARCH and the store's own columns.

Owns: header values unfolded and RFC 2047-decoded, the text of the text/* parts with their
transfer encoding and charset undone, addresses as searchable text (RFC 3501 §6.4.4), and
the Message-ID. Reads the parsed `BodyPart` and the raw bytes; never raises. Stdlib only;
imports nothing of imapd or notify.
"""

from __future__ import annotations

import binascii
import codecs
import re
from collections.abc import Iterable

from store.mime.bodystructure import Address, BodyPart
from store.mime.headers import decode_charset, decode_words, field_name, unfolded
from store.mime.sections import header_spans


def header_values(raw: bytes, structure: BodyPart, name: str) -> list[str]:
    """Every value of the header field ``name`` (any case) of the message, in order,
    unfolded and RFC 2047-decoded: for SEARCH HEADER, SUBJECT, FROM... (RFC 3501 §6.4.4)."""
    wanted = name.strip().lower().encode("utf-8")
    return [
        decode_words(unfolded(raw, start, end))
        for start, end in header_spans(raw, structure)
        if field_name(raw, start, end) == wanted
    ]


_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")


def _transfer_decoded(data: bytes, encoding: str) -> bytes:
    """``data`` with its Content-Transfer-Encoding undone (RFC 2045 §6), leniently."""
    if encoding == "BASE64":
        try:
            return binascii.a2b_base64(data)
        except binascii.Error:
            clean = _NOT_BASE64.sub(b"", data)
            clean = clean[: len(clean) - len(clean) % 4]
            try:
                return binascii.a2b_base64(clean)
            except binascii.Error:  # pragma: no cover - clean input always decodes
                return data
    if encoding == "QUOTED-PRINTABLE":
        return binascii.a2b_qp(data)
    return data


def body_text(raw: bytes, structure: BodyPart) -> str:
    """The decoded text of every text/* part (inside encapsulated messages too), joined by
    newlines: transfer encoding undone, charset decoded with replacement characters. For
    SEARCH BODY and TEXT (RFC 3501 §6.4.4); headers are `header_values`' business."""
    out: list[str] = []
    stack = [structure]
    while stack:
        part = stack.pop()
        if part.parts:
            stack.extend(reversed(part.parts))
        elif part.message is not None:
            stack.append(part.message)
        elif part.type == "text":
            data = _transfer_decoded(raw[part.body_start : part.body_end], part.encoding)
            out.append(_decode_in_pieces(data, part.param("charset") or ""))
    return "\n".join(out)


#: Text parts longer than this are decoded in pieces of this many octets (`body_text`).
PIECE = 1 << 20


def _decode_in_pieces(data: bytes, charset: str) -> str:
    """`decode_charset`, in pieces for a large part: one call over 30 MB holds the GIL for
    ~0.1 s, and the event loop thread waits for it at each socket operation (issue 14)."""
    if len(data) <= PIECE:
        return decode_charset(data, charset)
    cs = charset.strip().lower()
    if cs in ("", "us-ascii", "ascii"):
        cs = "utf-8"
    try:
        decoder = codecs.getincrementaldecoder(cs)("replace")
        decoder.decode(b"")
    except (LookupError, ValueError, TypeError):
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
    view = memoryview(data)
    try:
        pieces = [decoder.decode(view[i : i + PIECE]) for i in range(0, len(data), PIECE)]
        pieces.append(decoder.decode(b"", final=True))
    except (LookupError, ValueError):  # a codec that is not a text codec after all
        return decode_charset(data, charset)
    return "".join(pieces)


def address_text(addresses: Iterable[Address]) -> str:
    """Addresses as searchable text, display names decoded: ``Name <box@host>, group: ;``.
    SEARCH FROM/TO/CC/BCC match a substring of it, so both name and address match."""
    out: list[str] = []
    for a in addresses:
        if a.host is None:
            out.append(";" if a.mailbox is None else f"{decode_words(a.mailbox)}:")
            continue
        addr = f"{a.mailbox}@{a.host}"
        out.append(f"{decode_words(a.name)} <{addr}>" if a.name else addr)
    return ", ".join(out)


def message_id(structure: BodyPart) -> str | None:
    """The Message-ID of the message, as written (angle brackets included), or None."""
    if structure.envelope is None or structure.envelope.message_id is None:
        return None
    return structure.envelope.message_id.strip() or None
