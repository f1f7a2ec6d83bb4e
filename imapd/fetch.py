"""Rendering stored messages as FETCH data items (RFC 3501 §7.4.2). Pure functions.

Owns: ENVELOPE and BODY/BODYSTRUCTURE as response values, BODY[section]<partial> labels and
data, and the list of what a set of fetch attributes needs from the store. The MIME facts
come from `store.mime` (parsed once at APPEND); nothing here parses a message.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from imapd.protocol.responses import Atom, Untagged, Value
from imapd.protocol.values import FetchAtt, Section
from imapd.selected import SelectedView
from store.api import MessageRecord
from store.mime import Address, BodyPart, Envelope, section_bytes

#: Attributes that return message text and so set \Seen unless PEEK (RFC 3501 §6.4.5).
_SETS_SEEN = {"RFC822", "RFC822.TEXT"}


@dataclass(frozen=True, slots=True)
class Needs:
    content: bool
    structure: bool
    sets_seen: bool


def needs(atts: tuple[FetchAtt, ...]) -> Needs:
    content = structure = sets_seen = False
    for att in atts:
        if att.name == "RFC822" or (att.name == "BODY" and _whole(att.section)):
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
            structure = True
    return Needs(content, structure, sets_seen)


def _whole(section: Section | None) -> bool:
    return section is not None and not section.part and section.text is None


def imap_datetime(value: dt.datetime) -> str:
    """RFC 3501 date-time: "dd-Mon-yyyy hh:mm:ss +zzzz" (day space-padded)."""
    off = value.utcoffset() or dt.timedelta(0)
    minutes = int(off.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    month = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
             "Dec")[value.month - 1]
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
    assert record.content is not None
    section = att.section or Section()
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


def render_item(record: MessageRecord, att: FetchAtt) -> tuple[Value, Value]:
    """One (name, value) pair for every attribute except FLAGS, UID and MODSEQ, which need
    session state and are rendered by the FETCH handler."""
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
) -> Untagged:
    """``* seq FETCH (...)`` for ``record``: THE renderer of FETCH lines, for FETCH and for
    NOTIFY's MessageNew (``unsolicited``). (The FETCH (UID FLAGS ...) hot path renders the
    same bytes straight from rows: `imapd.commands.message._plain_fetch_lines`; tests
    compare both.) ``seen_now``: uid -> (flags, modseq) for the messages this FETCH just
    marked \\Seen. An unsolicited FETCH carries UID under QRESYNC (RFC 7162 §3.2.4) and
    MODSEQ under CONDSTORE (§3.1.4.1) and leaves the view's pending flag updates alone."""
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
                name, value = render_item(record, att)
                items += [name, value]
    if record.uid in seen_now and not flags_sent:
        # RFC 3501 §6.4.5: the implicit \Seen is reported as if FLAGS had been asked for.
        items += [Atom("FLAGS"), view.flags_with_recent(record.uid, flags)]
        flags_sent = True
    if unsolicited or (record.uid in seen_now and view.condstore):
        # RFC 7162 §3.2.4: a FETCH setting \Seen reports the UID and the new MODSEQ.
        names = set(items[::2])
        if "UID" not in names and (view.qresync if unsolicited else True):
            items += [Atom("UID"), record.uid]
        if "MODSEQ" not in names and view.condstore:
            items += [Atom("MODSEQ"), (modseq,)]
    if flags_sent and not unsolicited:
        view.forget_flag_update(record.uid)
    return Untagged((seq, Atom("FETCH"), tuple(items)))
