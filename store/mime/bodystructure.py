"""A parsed message as pure values: `BodyPart`, `Envelope`, `Address`, and their JSON.

Owns: the values store/mime/message.py computes once at APPEND (the BODYSTRUCTURE and ENVELOPE
data of RFC 3501 §7.4.2, with byte offsets into the raw message) and the compact JSON they
are stored as, per message, with an exact round trip. Knows nothing of IMAP wire syntax:
imapd/fetch.py renders these values. Stdlib only; imports nothing of imapd or notify.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Address:
    """RFC 3501 §7.4.2 address: a group start has host None and mailbox = group name; a group
    end has mailbox None and host None."""

    name: str | None
    adl: str | None
    mailbox: str | None
    host: str | None


@dataclass(frozen=True, slots=True)
class Envelope:
    """RFC 3501 §7.4.2 envelope. Strings are unfolded header values, RFC 2047 encoded words
    left encoded; ``sender`` and ``reply_to`` already default to ``from_``."""

    date: str | None
    subject: str | None
    from_: tuple[Address, ...]
    sender: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    in_reply_to: str | None
    message_id: str | None


@dataclass(frozen=True, slots=True)
class BodyPart:
    """One MIME entity. Offsets index the raw message: the header is
    ``raw[header_start:body_start]`` (including the blank line), the body
    ``raw[body_start:body_end]``. ``type``/``subtype`` are lower-case.

    ``envelope``: the top part of every message (the stored one and each encapsulated one in
    ``message``) carries its own Envelope; a message/rfc822 part *inside* a message carries
    its encapsulated message's (the same value as ``message.envelope``)."""

    type: str
    subtype: str
    params: tuple[tuple[str, str], ...]
    id: str | None
    description: str | None
    encoding: str
    size: int
    lines: int
    md5: str | None
    disposition: tuple[str, tuple[tuple[str, str], ...]] | None
    language: tuple[str, ...] | None
    location: str | None
    header_start: int
    body_start: int
    body_end: int
    parts: tuple[BodyPart, ...] = ()  # multipart/* children
    message: BodyPart | None = None  # message/rfc822 encapsulated message
    envelope: Envelope | None = None  # message/rfc822 (and the top level)

    def param(self, name: str) -> str | None:
        """The first Content-Type parameter called ``name`` (case-insensitive), or None."""
        name = name.lower()
        for key, value in self.params:
            if key == name:
                return value
        return None

    @property
    def is_multipart(self) -> bool:
        return self.type == "multipart"

    @property
    def is_message(self) -> bool:
        """A message/rfc822 part whose encapsulated message was parsed."""
        return self.type == "message" and self.subtype == "rfc822" and self.message is not None


# --------------------------------------------------------------------------------- JSON
#
# Stored per message, so compact: a BodyPart is a list, the always-present fields first, then
# envelope, message, parts and the rarer extension fields, so that trailing defaults are
# dropped (a plain leaf is 9 items). Parameters are flat [name, value, ...] lists; an Envelope
# is a list in field order with trailing defaults dropped and sender/reply-to written as 1
# when equal to from (the usual case); a message/rfc822 part's envelope is written as 1 when
# it is its message's envelope (always, when parsed). Every value decodes back exactly.

_SAME = 1
_PART_DEFAULTS: tuple[Any, ...] = (None, None, [], None, None, None, None, None, None)
_ENVELOPE_DEFAULTS: tuple[Any, ...] = (None, None, [], _SAME, _SAME, [], [], [], None, None)
_FIXED = 9  # type, subtype, params, encoding, size, lines, header_start, body_start, body_end


def _trimmed(items: list[Any], defaults: tuple[Any, ...], keep: int) -> list[Any]:
    """``items`` without the trailing run equal to their defaults; ``defaults`` aligns with
    ``items[keep:]``."""
    while len(items) > keep and items[-1] == defaults[len(items) - 1 - keep]:
        items.pop()
    return items


def _padded(items: list[Any], defaults: tuple[Any, ...], keep: int) -> list[Any]:
    return items + list(defaults[len(items) - keep :])


def _flat(params: tuple[tuple[str, str], ...]) -> list[str]:
    return [x for pair in params for x in pair]


def _pairs(flat: list[str]) -> tuple[tuple[str, str], ...]:
    return tuple(zip(flat[::2], flat[1::2], strict=True))


def _addrs_json(addrs: tuple[Address, ...]) -> list[list[str | None]]:
    return [[a.name, a.adl, a.mailbox, a.host] for a in addrs]


def _envelope_json(e: Envelope) -> list[Any]:
    items: list[Any] = [
        e.date,
        e.subject,
        _addrs_json(e.from_),
        _SAME if e.sender == e.from_ else _addrs_json(e.sender),
        _SAME if e.reply_to == e.from_ else _addrs_json(e.reply_to),
        _addrs_json(e.to),
        _addrs_json(e.cc),
        _addrs_json(e.bcc),
        e.in_reply_to,
        e.message_id,
    ]
    return _trimmed(items, _ENVELOPE_DEFAULTS, 0)


def _part_json(p: BodyPart) -> list[Any]:
    envelope: Any = None
    if p.envelope is not None:
        same = p.message is not None and p.message.envelope == p.envelope
        envelope = _SAME if same else _envelope_json(p.envelope)
    items: list[Any] = [
        p.type,
        p.subtype,
        _flat(p.params),
        p.encoding,
        p.size,
        p.lines,
        p.header_start,
        p.body_start,
        p.body_end,
        envelope,
        None if p.message is None else _part_json(p.message),
        [_part_json(c) for c in p.parts],
        p.id,
        p.description,
        p.md5,
        None if p.disposition is None else [p.disposition[0], _flat(p.disposition[1])],
        None if p.language is None else list(p.language),
        p.location,
    ]
    return _trimmed(items, _PART_DEFAULTS, _FIXED)


def structure_to_json(part: BodyPart) -> str:
    """Compact JSON for `part`; `structure_from_json` gives back an equal value."""
    return json.dumps(_part_json(part), ensure_ascii=False, separators=(",", ":"))


def _addrs_from(items: list[list[str | None]]) -> tuple[Address, ...]:
    return tuple(Address(*a) for a in items)


def _envelope_from(items: list[Any]) -> Envelope:
    e = _padded(items, _ENVELOPE_DEFAULTS, 0)
    from_ = _addrs_from(e[2])
    return Envelope(
        date=e[0],
        subject=e[1],
        from_=from_,
        sender=from_ if e[3] == _SAME else _addrs_from(e[3]),
        reply_to=from_ if e[4] == _SAME else _addrs_from(e[4]),
        to=_addrs_from(e[5]),
        cc=_addrs_from(e[6]),
        bcc=_addrs_from(e[7]),
        in_reply_to=e[8],
        message_id=e[9],
    )


def _part_from(items: list[Any]) -> BodyPart:
    v = _padded(items, _PART_DEFAULTS, _FIXED)
    message = None if v[10] is None else _part_from(v[10])
    envelope: Envelope | None = None
    if v[9] == _SAME and message is not None:
        envelope = message.envelope
    elif v[9] is not None:
        envelope = _envelope_from(v[9])
    return BodyPart(
        type=v[0],
        subtype=v[1],
        params=_pairs(v[2]),
        encoding=v[3],
        size=v[4],
        lines=v[5],
        header_start=v[6],
        body_start=v[7],
        body_end=v[8],
        envelope=envelope,
        message=message,
        parts=tuple(_part_from(c) for c in v[11]),
        id=v[12],
        description=v[13],
        md5=v[14],
        disposition=None if v[15] is None else (v[15][0], _pairs(v[15][1])),
        language=None if v[16] is None else tuple(v[16]),
        location=v[17],
    )


def structure_from_json(s: str) -> BodyPart:
    """The BodyPart that `structure_to_json` wrote as ``s``."""
    return _part_from(json.loads(s))


def envelope_from_json(s: str) -> Envelope:
    """The Envelope of a stored message read from its structure's envelope item alone
    (SQL ``structure -> '$[9]'``), without decoding the parts: SORT and THREAD read
    thousands. Raises ValueError for the shared-envelope marker (1): decode the structure."""
    items = json.loads(s)
    if not isinstance(items, list):
        raise ValueError("envelope item is a reference, not a list")
    return _envelope_from(items)
