"""MIME structure of a stored message, parsed once at APPEND; the store's one MIME import.

Owns: `parse_message`, which computes a message's `BodyPart` tree (with its `Envelope`) from
raw bytes, and its limits. The rest lives in modules of its own, re-exported here so that
callers import only ``store.mime``:

- store/mime/bodystructure.py: `BodyPart`, `Envelope`, `Address` (pure values) and their JSON;
- store/mime/headers.py: header block scanning, MIME header values, RFC 2231, RFC 2047;
- store/mime/envelope.py: RFC 5322 address lists and the ENVELOPE of a header;
- store/mime/sections.py: the octets of ``BODY[<section>]``, cut out of raw bytes by offsets;
- store/mime/text.py: decoded text for SEARCH (header values, body text, addresses).

Knows nothing of IMAP wire syntax: imapd/fetch.py renders these values as
ENVELOPE/BODYSTRUCTURE. Pure functions, stdlib only; must not import imapd or notify.

How it parses. The stdlib ``email`` package gives no byte offsets and copies every body, so
the structure comes from our own scanner over ``bytes``: a header ends at the first empty line
(CRLF or bare LF), a multipart body is cut at lines ``--boundary`` (RFC 2046 §5.1.1), and each
part is parsed again inside its own span. Only header *values* are decoded to ``str``.
Nothing here raises on malformed input: every rule has a lenient fallback, chosen to match
what Dovecot does where the RFCs are silent:

- invalid or missing Content-Type: ``text/plain; charset=us-ascii`` (RFC 2045 §5.2), or
  ``message/rfc822`` inside multipart/digest (RFC 2046 §5.1.5); a multipart without a
  boundary parameter counts as invalid;
- a multipart whose body holds no delimiter line has no ``parts`` (imapd renders an empty
  text part, as Dovecot does); a missing close delimiter ends the last part at the end of
  its parent;
- a delimiter line is ``--boundary`` then optional ``--``, then optional blanks, then the
  line end; a longer line (``--boundary-2``) is content, so an inner boundary that extends
  the outer one works;
- nesting deeper than `MAX_DEPTH` or more than `MAX_PARTS` entities (limits as in Dovecot's
  message-parser): the container becomes one opaque ``application/octet-stream`` leaf.

Header values are decoded by store/mime/headers.py (why not ``email``: see there).

Decisions: ``type``, ``subtype``, parameter names and the disposition type are lower-cased
(all case-insensitive tokens, RFC 2045 §5.1, RFC 2183 §2); the renderer chooses the wire case.
``encoding`` is upper-cased. Parameter values are kept as written, except that RFC 2231
continuations and charsets are decoded (so ``filename*0*=...`` becomes ``filename``). Envelope
strings are unfolded but not RFC 2047-decoded (IMAP sends encoded words as they are). ``lines``
counts LF octets in the body, as Dovecot does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from store.mime.bodystructure import (
    Address,
    BodyPart,
    Envelope,
    structure_from_json,
    structure_to_json,
)
from store.mime.envelope import MISSING_DOMAIN, MISSING_MAILBOX, envelope_from_fields
from store.mime.headers import (
    CONTENT_FIELD,
    MESSAGE_FIELD,
    content_disposition,
    content_language,
    content_type,
    decode_words,
    first_values,
    split_header,
    transfer_encoding,
)
from store.mime.sections import section_bytes
from store.mime.text import PIECE, address_text, body_text, header_values, message_id

__all__ = [
    "MAX_DEPTH",
    "MAX_PARTS",
    "MISSING_DOMAIN",
    "MISSING_MAILBOX",
    "PIECE",
    "Address",
    "BodyPart",
    "Envelope",
    "address_text",
    "body_text",
    "decode_words",
    "header_values",
    "message_id",
    "parse_message",
    "section_bytes",
    "structure_from_json",
    "structure_to_json",
]

# Nesting of multipart and message/rfc822 containers; Dovecot allows 100
# (MESSAGE_PARSER_DEFAULT_MAX_NESTED_MIME_PARTS), 50 is plenty for real mail.
MAX_DEPTH = 50
# Entities per message (Dovecot: MESSAGE_PARSER_DEFAULT_MAX_TOTAL_MIME_PARTS = 10000); keeps
# the structure, and its JSON, bounded for a body made of delimiter lines.
MAX_PARTS = 10_000


# ------------------------------------------------------------------------- MIME parsing


@dataclass(slots=True)
class _Ctx:
    raw: bytes
    entities: int = 0


_DEFAULT_TEXT = ("text", "plain", (("charset", "us-ascii"),))
_DEFAULT_DIGEST: tuple[str, str, tuple[tuple[str, str], ...]] = ("message", "rfc822", ())


_BLANKS = re.compile(rb"[ \t]*")
# After this many lines that start like a delimiter but are not one, switch from bytes.find
# plus Python checks to a regex compiled for the boundary (not worth compiling for the
# usual handful of delimiters), so a body of near-delimiter lines stays at C speed.
_REJECTS_BEFORE_REGEX = 64


def _delimited(
    raw: bytes, start: int, end: int, boundary: bytes, budget: int
) -> list[tuple[int, int]]:
    """Spans of the body parts of a multipart body ``raw[start:end]`` (RFC 2046 §5.1.1): the
    line break before a delimiter belongs to it, so a part ends before that CRLF; at most
    ``budget`` spans, the last running to ``end`` when cut short or unclosed."""
    delim = b"--" + boundary
    nl_delim = b"\n" + delim
    spans: list[tuple[int, int]] = []
    part_start = -1
    rejects = 0
    finder: re.Pattern[bytes] | None = None
    if raw.startswith(delim, start, end):
        i = start
    else:
        i = raw.find(nl_delim, start, end)
        i = -1 if i < 0 else i + 1
    while i >= 0:
        j = i + len(delim)
        close = raw.startswith(b"--", j, end)
        if close:
            j += 2
        m = _BLANKS.match(raw, j, end)
        j = m.end() if m else j
        line_end = -1
        if j >= end:
            line_end = end
        elif raw[j] == 0x0A:
            line_end = j + 1
        elif raw[j] == 0x0D and (j + 1 == end or raw[j + 1] == 0x0A):
            line_end = min(j + 2, end)
        elif close:  # "--boundary--junk": still the close delimiter
            line_end = end
        if line_end >= 0:
            if part_start >= 0:
                stop = i - 1 if i > start else i
                if stop > part_start and raw[stop - 1] == 0x0D:
                    stop -= 1
                spans.append((part_start, max(part_start, stop)))
            if close:
                return spans
            part_start = line_end
            if len(spans) + 1 >= budget:
                break
        else:
            rejects += 1
            if rejects == _REJECTS_BEFORE_REGEX:
                finder = re.compile(re.escape(nl_delim) + rb"(?:--|[ \t]*(?:\n|\r\n|\r?\Z))")
        if finder is None:
            nxt = raw.find(nl_delim, i + 1, end)
        else:
            found = finder.search(raw, i + 1, end)
            nxt = -1 if found is None else found.start()
        i = -1 if nxt < 0 else nxt + 1
    if part_start >= 0:
        spans.append((part_start, end))
    return spans


def _entity(
    ctx: _Ctx, start: int, end: int, depth: int, in_digest: bool, is_message: bool
) -> BodyPart:
    """Parse the entity in ``raw[start:end]``, a whole message when ``is_message``."""
    raw = ctx.raw
    ctx.entities += 1
    header_end, body_start = split_header(raw, start, end)
    h = first_values(raw, start, header_end, MESSAGE_FIELD if is_message else CONTENT_FIELD)
    envelope = envelope_from_fields(h) if is_message else None
    ct_value = h.get(b"content-type")
    ct = content_type(ct_value) if ct_value is not None else None
    if ct is None:
        ct = _DEFAULT_DIGEST if in_digest else _DEFAULT_TEXT
    kind, sub, params = ct
    boundary = next((v for k, v in params if k == "boundary"), "") if kind == "multipart" else ""
    if kind == "multipart" and not boundary:
        kind, sub, params = _DEFAULT_TEXT  # RFC 2045 §5.2: invalid Content-Type
    container = kind == "multipart" or (kind == "message" and sub == "rfc822")
    if container and (depth >= MAX_DEPTH or ctx.entities >= MAX_PARTS):
        kind, sub = "application", "octet-stream"
        container = False
    parts: tuple[BodyPart, ...] = ()
    message: BodyPart | None = None
    if container and kind == "multipart":
        budget = MAX_PARTS - ctx.entities
        bspans = _delimited(
            raw, body_start, end, _boundary_bytes(boundary, raw, body_start, end), budget
        )
        parts = tuple(_entity(ctx, s, e, depth + 1, sub == "digest", False) for s, e in bspans)
    elif container:
        message = _entity(ctx, body_start, end, depth + 1, False, True)
    lines = raw.count(b"\n", body_start, end) if kind == "text" or message is not None else 0
    disposition = h.get(b"content-disposition")
    language = h.get(b"content-language")
    return BodyPart(
        type=kind,
        subtype=sub,
        params=params,
        id=h.get(b"content-id"),
        description=h.get(b"content-description"),
        encoding=transfer_encoding(h.get(b"content-transfer-encoding")),
        size=end - body_start,
        lines=lines,
        md5=h.get(b"content-md5"),
        disposition=content_disposition(disposition) if disposition is not None else None,
        language=content_language(language) if language is not None else None,
        location=h.get(b"content-location"),
        header_start=start,
        body_start=body_start,
        body_end=end,
        parts=parts,
        message=message,
        envelope=envelope if is_message else (message.envelope if message else None),
    )


def _boundary_bytes(boundary: str, raw: bytes, start: int, end: int) -> bytes:
    """The boundary as the bytes it was decoded from (header values are UTF-8 when valid,
    else Latin-1: `mime_headers`)."""
    if boundary.isascii():
        return boundary.encode("ascii")
    utf8 = boundary.encode("utf-8")
    try:
        latin1 = boundary.encode("latin-1")
    except UnicodeEncodeError:
        return utf8
    return utf8 if raw.find(b"--" + utf8, start, end) >= 0 else latin1


def parse_message(raw: bytes) -> BodyPart:
    """The structure of the RFC 5322 message ``raw``, with its `Envelope` on the top part.

    Never raises: garbage parses as some text/plain message. Linear in ``len(raw)`` times
    the nesting depth (bounded by `MAX_DEPTH`)."""
    return _entity(_Ctx(raw), 0, len(raw), 0, False, True)
