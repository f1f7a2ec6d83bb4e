"""Committed-change values: what the store publishes after each COMMIT, in commit order.

Owns: the Change dataclasses and their JSON form in the ``change_log`` table (the outbox).
A Change carries every value a consumer needs, captured inside the transaction that made it
(UIDs, flags, modseqs, counts after the change, time, originating session), so that session
updates, NOTIFY responses and Cyrus event JSON are pure functions of it and never query back.
Imports nothing of imapd or notify.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, TypeAlias


@dataclass(frozen=True, slots=True)
class Origin:
    """Who made a change: the session id (None for CLI/expiry), user, service, client address."""

    session: str | None = None
    user: str | None = None
    service: str = "imap"  # imap | imaps | lmtp | cli | expire
    client: str | None = None  # "ip:port" or None


@dataclass(frozen=True, slots=True)
class MailboxRef:
    id: int
    owner: str  # the owning user's name
    name: str  # Unicode, "/" as hierarchy delimiter, "INBOX" for the inbox
    uidvalidity: int
    #: RFC 6154 attributes at commit (event_exclude_specialuse); not part of identity.
    special_use: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class Counts:
    """A mailbox's figures right after the change (what STATUS would say)."""

    messages: int
    unseen: int
    uidnext: int
    highestmodseq: int
    size: int  # total octets (STATUS=SIZE)
    deleted: int = 0


#: Field metadata: kept in memory, left out of the change_log payload (`to_json`).
_TRANSIENT = {"transient": True}


@dataclass(frozen=True, slots=True)
class MessageFacts:
    uid: int
    modseq: int
    flags: tuple[str, ...]
    size: int
    internaldate: dt.datetime
    message_id: str | None = None
    #: store.mime.structure_to_json of the message; set for appended/delivered messages
    #: only (the Cyrus events' envelope and bodyStructure).
    structure: str | None = field(default=None, compare=False)
    #: The shared contents row; set for expunged messages, so that a session not yet told
    #: of the expunge can still serve them while the contents exist (RFC 2180 §4.1.1), and
    #: for appended/delivered ones (their EMAILID, store/objectid.py, in the events).
    content_id: int | None = field(default=None, compare=False)
    #: FETCH's ENVELOPE/BODY/BODYSTRUCTURE as rendered at APPEND (`store.api.Prerender`),
    #: when the store made them: in memory only, never in change_log (``_TRANSIENT``), so
    #: a consumer of the published Change need not render again; one reading the log
    #: renders from ``structure``.
    wire: bytes | None = field(default=None, compare=False, repr=False, metadata=_TRANSIENT)


@dataclass(frozen=True, slots=True)
class FlagChange:
    uid: int
    modseq: int
    flags: tuple[str, ...]  # the full flag list after the change
    added: tuple[str, ...]  # flags that were really added to this message
    removed: tuple[str, ...]  # flags that were really removed from it
    message_id: str | None = field(default=None, compare=False)  # vnd.cmu.midset


@dataclass(frozen=True, slots=True)
class ChangeBase:
    seq: int  # change_log.seq: strictly increasing in commit order
    at: dt.datetime  # aware UTC time of the commit
    origin: Origin


@dataclass(frozen=True, slots=True)
class MessagesAdded(ChangeBase):
    """APPEND, delivery, COPY or MOVE target side. ``kind``: append|deliver|copy|move|import."""

    mailbox: MailboxRef
    counts: Counts
    messages: tuple[MessageFacts, ...]
    kind: str = "append"
    source: MailboxRef | None = None
    source_uids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class MessagesExpunged(ChangeBase):
    """EXPUNGE, MOVE source side, expiry. ``kind``: expunge|move|expire."""

    mailbox: MailboxRef
    counts: Counts
    messages: tuple[MessageFacts, ...]  # the messages as they were when removed
    modseq: int  # the mailbox modseq given to the expunge
    kind: str = "expunge"


@dataclass(frozen=True, slots=True)
class FlagsChanged(ChangeBase):
    """STORE, or the implicit \\Seen of a non-PEEK body fetch. Only really changed messages."""

    mailbox: MailboxRef
    counts: Counts
    changes: tuple[FlagChange, ...]
    kind: str = "store"  # store | fetch


@dataclass(frozen=True, slots=True)
class MailboxCreated(ChangeBase):
    mailbox: MailboxRef
    special_use: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MailboxDeleted(ChangeBase):
    mailbox: MailboxRef
    counts: Counts
    messages: tuple[MessageFacts, ...] = ()


@dataclass(frozen=True, slots=True)
class MailboxRenamed(ChangeBase):
    """One rename command: ``renames[0]`` is the named mailbox, the rest its children."""

    renames: tuple[tuple[MailboxRef, MailboxRef], ...]


@dataclass(frozen=True, slots=True)
class SubscriptionChanged(ChangeBase):
    user: str
    name: str
    subscribed: bool


@dataclass(frozen=True, slots=True)
class SessionEvent(ChangeBase):
    """A login or logout (RFC 5423 §4.4 access events); ``origin`` names the session.
    ``server`` is the local "ip:port" the client connected to."""

    user: str
    kind: str  # login | logout
    server: str | None = None


@dataclass(frozen=True, slots=True)
class MetadataChanged(ChangeBase):
    """SETMETADATA (RFC 5464): ``mailbox`` None for server entries. ``user`` is the
    mailbox owner (server entries: the user whose /private entry changed, or "" for
    /shared server entries)."""

    user: str
    mailbox: MailboxRef | None
    entries: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ApplePushRegistered(ChangeBase):
    """XAPPLEPUSHSERVICE registration (Cyrus's ApplePushService event)."""

    user: str
    aps_version: int
    account_id: str
    device_token: str
    subtopic: str
    mailboxes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AclChanged(ChangeBase):
    """SETACL or DELETEACL (RFC 4314 §3.1-3.2; Cyrus's AclChange event). ``subject`` is the
    identifier as stored (``-bob`` for negative rights); ``rights`` the SETACL argument as
    given, with its ``+``/``-`` modifier (canonical letters), None for DELETEACL; ``acl``
    the entry's rights after the change ("" when removed)."""

    mailbox: MailboxRef
    subject: str
    rights: str | None
    acl: str = ""


@dataclass(frozen=True, slots=True)
class QuotaChanged(ChangeBase):
    """A quota root's figures at a moment Cyrus reports (RFC 5423 §4.3; store/quota.py).
    ``kind``: "limits" (SETQUOTA or ``imapd quota set``), "exceeded" (an operation refused
    for quota; committed in its own transaction after the refused one rolled back, with the
    usage it found), "within" (usage fell back under a limit, or a limit was raised above
    it). ``user`` is the root's owner ("" for shared mailboxes); limits None = unlimited;
    ``storage_used`` in octets, ``storage_limit`` in KiB."""

    kind: str
    root: str
    user: str
    storage_limit: int | None
    storage_used: int
    message_limit: int | None
    messages_used: int  # not "messages": that key is MessageFacts in the change_log JSON


@dataclass(frozen=True, slots=True)
class CalendarAlarmFired(ChangeBase):
    """A VALARM instance fell due (Cyrus's CalendarAlarm; store/sqlite/calendar.py).
    ``mailbox``/``uid`` name the message holding the VEVENT, ``user`` the calendar's owner;
    the rest are the event's values as captured when it fired (notify/cyrus.py)."""

    user: str
    mailbox: MailboxRef
    uid: int
    alarm_time: str  # YYYYMMDDTHHMMSSZ
    recipients: tuple[str, ...]
    ical_uid: str
    action: str
    summary: str
    description: str
    location: str
    timezone: str
    start: str
    end: str
    all_day: bool
    attendee_names: tuple[str, ...]
    attendee_emails: tuple[str, ...]
    attendee_status: tuple[str, ...]
    organizer: str


@dataclass(frozen=True, slots=True)
class UrlKeysReset(ChangeBase):
    """RESETKEY (RFC 4467 §7): ``user``'s mailbox access key for ``mailbox_id`` was replaced,
    or, with ``mailbox_id`` None, all of that user's keys were removed. It carries no key
    (keys never reach the change log) and yields no RFC 5423 event (notify/events.py): it
    exists so that the user's sessions with the mailbox selected, in every process and
    instance, are told ``* OK [URLMECH INTERNAL]`` (imapd/selected.py)."""

    user: str
    mailbox_id: int | None


Change: TypeAlias = (
    MessagesAdded
    | MessagesExpunged
    | FlagsChanged
    | MailboxCreated
    | MailboxDeleted
    | MailboxRenamed
    | SubscriptionChanged
    | SessionEvent
    | MetadataChanged
    | ApplePushRegistered
    | AclChanged
    | QuotaChanged
    | CalendarAlarmFired
    | UrlKeysReset
)

CHANGE_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        MessagesAdded,
        MessagesExpunged,
        FlagsChanged,
        MailboxCreated,
        MailboxDeleted,
        MailboxRenamed,
        SubscriptionChanged,
        SessionEvent,
        MetadataChanged,
        ApplePushRegistered,
        AclChanged,
        QuotaChanged,
        CalendarAlarmFired,
        UrlKeysReset,
    )
}


def change_kind(change: Change) -> str:
    return type(change).__name__


#: Field names of each dataclass as change_log keeps them (no ``_TRANSIENT`` ones), in
#: declaration order: found once per class, not per value (`to_json` runs in every write).
_LOGGED: dict[type, tuple[str, ...]] = {}
_SCALARS = frozenset({str, int, bool, float, type(None)})


def _logged_fields(kind: type) -> tuple[str, ...]:
    names = _LOGGED.get(kind)
    if names is None:
        names = tuple(
            f.name for f in dataclasses.fields(kind) if not f.metadata.get("transient", False)
        )
        _LOGGED[kind] = names
    return names


def _encode(value: object) -> object:
    kind = type(value)
    if kind in _SCALARS:
        return value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: _encode(getattr(value, name)) for name in _logged_fields(kind)}
    return value


def to_json(change: Change) -> str:
    """The change_log payload (without ``seq``, which is the row key)."""
    body = {k: v for k, v in _encode(change).items() if k != "seq"}  # type: ignore[attr-defined]
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def _mailbox_ref(d: dict[str, Any]) -> MailboxRef:
    return MailboxRef(**{**d, "special_use": tuple(d.get("special_use", ()))})


_NESTED: dict[str, Any] = {
    "origin": lambda d: Origin(**d),
    "mailbox": _mailbox_ref,
    "source": _mailbox_ref,
    "counts": lambda d: Counts(**d),
}


def _decode_message(d: dict[str, Any]) -> MessageFacts:
    return MessageFacts(
        **{
            **d,
            "flags": tuple(d["flags"]),
            "internaldate": dt.datetime.fromisoformat(d["internaldate"]),
        }
    )


def read_change(kind: str, seq: int, payload: str) -> Change | None:
    """The Change of a change_log row, or None when this version cannot read it (a newer
    writer's kind or shape): every reader of the log steps over such a row, saying so."""
    try:
        return from_json(kind, seq, payload)
    except (KeyError, TypeError, ValueError):
        return None


def from_json(kind: str, seq: int, payload: str) -> Change:
    """Rebuild a Change from its change_log row."""
    cls = CHANGE_TYPES[kind]
    data: dict[str, Any] = json.loads(payload)
    out: dict[str, Any] = {"seq": seq}
    for key, value in data.items():
        if key == "at":
            out[key] = dt.datetime.fromisoformat(value)
        elif key in _NESTED and value is not None:
            out[key] = _NESTED[key](value)
        elif key == "messages":
            out[key] = tuple(_decode_message(m) for m in value)
        elif key == "changes":
            out[key] = tuple(
                FlagChange(
                    uid=c["uid"],
                    modseq=c["modseq"],
                    flags=tuple(c["flags"]),
                    added=tuple(c["added"]),
                    removed=tuple(c["removed"]),
                    message_id=c.get("message_id"),
                )
                for c in value
            )
        elif key == "renames":
            out[key] = tuple((_mailbox_ref(a), _mailbox_ref(b)) for a, b in value)
        elif isinstance(value, list):
            out[key] = tuple(value)
        else:
            out[key] = value
    return cls(**out)  # type: ignore[no-any-return]
