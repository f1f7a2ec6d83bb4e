"""Rendering stored messages as FETCH data items (RFC 3501 §7.4.2). Pure functions.

Owns: ENVELOPE and BODY/BODYSTRUCTURE as response values, BODY[section]<partial> labels and
data, and the list of what a set of fetch attributes needs from the store. The MIME facts
come from `store.mime` (parsed once at APPEND); nothing here parses a message.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

from imapd import fetch_binary
from imapd import fetch_wire as wire
from imapd.objectid import objectid_value
from imapd.protocol.responses import Atom, Raw, Untagged, Value
from imapd.protocol.serializer import BIG_LITERAL, serialize_value
from imapd.protocol.values import FetchAtt, Section
from imapd.selected import SelectedView
from store.api import MessageRecord
from store.mime import Address, BodyPart, Envelope, section_bytes
from store.mime.sections import top_header_fields

#: Attributes that return message text and so set \Seen unless PEEK (RFC 3501 §6.4.5).
_SETS_SEEN = {"RFC822", "RFC822.TEXT"}


@dataclass(frozen=True, slots=True)
class Needs:
    content: bool
    structure: bool
    sets_seen: bool
    #: ENVELOPE, BODY, BODYSTRUCTURE: the bytes pre-rendered at APPEND (imapd/fetch_wire.py).
    wire: bool = False
    #: Only the header block (HEADER, HEADER.FIELDS[.NOT] without a part number).
    header: bool = False


#: Sections of the top-level header, cut from the header block alone (`top_header`).
_HEADER_TEXTS = {"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT"}


def top_header(att: FetchAtt) -> bool:
    """BODY[HEADER], BODY[HEADER.FIELDS[.NOT] (...)] and RFC822.HEADER: answered from the
    message's header block (`MessageRecord.header`), without its body or structure."""
    if att.name == "RFC822.HEADER":
        return True
    section = att.section
    return (
        att.name == "BODY"
        and section is not None
        and not section.part
        and (section.text or "").upper() in _HEADER_TEXTS
    )


def needs(atts: tuple[FetchAtt, ...]) -> Needs:
    content = structure = sets_seen = wire = header = False
    for att in atts:
        if top_header(att):
            header = True
            sets_seen = sets_seen or (att.name == "BODY" and not att.peek)
        elif att.name == "RFC822" or (att.name == "BODY" and _whole(att.section)):
            # The whole message is a slice of the raw bytes: no structure needed.
            content = True
            sets_seen = sets_seen or not att.peek
        elif att.name in {"RFC822.HEADER", "RFC822.TEXT", "BINARY", "BINARY.SIZE"} or (
            att.name == "BODY" and att.section is not None
        ):
            content = structure = True
            if att.name in _SETS_SEEN or (att.name in {"BODY", "BINARY"} and not att.peek):
                sets_seen = True
        elif att.name in {"ENVELOPE", "BODYSTRUCTURE", "BODY"}:
            wire = True
    return Needs(content, structure, sets_seen, wire, header)


def _whole(section: Section | None) -> bool:
    return section is not None and not section.part and section.text is None


def imap_datetime(value: dt.datetime) -> str:
    """RFC 3501 date-time: "dd-Mon-yyyy hh:mm:ss +zzzz" (day space-padded)."""
    off = value.utcoffset() or dt.timedelta(0)
    minutes = int(off.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    month = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")[
        value.month - 1
    ]
    return (
        f"{value.day:2d}-{month}-{value.year:04d} {value.hour:02d}:{value.minute:02d}:"
        f"{value.second:02d} {sign}{minutes // 60:02d}{minutes % 60:02d}"
    )


def _addresses(addrs: tuple[Address, ...]) -> Value:
    if not addrs:
        return None
    return tuple((a.name, a.adl, a.mailbox, a.host) for a in addrs)


def render_envelope(env: Envelope | None) -> Value:
    if env is None:
        return (None, None, None, None, None, None, None, None, None, None)
    from_ = _addresses(env.from_)
    return (
        env.date,
        env.subject,
        from_,
        _addresses(env.sender) if env.sender else from_,
        _addresses(env.reply_to) if env.reply_to else from_,
        _addresses(env.to),
        _addresses(env.cc),
        _addresses(env.bcc),
        env.in_reply_to,
        env.message_id,
    )


def _params(params: tuple[tuple[str, str], ...]) -> Value:
    if not params:
        return None
    out: list[Value] = []
    for k, v in params:
        out += [k.upper(), v]
    return tuple(out)


def render_bodystructure(part: BodyPart, *, extensible: bool) -> Value:
    """BODYSTRUCTURE (``extensible``) or BODY: RFC 3501 §7.4.2."""
    if part.type == "multipart":
        items: list[Value] = [render_bodystructure(p, extensible=extensible) for p in part.parts]
        if not items:
            # A multipart without parts is sent as an empty text part (as Dovecot does):
            # IMAP's grammar needs at least one body.
            items = [("TEXT", "PLAIN", ("CHARSET", "US-ASCII"), None, None, "7BIT", 0, 0)]
        items.append(part.subtype.upper())
        if extensible:
            items += [_params(part.params), _disposition(part), _language(part), part.location]
        return tuple(items)
    body: list[Value] = [
        part.type.upper(),
        part.subtype.upper(),
        _params(part.params),
        part.id,
        part.description,
        part.encoding.upper(),
        part.size,
    ]
    if part.type == "message" and part.subtype == "rfc822" and part.message is not None:
        body += [
            render_envelope(part.message.envelope or part.envelope),
            render_bodystructure(part.message, extensible=extensible),
            part.lines,
        ]
    elif part.type == "text":
        body.append(part.lines)
    if extensible:
        body += [part.md5, _disposition(part), _language(part), part.location]
    return tuple(body)


def _disposition(part: BodyPart) -> Value:
    if part.disposition is None:
        return None
    kind, params = part.disposition
    return (kind.upper(), _params(params))


def _language(part: BodyPart) -> Value:
    if not part.language:
        return None
    if len(part.language) == 1:
        return part.language[0]
    return tuple(part.language)


def section_label(att: FetchAtt) -> str:
    """The item name echoed in the response: BODY[1.HEADER.FIELDS (FROM)]<0>."""
    section = att.section or Section()
    spec = ".".join(str(n) for n in section.part)
    if section.text:
        spec = f"{spec}.{section.text}" if spec else section.text
        if section.fields:
            spec += " (" + " ".join(section.fields) + ")"
    name = "BINARY" if att.name == "BINARY" else "BODY"
    label = f"{name}[{spec}]"
    if att.partial is not None:
        label += f"<{att.partial[0]}>"
    return label


def section_data(record: MessageRecord, att: FetchAtt) -> bytes:
    """A section that does not exist is an empty string, as Dovecot answers."""
    section = att.section or Section()
    if (
        record.header is not None
        and (section.text or "").upper() in _HEADER_TEXTS
        and (not section.part)
    ):
        text = (section.text or "").upper()
        if text == "HEADER":
            data = record.header
        else:
            data = top_header_fields(record.header, section.fields, text.endswith(".NOT"))
        if att.partial is not None:
            origin, count = att.partial
            data = data[origin : origin + count]
        return data
    assert record.content is not None
    if _whole(section):
        data = record.content
    else:
        assert record.structure is not None
        found = section_bytes(
            record.content, record.structure, section.part, section.text, section.fields
        )
        if found is None:
            return b""
        data = found
    if att.partial is not None:
        origin, count = att.partial
        data = data[origin : origin + count]
    return data


def render_item(record: MessageRecord, att: FetchAtt, utf8: bool = False) -> tuple[Value, Value]:
    """One (name, value) pair for every attribute except FLAGS, UID and MODSEQ, which need
    session state and are rendered by the FETCH handler. ENVELOPE, BODY and BODYSTRUCTURE
    come pre-rendered when the record has them (`MessageRecord.wire`, for a session with
    UTF8=ACCEPT enabled or not: ``utf8``)."""
    if record.wire is not None and att.name in wire.ITEMS and att.section is None:
        return Atom(att.name), Raw(wire.piece(record.wire, att.name, utf8))
    match att.name:
        case "ENVELOPE":
            env = record.structure.envelope if record.structure else None
            return Atom("ENVELOPE"), render_envelope(env)
        case "INTERNALDATE":
            return Atom("INTERNALDATE"), imap_datetime(record.internaldate)
        case "RFC822.SIZE":
            return Atom("RFC822.SIZE"), record.size
        case "SAVEDATE":
            saved = record.savedate
            return Atom("SAVEDATE"), imap_datetime(saved) if saved else None
        case "EMAILID" | "THREADID":  # RFC 8474 §5 (store/objectid.py: THREADID is NIL)
            return Atom(att.name), objectid_value(record, att.name)
        case "BODYSTRUCTURE" | "BODY" if att.section is None:
            assert record.structure is not None
            extensible = att.name == "BODYSTRUCTURE"
            return Atom(att.name), render_bodystructure(record.structure, extensible=extensible)
        case "RFC822":
            assert record.content is not None
            return Atom("RFC822"), record.content
        case "RFC822.HEADER":
            data = section_data(record, FetchAtt("BODY", Section((), "HEADER")))
            return Atom("RFC822.HEADER"), data
        case "RFC822.TEXT":
            data = section_data(record, FetchAtt("BODY", Section((), "TEXT")))
            return Atom("RFC822.TEXT"), data
        case "BINARY" | "BINARY.SIZE":  # RFC 3516 (imapd/fetch_binary.py)
            return fetch_binary.render(record, att)
        case "PREVIEW":  # RFC 8970 §3.2: NIL only under LAZY; "" when nothing can be shown
            preview = record.preview
            return Atom("PREVIEW"), preview if preview is not None or att.lazy else ""
        case _:
            return Atom(section_label(att)), section_data(record, att)


def fetch_response(
    view: SelectedView,
    seq: int,
    record: MessageRecord,
    atts: tuple[FetchAtt, ...],
    seen_now: dict[int, tuple[tuple[str, ...], int]] | None = None,
    *,
    unsolicited: bool = False,
    utf8: bool = False,
) -> Untagged:
    """``* seq FETCH (...)`` for ``record``: THE renderer of FETCH lines, for FETCH and for
    NOTIFY's MessageNew (``unsolicited``). (The FETCH (UID FLAGS ...) hot path renders the
    same bytes straight from rows: `imapd.commands.fetch._plain_fetch_lines`; tests
    compare both.) ``seen_now``: uid -> (flags, modseq) for the messages this FETCH just
    marked \\Seen. An unsolicited FETCH carries UID under QRESYNC (RFC 7162 §3.2.4) and
    MODSEQ under CONDSTORE (§3.1.4.1) and leaves the view's pending flag updates alone.
    ``utf8``: the session enabled UTF8=ACCEPT (picks the pre-rendered bytes to splice)."""
    seen_now = seen_now or {}
    flags, modseq = seen_now.get(record.uid, (record.flags, record.modseq))
    items: list[Value] = []
    flags_sent = False
    for att in atts:
        match att.name:
            case "UID":
                items += [Atom("UID"), record.uid]
            case "FLAGS":
                items += [Atom("FLAGS"), view.flags_with_recent(record.uid, flags)]
                flags_sent = True
            case "MODSEQ":
                items += [Atom("MODSEQ"), (modseq,)]
            case _:
                name, value = render_item(record, att, utf8)
                items += [name, value]
    if record.uid in seen_now and not flags_sent:
        # RFC 3501 §6.4.5: the implicit \Seen is reported as if FLAGS had been asked for.
        items += [Atom("FLAGS"), view.flags_with_recent(record.uid, flags)]
        flags_sent = True
    if unsolicited or (record.uid in seen_now and view.condstore):
        # RFC 7162 §3.2.4: a FETCH setting \Seen reports the UID and the new MODSEQ.
        names = set(items[::2])
        # RFC 9051 §7.5.2 (Appendix E item 21): an unsolicited FETCH always carries UID.
        if "UID" not in names and (view.qresync or view.rev2 if unsolicited else True):
            items += [Atom("UID"), record.uid]
        if "MODSEQ" not in names and view.condstore:
            items += [Atom("MODSEQ"), (modseq,)]
    if flags_sent and not unsolicited:
        view.forget_flag_update(record.uid)
    return Untagged((*view.fetch_head(seq, record.uid), tuple(items)))  # RFC 9586 §3.3


def fetch_line(
    view: SelectedView, seq: int, record: MessageRecord, atts: tuple[FetchAtt, ...], utf8: bool
) -> bytes | None:
    """`fetch_response` serialised, for a FETCH that did not just set this message's \\Seen
    (``seen_now``) and is not unsolicited: the same bytes (tests compare both), without
    the Value tree for what is plain or pre-rendered. An Untagged response serialises as
    its items' values joined by spaces, so every other item is serialised alone, as it
    would be inside the tree. None for a message with a big literal (BODY[] of a big
    message): `fetch_response` then, whose literals `serialize_pieces` leaves uncopied."""
    if record.content is not None and len(record.content) >= BIG_LITERAL:
        return None
    parts: list[bytes] = []
    flags_sent = False
    for att in atts:
        name = att.name
        if name == "UID":
            parts.append(b"UID %d" % record.uid)
        elif name == "FLAGS":
            flags = view.flags_with_recent(record.uid, record.flags)
            parts.append(b"FLAGS " + serialize_value(flags, utf8=utf8))
            flags_sent = True
        elif name == "MODSEQ":
            parts.append(b"MODSEQ (%d)" % record.modseq)
        elif name == "RFC822.SIZE":
            parts.append(b"RFC822.SIZE %d" % record.size)
        elif name == "INTERNALDATE":  # digits, letters, spaces, +, -, colons: quoted as is
            when = record.internaldate
            parts.append(_internaldate_item(when, when.utcoffset()))
        elif record.wire is not None and name in wire.ITEMS and att.section is None:
            parts.append(name.encode() + b" " + wire.piece(record.wire, name, utf8))
        else:
            item, value = render_item(record, att, utf8)
            parts.append(
                serialize_value(item, utf8=utf8) + b" " + serialize_value(value, utf8=utf8)
            )
    if flags_sent:
        view.forget_flag_update(record.uid)
    if view.uidonly:  # RFC 9586 §3.3
        return b"* %d UIDFETCH (%s)\r\n" % (record.uid, b" ".join(parts))
    return b"* %d FETCH (%s)\r\n" % (seq, b" ".join(parts))


@functools.lru_cache(maxsize=4096)
def _internaldate_item(value: dt.datetime, offset: dt.timedelta | None) -> bytes:
    """``offset`` is part of the key: equal instants in other zones render otherwise."""
    return b'INTERNALDATE "%s"' % imap_datetime(value).encode()


def prerender(structure: BodyPart) -> bytes:
    """ENVELOPE, BODY and BODYSTRUCTURE of a message parsed into ``structure``, serialised
    for FETCH (`store.api.Prerender`: the store calls this at APPEND, off the event loop for
    big messages, as it parses them); laid out by `imapd.fetch_wire`."""
    values = (
        render_envelope(structure.envelope),
        render_bodystructure(structure, extensible=False),
        render_bodystructure(structure, extensible=True),
    )
    plain = [serialize_value(v, utf8=False) for v in values]
    # All-ASCII output had only ASCII strings, which UTF8=ACCEPT serialises alike (these
    # values hold no mailbox names): the usual message costs one serialisation, not two.
    if all(p.isascii() for p in plain):
        return wire.pack(plain, plain)
    return wire.pack(plain, [serialize_value(v, utf8=True) for v in values])
