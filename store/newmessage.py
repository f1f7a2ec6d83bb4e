"""A NewMessage made ready for any backend, outside its write lock (pure: no SQL).

Owns: what APPEND, delivery and import compute once per message before the transaction —
canonical flags, the INTERNALDATE (aware, whole seconds), the MIME parse and what the store
keeps of it (header length, structure JSON, Message-ID, the RFC 8970 preview) — and when
that parse should run in a worker thread. Each backend adds what only it stores (search
texts, pre-rendered answers).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from store import flags as flagrules
from store import mime
from store.api import NewMessage
from store.mime import BodyPart
from store.mime.preview import preview_text

# Parse MIME in a worker thread above this many bytes (small ones cost less than the hop).
# Parsing costs up to ~6 us per octet for hostile shapes (20,000 addresses in one To:,
# 6,000 parts), so 256 KiB held the event loop for over a second (issue 14); at 4 KiB the
# worst case on the loop is ~25 ms.
PARSE_IN_THREAD = 4 * 1024


def octets(content: bytes | Path) -> int:
    """The size of a message's content, in memory or spooled to a file."""
    return content.stat().st_size if isinstance(content, Path) else len(content)


def parse_off_loop(contents: Iterable[bytes | Path]) -> bool:
    """Whether parsing these contents belongs in a worker thread (`PARSE_IN_THREAD`)."""
    return sum(octets(c) for c in contents) > PARSE_IN_THREAD


@dataclass(frozen=True, slots=True)
class Parsed:
    """One message's facts, computed once: ``data`` is its octets (a spooled message is
    read whole, since the parser cuts by offsets), ``parsed`` the MIME tree."""

    data: bytes
    flags: tuple[str, ...]
    internaldate: dt.datetime
    parsed: BodyPart
    structure: str  # mime.structure_to_json(parsed)
    message_id: str | None
    preview: str = ""  # RFC 8970 PREVIEW text (store/mime/preview.py)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def seen(self) -> bool:
        return "\\Seen" in self.flags

    @property
    def deleted(self) -> bool:
        return "\\Deleted" in self.flags

    @property
    def header_len(self) -> int:
        return self.parsed.body_start


def internaldate(message: NewMessage, now: Callable[[], dt.datetime]) -> dt.datetime:
    """The INTERNALDATE ``message`` gets: its own, or ``now()`` (a naive date is taken as
    UTC), aware and in whole seconds."""
    when = message.internaldate or now()
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.replace(microsecond=0)


def parse(message: NewMessage, now: Callable[[], dt.datetime]) -> Parsed:
    """`Parsed` for ``message``; ``now`` dates a message that brings no INTERNALDATE (a
    naive date is taken as UTC)."""
    content = message.content
    data = content.read_bytes() if isinstance(content, Path) else content
    parsed = mime.parse_message(data)
    return Parsed(
        data=data,
        flags=flagrules.canonical_flags(message.flags),
        internaldate=internaldate(message, now),
        parsed=parsed,
        structure=mime.structure_to_json(parsed),
        message_id=mime.message_id(parsed),
        preview=preview_text(data, parsed),
    )
