"""MIME structure of a stored message, parsed once at APPEND, and section extraction.

Owns: `BodyPart` and `Envelope` (pure values with JSON round trip) and the functions that
compute them from raw bytes and cut sections out of raw bytes by offsets. Knows nothing of
IMAP wire syntax: imapd/fetch.py renders these values as ENVELOPE/BODYSTRUCTURE.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    ``raw[body_start:body_end]``. ``type``/``subtype`` are lower-case."""

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
