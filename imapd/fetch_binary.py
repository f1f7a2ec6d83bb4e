"""FETCH BINARY[section]<partial>, BINARY.PEEK and BINARY.SIZE (RFC 3516, RFC 9051 §6.4.5,
§7.5.2). Pure functions over a `MessageRecord` with its content and structure.

Owns: which sections BINARY serves, their decoded octets (store/mime/transfer.py undoes the
Content-Transfer-Encoding), the CRLF rule for text parts, and the choice of ``~{n}``
(literal8) for decoded data holding NUL. imapd/fetch.py dispatches the two items here;
imapd/commands/fetch.py refuses the messages `refusal` names before rendering.

Decisions:
- A leaf part (not multipart/*, message/rfc822, message/global) is decoded: base64 and
  quoted-printable undone, 7bit/8bit/binary as they are.
- The whole message (``BINARY[]``) and a non-leaf part (a multipart, an encapsulated message)
  are sent as BODY[] sends them. RFC 2045 §6.4 allows composite entities no transfer encoding
  but the identity ones (7bit, 8bit, binary), so "after Content-Transfer-Encoding-related
  decoding" (RFC 3516 §4.2) they are their own octets; the parts inside keep their own
  encodings, as Dovecot (and imaptest's fetch-binary-mime) answer. RFC 9051 §6.4.5 says
  clients request leaf parts only; answering the rest rather than refusing follows RFC 3516,
  whose grammar allows ``BINARY[]``.
- A part number that names nothing is an empty string, as for BODY[] (and Dovecot).
- A leaf part whose encoding is not one `decode_transfer` knows: ``NO [UNKNOWN-CTE]``
  (RFC 3516 §4.3, a MUST).
- text/* leaf parts go out with CRLF line ends whatever the stored or decoded ones (RFC 9051
  §7.5.2, RFC 3516 §6), and BINARY.SIZE counts what BINARY sends (a MUST).
"""

from __future__ import annotations

import re

from imapd.protocol.responses import Atom, Literal8, Value
from imapd.protocol.values import FetchAtt, Section
from store.api import MessageRecord
from store.mime import BodyPart
from store.mime.sections import resolve_part
from store.mime.transfer import KNOWN, decode_transfer

ITEMS = frozenset({"BINARY", "BINARY.SIZE"})

#: A line end of any kind (CRLF, bare LF, bare CR): text parts go out with CRLF.
_LINE_END = re.compile(rb"\r\n|\r|\n")

#: `refusal` answers: (response code, text).
UNKNOWN_CTE = ("UNKNOWN-CTE", "Cannot decode this part's Content-Transfer-Encoding")


def _part(record: MessageRecord, section: Section) -> BodyPart | None:
    assert record.structure is not None
    return resolve_part(record.structure, section.part)


def is_leaf(part: BodyPart) -> bool:
    """Not multipart/*, message/rfc822 or message/global (RFC 9051 §6.4.5's leaf parts)."""
    return not part.is_multipart and not (part.type == "message" and part.subtype in _MESSAGES)


_MESSAGES = frozenset({"rfc822", "global"})


def refusal(record: MessageRecord, atts: tuple[FetchAtt, ...]) -> tuple[str, str] | None:
    """Why this message's BINARY items cannot be served (code, text), or None when they
    can: decided from the structure alone, before anything is sent or marked \\Seen."""
    for att in atts:
        if att.name not in ITEMS:
            continue
        section = att.section or Section()
        if not section.part:
            continue  # the whole message: its own octets
        part = _part(record, section)
        if part is None or not is_leaf(part):
            continue  # nothing there (an empty string), or a composite's own octets
        if part.encoding.lower() not in KNOWN:
            return UNKNOWN_CTE
    return None


def decoded(record: MessageRecord, section: Section) -> bytes:
    """The section's octets with its transfer encoding undone, CRLF line ends for text; a
    composite's (or the whole message's) octets as BODY[] has them; an empty string for a
    part that does not exist. `refusal` said yes before."""
    assert record.content is not None
    if not section.part:
        return record.content
    part = _part(record, section)
    if part is None:
        return b""
    if not is_leaf(part):
        return record.content[part.body_start : part.body_end]
    data = decode_transfer(record.content[part.body_start : part.body_end], part.encoding)
    assert data is not None, "refusal() admits known encodings only"
    if part.type == "text" and (b"\n" in data or b"\r" in data):
        data = _LINE_END.sub(b"\r\n", data)
    return data


def label(att: FetchAtt) -> str:
    """BINARY[1.2]<5> or BINARY.SIZE[1.2]: the section-binary echoed in the response."""
    section = att.section or Section()
    spec = ".".join(str(n) for n in section.part)
    if att.name == "BINARY.SIZE":
        return f"BINARY.SIZE[{spec}]"
    origin = f"<{att.partial[0]}>" if att.partial is not None else ""
    return f"BINARY[{spec}]{origin}"


def render(record: MessageRecord, att: FetchAtt) -> tuple[Value, Value]:
    """One BINARY or BINARY.SIZE item: the decoded data as a literal, or as a literal8 when
    it holds NUL (RFC 3516 §4.3: the string form SHOULD be used otherwise); the size."""
    data = decoded(record, att.section or Section())
    if att.name == "BINARY.SIZE":
        return Atom(label(att)), len(data)
    if att.partial is not None:
        origin, count = att.partial
        data = data[origin : origin + count]
    return Atom(label(att)), Literal8(data) if b"\x00" in data else data
