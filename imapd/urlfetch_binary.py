"""URLFETCH's per-URL parameters, URLAUTH=BINARY (RFC 5524): BODY, BINARY, BODYPARTSTRUCTURE.
Pure functions over a URL and the `MessageRecord` (content and structure) it names.

Owns: checking a parameter list (RFC 5524 §3.1: each at most once, never BINARY with BODY;
other atoms are refused, since nothing else is defined) and the metadata of one URL, in the
order of the RFC's examples: ``(BODYPARTSTRUCTURE body)`` then ``(BINARY data)`` or
``(BODY data)``. BINARY is decoded by store/mime/transfer.py (through imapd/fetch_binary.py,
FETCH BINARY's rules: leaf parts decoded with CRLF line ends for text, the whole message and
composite parts as their own octets); data holding NUL goes out as a literal8 (RFC 5524 §5:
MUST). Decisions:
- BINARY of what cannot be decoded (a leaf part in an unknown encoding) is ``(BINARY NIL)``,
  as §3.2 allows. The whole message, a multipart or a message/rfc822 part are sent as BODY
  sends them (composites have identity encodings only, RFC 2045 §6.4), as Dovecot does.
- BODYPARTSTRUCTURE describes the data "as it has been returned" (§3.2): with a leaf part
  decoded, the encoding is the identity one its octets fit (``7BIT``, ``8BIT``, else
  ``BINARY``: RFC 2045 §2.7-2.9), the size and (text parts) the line count the decoded ones.
  It is the BODYSTRUCTURE form, with extension data (RFC 5524's ``body`` allows both; Dovecot
  and imaptest's urlauth-binary use this one).
- A URL whose section is not a part (``HEADER``, ``TEXT``, ``MIME``...) has no body structure
  and no decoding: BODYPARTSTRUCTURE or BINARY for it make the URL's answer NIL, as for any
  URL that cannot be served (§3.1); BODY alone serves any section.
- ``;PARTIAL=`` applies to the octets sent (after decoding, for BINARY).
"""

from __future__ import annotations

import dataclasses
from typing import Final

from imapd import fetch_binary
from imapd.fetch import render_bodystructure
from imapd.protocol.imapurl import ImapUrl
from imapd.protocol.responses import Atom, Literal8, Value
from imapd.protocol.values import FetchAtt, Section
from store.api import MessageRecord
from store.mime.sections import resolve_part

PARAMETERS: Final = frozenset({"BODY", "BINARY", "BODYPARTSTRUCTURE"})


def check_parameters(params: tuple[str, ...]) -> str | None:
    """Why this url-fetch-param list is not acceptable (a BAD's text), or None."""
    for p in params:
        if p not in PARAMETERS:
            return f"Unknown URLFETCH parameter {p}"
    if len(set(params)) != len(params):
        return "A URLFETCH parameter appears more than once (RFC 5524 3.1)"
    if "BINARY" in params and "BODY" in params:
        return "URLFETCH cannot take both BINARY and BODY (RFC 5524 3.1)"
    return None


def _partial(url: ImapUrl, data: bytes) -> bytes:
    if url.partial is None:
        return data
    origin, length = url.partial
    return data[origin:] if length is None else data[origin : origin + length]


def metadata(
    url: ImapUrl, record: MessageRecord, params: tuple[str, ...], body: bytes
) -> tuple[Value, ...] | None:
    """The url-metadata of one valid URL (``body``: its BODY[section]<partial> octets), or
    None when the URL's answer must be NIL (see the module's decisions)."""
    assert record.structure is not None and record.content is not None
    section = url.section_spec
    wants_part = "BINARY" in params or "BODYPARTSTRUCTURE" in params
    part = None
    if wants_part:
        if section.text is not None:
            return None
        part = resolve_part(record.structure, section.part) if section.part else record.structure
        if part is None:
            return None
    out: list[Value] = []
    binary: Value = None
    if "BINARY" in params:
        assert part is not None
        if fetch_binary.refusal(record, _binary_att(section)) is None:
            data = fetch_binary.decoded(record, Section(section.part))
            if section.part and fetch_binary.is_leaf(part):
                part = dataclasses.replace(
                    part, encoding=_identity(data), size=len(data), lines=data.count(b"\n")
                )
            data = _partial(url, data)
            binary = Literal8(data) if b"\x00" in data else data
    if "BODYPARTSTRUCTURE" in params:
        assert part is not None
        out.append((Atom("BODYPARTSTRUCTURE"), render_bodystructure(part, extensible=True)))
    if "BINARY" in params:
        out.append((Atom("BINARY"), binary))
    if "BODY" in params:
        out.append((Atom("BODY"), body))
    return tuple(out)


def _identity(data: bytes) -> str:
    """The identity encoding decoded octets fit: 7bit (US-ASCII, no NUL, CRLF lines of at
    most 998 octets), 8bit (no NUL, such lines), else binary (RFC 2045 §2.7-2.9)."""
    lines = data.split(b"\r\n")
    if b"\x00" in data or any(b"\r" in ln or b"\n" in ln or len(ln) > 998 for ln in lines):
        return "binary"
    return "7bit" if data.isascii() else "8bit"


def _binary_att(section: Section) -> tuple[FetchAtt, ...]:
    return (FetchAtt("BINARY", section=Section(section.part)),)
