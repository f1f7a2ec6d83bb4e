"""FETCH BINARY[section]<partial>, BINARY.PEEK and BINARY.SIZE (RFC 3516, RFC 9051 §6.4.5,
§7.5.2). Pure functions over a `MessageRecord` with its content and structure.

Owns: which sections BINARY serves, their decoded octets (store/mime/transfer.py undoes the
Content-Transfer-Encoding), the CRLF rule for text parts, and the choice of ``~{n}``
(literal8) for decoded data holding NUL. imapd/fetch.py dispatches the two items here;
imapd/commands/message.py refuses the messages `refusal` names before rendering.

Decisions:
- BINARY is served for leaf parts only, as RFC 9051 §6.4.5 asks ("this data item can only be
  requested for leaf body parts": not multipart/*, message/rfc822, message/global). The
  whole message (``BINARY[]``, a message and not a leaf) and non-leaf parts are refused
  with ``NO [CANNOT]`` rather than sent undecoded under a name promising decoded data.
- A part number that names nothing is an empty string, as for BODY[] (and Dovecot).
- A part whose encoding is not one `decode_transfer` knows: ``NO [UNKNOWN-CTE]`` (RFC 3516
  §4.3, a MUST).
- text/* parts go out with CRLF line ends whatever the stored or decoded ones (RFC 9051
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
NOT_LEAF = ("CANNOT", "BINARY is only for leaf body parts (RFC 9051 6.4.5): use BODY[]")
UNKNOWN_CTE = ("UNKNOWN-CTE", "Cannot decode this part's Content-Transfer-Encoding")


def _part(record: MessageRecord, section: Section) -> BodyPart | None:
    assert record.structure is not None
    return resolve_part(record.structure, section.part)


def _is_leaf(part: BodyPart) -> bool:
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
            return NOT_LEAF
        part = _part(record, section)
        if part is None:
            continue  # nothing there: an empty string
        if not _is_leaf(part):
            return NOT_LEAF
        if part.encoding.lower() not in KNOWN:
            return UNKNOWN_CTE
    return None


def decoded(record: MessageRecord, section: Section) -> bytes:
    """The section's octets with its transfer encoding undone, CRLF line ends for text; an
    empty string for a part that does not exist. `refusal` said yes before."""
    assert record.content is not None
    part = _part(record, section)
    if part is None:
        return b""
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
