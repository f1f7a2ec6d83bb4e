"""`SortRecord`: what SORT and THREAD read of one message, built from the stored envelope
(and, for THREAD=REFERENCES, the References header) without parsing the message again.

The per-content part (`ContentKeys`) depends only on the message's bytes, so the store
caches it by content id; the per-message part (UID, INTERNALDATE, size) comes with each
query. Strings used for ordering are already i;unicode-casemap keys (collation.py).
"""

from __future__ import annotations

import calendar
import email.utils
import re
from dataclasses import dataclass
from typing import Final, NamedTuple

from store.mime.bodystructure import Address, Envelope
from store.mime.headers import decode_words, first_values
from store.sortthread.collation import casemap
from store.sortthread.subject import base_subject

#: msg-id = "<" id-left "@" id-right ">" (RFC 5322 §3.6.4), with the quoted-string and
#: white space that obsolete forms allow inside: RFC 5256 §3 asks that quoting not matter.
_MSG_ID: Final = re.compile(r'<\s*("(?:[^"\\]|\\.)*"|[^<>"@\s]+)\s*@\s*([^<>@\s]+)\s*>')
_UNQUOTE: Final = re.compile(r"\\(.)")
_REFERENCES_FIELD: Final = re.compile(rb"(?<![^\n])(References)[ \t]*:", re.IGNORECASE)
#: A References header longer than this many ids keeps its last ones (a MUA truncates
#: them the same way; RFC 5256 §3 step 1.A allows for truncated headers). Bounds the cost
#: of one message's links.
MAX_REFERENCES: Final = 1000


@dataclass(frozen=True, slots=True)
class ContentKeys:
    """The sort and thread keys of one message's contents."""

    sent: int | None  # Date header as UTC epoch seconds (RFC 5256 §2.2); None: unusable
    subject: str  # casemap key of the base subject (RFC 5256 §2.1)
    reply: bool  # the base subject extraction removed a reply/forward marker
    from_: str  # casemap keys of the first address's addr-mailbox (RFC 5256 §3)
    to: str
    cc: str
    display_from: str  # casemap keys of the DISPLAY sort value (RFC 5957 §3, §4)
    display_to: str
    message_id: str | None  # normalized msg-id, None when absent or invalid
    references: tuple[str, ...] | None  # None: not read (only REFERENCES threading needs it)


class SortRecord(NamedTuple):
    """One message: its UID, INTERNALDATE (epoch seconds), RFC822.SIZE and content keys. A
    tuple: 10,000 are made per SORT that is not answered from the result cache."""

    uid: int
    arrival: int
    size: int
    keys: ContentKeys

    @property
    def sent(self) -> int:
        """The sent date of RFC 5256 §2.2: the Date header, else INTERNALDATE."""
        return self.arrival if self.keys.sent is None else self.keys.sent


def normalize_msg_id(match: re.Match[str]) -> str:
    left = match.group(1)
    if left.startswith('"'):
        left = _UNQUOTE.sub(r"\1", left[1:-1])
    return f"<{left}@{match.group(2)}>"


def first_msg_id(value: str | None) -> str | None:
    """The first valid msg-id in ``value``, normalized (RFC 5256 §3: quoting ignored)."""
    if not value:
        return None
    m = _MSG_ID.search(value)
    return None if m is None else normalize_msg_id(m)


def msg_ids(value: str) -> list[str]:
    """Every valid msg-id in ``value``, normalized, in order (the last `MAX_REFERENCES`)."""
    return [normalize_msg_id(m) for m in _MSG_ID.finditer(value)][-MAX_REFERENCES:]


def references_of(header: bytes | None, in_reply_to: str | None) -> tuple[str, ...]:
    """A message's references for RFC 5256 REFERENCES: the ids of its References field,
    else the first valid id of In-Reply-To, else none. ``header`` is the header block."""
    if header:
        value = first_values(header, 0, len(header), _REFERENCES_FIELD).get(b"references")
        if value:
            ids = msg_ids(value)
            if ids:
                return tuple(ids)
    parent = first_msg_id(in_reply_to)
    return () if parent is None else (parent,)


def sent_date(value: str | None) -> int | None:
    """The Date header as UTC epoch seconds (RFC 5256 §2.2): an invalid zone counts as UTC;
    None when no date can be read (the caller uses INTERNALDATE)."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return calendar.timegm(parsed[:9]) - (parsed[9] or 0)
    except (ValueError, TypeError, OverflowError, IndexError):
        return None


def _mailbox(addrs: tuple[Address, ...]) -> str:
    return casemap(addrs[0].mailbox or "") if addrs else ""


def _display(addrs: tuple[Address, ...]) -> str:
    """RFC 5957 §3: the decoded addr-name when not empty, else addr-mailbox@addr-host, else
    addr-mailbox, else the empty string; of the first address (§4)."""
    if not addrs:
        return ""
    a = addrs[0]
    if a.name is not None:
        name = decode_words(a.name)
        if name:
            return casemap(name)
    if a.mailbox is not None and a.host is not None:
        return casemap(f"{a.mailbox}@{a.host}")
    return casemap(a.mailbox or "")


def content_keys(envelope: Envelope | None, header: bytes | None, with_refs: bool) -> ContentKeys:
    """The keys of one message from its stored envelope; ``header`` (the header block) is
    read only when ``with_refs``."""
    if envelope is None:
        return ContentKeys(None, "", False, "", "", "", "", "", None, () if with_refs else None)
    subject, reply = base_subject(envelope.subject)
    return ContentKeys(
        sent=sent_date(envelope.date),
        subject=casemap(subject),
        reply=reply,
        from_=_mailbox(envelope.from_),
        to=_mailbox(envelope.to),
        cc=_mailbox(envelope.cc),
        display_from=_display(envelope.from_),
        display_to=_display(envelope.to),
        message_id=first_msg_id(envelope.message_id),
        references=references_of(header, envelope.in_reply_to) if with_refs else None,
    )
