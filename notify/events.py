"""Committed Changes -> RFC 5423 message-store events, as Cyrus IMAP groups and splits them.

Owns: which events a `store.changes.Change` yields, in which order, with which facts
(`Event`), and the filters Cyrus applies before sending (event groups, excluded flags,
excluded special-use mailboxes). Pure functions: no I/O, no clock, no JSON (that is
notify/cyrus.py). Must not import imapd.

Rules (docs/events.md "Which events a command yields" and "Order"):
- One event per command, one per message for APPEND and delivery (MessageAppend/MessageNew).
- COPY -> vnd.cmu.MessageCopy in the destination; MOVE -> vnd.cmu.MessageMove there, then
  MessageExpunge in the source (the store publishes the two Changes in that order).
- A STORE yields at most one "added" group and one FlagsClear. The added group is split:
  MessageTrash if ``\\Deleted`` was added, MessageRead if ``\\Seen`` was, FlagsSet with the
  other flags; all three share the uidset of every message that gained a flag. A
  FlagsClear that removes ``\\Seen`` goes before the added group.
- A non-PEEK body FETCH that sets ``\\Seen`` (FlagsChanged kind "fetch") -> MessageRead.
- ``modseq`` only when the event covers exactly one message (Cyrus also sends it for two:
  a bug we do not copy).
- SETACL/DELETEACL (AclChanged) -> AclChange: aclSubject, and aclRights with its ``+``/``-``
  modifier (none for DELETEACL), as extra parameters that cyrus.py slots into the order.
- QuotaChanged -> QuotaChange (kind "limits"), QuotaExceed ("exceeded"), QuotaWithin
  ("within"), ``user`` the root's owner, with all four quota keys (diskQuota and
  maxMessages -1 when unlimited, diskUsed in KiB truncated, messages) where Cyrus fills only
  those of the resource concerned and then aborts (docs/events.md).
- CalendarAlarmFired (store/sqlite/calendar.py) -> CalendarAlarm, group "calendar", one per
  alarm instance, ``user`` the calendar's owner (docs/calendar.md).
- UrlKeysReset (RESETKEY, RFC 4467 §7) -> nothing: it is in the change log only so that the
  user's sessions in every process learn of it (imapd/selected.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, assert_never

from store.changes import (
    AclChanged,
    ApplePushRegistered,
    CalendarAlarmFired,
    Change,
    Counts,
    FlagChange,
    FlagsChanged,
    MailboxCreated,
    MailboxDeleted,
    MailboxRef,
    MailboxRenamed,
    MessageFacts,
    MessagesAdded,
    MessagesExpunged,
    MetadataChanged,
    Origin,
    QuotaChanged,
    SessionEvent,
    SubscriptionChanged,
    UrlKeysReset,
)


class EventType(StrEnum):
    """Cyrus's exact event names (the value is the JSON ``event``)."""

    MessageAppend = "MessageAppend"
    MessageNew = "MessageNew"
    MessageCopy = "vnd.cmu.MessageCopy"
    MessageMove = "vnd.cmu.MessageMove"
    MessageExpunge = "MessageExpunge"
    MessageExpire = "MessageExpire"
    FlagsSet = "FlagsSet"
    FlagsClear = "FlagsClear"
    MessageRead = "MessageRead"
    MessageTrash = "MessageTrash"
    MailboxCreate = "MailboxCreate"
    MailboxDelete = "MailboxDelete"
    MailboxRename = "MailboxRename"
    MailboxSubscribe = "MailboxSubscribe"
    MailboxUnSubscribe = "MailboxUnSubscribe"
    AclChange = "AclChange"
    QuotaExceed = "QuotaExceed"
    QuotaWithin = "QuotaWithin"
    QuotaChange = "QuotaChange"
    Login = "Login"
    Logout = "Logout"
    CalendarAlarm = "CalendarAlarm"
    ApplePushService = "ApplePushService"


E = EventType

#: Cyrus's ``event_groups`` (lib/imapoptions): AclChange is in "mailbox" and "access".
GROUPS: dict[str, frozenset[EventType]] = {
    "message": frozenset(
        {
            E.MessageAppend,
            E.MessageExpire,
            E.MessageExpunge,
            E.MessageNew,
            E.MessageCopy,
            E.MessageMove,
        }
    ),
    "quota": frozenset({E.QuotaExceed, E.QuotaWithin, E.QuotaChange}),
    "flags": frozenset({E.FlagsSet, E.FlagsClear, E.MessageRead, E.MessageTrash}),
    "access": frozenset({E.Login, E.Logout, E.AclChange}),
    "mailbox": frozenset({E.MailboxCreate, E.MailboxDelete, E.MailboxRename, E.AclChange}),
    "subscription": frozenset({E.MailboxSubscribe, E.MailboxUnSubscribe}),
    "calendar": frozenset({E.CalendarAlarm}),
    "applepushservice": frozenset({E.ApplePushService}),
}
ALL_GROUPS: tuple[str, ...] = tuple(GROUPS)

MESSAGE_EVENTS = GROUPS["message"]
FLAG_EVENTS = GROUPS["flags"]
#: Events about messages of one mailbox: they carry counts, uidset, midset, modseq.
MAILBOX_CONTENT_EVENTS = MESSAGE_EVENTS | FLAG_EVENTS

#: RFC 3501 system flags in the order Cyrus lists them per message (docs/events.md).
_SYSTEM_ORDER = ("\\deleted", "\\answered", "\\flagged", "\\draft", "\\seen")


@dataclass(frozen=True, slots=True)
class Event:
    """One RFC 5423 event with the facts its parameters are made from.

    ``uids`` are the affected UIDs in ``mailbox`` (ascending), ``message_ids`` the
    Message-IDs in the same order (None: the message has none). ``modseq`` is set only for
    a single-message event. ``uid`` names the one message of MessageAppend/MessageNew.
    """

    type: EventType
    seq: int  # change_log.seq of the Change it came from
    at: dt.datetime
    origin: Origin
    user: str
    mailbox: MailboxRef | None = None
    old_mailbox: MailboxRef | None = None
    counts: Counts | None = None
    uids: tuple[int, ...] = ()
    old_uids: tuple[int, ...] = ()
    message_ids: tuple[str | None, ...] = ()
    modseq: int | None = None
    flags: tuple[str, ...] = ()
    message: MessageFacts | None = None  # MessageAppend / MessageNew
    subscription: str | None = None  # MailboxSubscribe / MailboxUnSubscribe: the name
    server: str | None = None  # Login / Logout: local "ip:port"
    aps: ApplePushRegistered | None = None
    extra: tuple[tuple[str, object], ...] = field(default=())  # later producers (quota, ACL)
    quota_root: str | None = None  # quota events: the mailbox their uri names
    alarm: CalendarAlarmFired | None = None  # CalendarAlarm: the example's keys

    @property
    def uid(self) -> int | None:
        return self.message.uid if self.message is not None else None


@dataclass(frozen=True, slots=True)
class Policy:
    """What Cyrus filters before sending: ``event_groups``, ``event_exclude_flags`` and
    ``event_exclude_specialuse`` ("ALL": only users' INBOXes report message/flag events)."""

    groups: frozenset[str] = frozenset(ALL_GROUPS)
    exclude_flags: frozenset[str] = frozenset()  # lower-cased
    exclude_specialuse: frozenset[str] = frozenset({"\\junk"})  # lower-cased
    #: The event types the groups enable, worked out once (`enabled` is asked per event).
    types: frozenset[EventType] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        types = frozenset(t for g in self.groups if g in GROUPS for t in GROUPS[g])
        object.__setattr__(self, "types", types)

    @classmethod
    def build(
        cls, groups: Iterable[str], exclude_flags: Iterable[str], exclude_specialuse: Iterable[str]
    ) -> Policy:
        return cls(
            frozenset(g.lower() for g in groups),
            frozenset(f.lower() for f in exclude_flags),
            frozenset(s.lower() for s in exclude_specialuse),
        )

    def enabled(self, event: EventType) -> bool:
        return event in self.types

    def mailbox_excluded(self, mailbox: MailboxRef) -> bool:
        if not self.exclude_specialuse:
            return False
        if "all" in self.exclude_specialuse:
            return mailbox.name != "INBOX"
        return any(u.lower() in self.exclude_specialuse for u in mailbox.special_use)


DEFAULT_POLICY = Policy()


def events_for(change: Change, policy: Policy = DEFAULT_POLICY) -> list[Event]:
    """The events of one Change, in the order Cyrus sends them, filtered by ``policy``.
    The filters are asked again only when the event type or mailbox changes from the event
    before (a MULTIAPPEND's events share both), not per event."""
    enabled = policy.types
    out: list[Event] = []
    kind: EventType | None = None
    mailbox: MailboxRef | None = None
    keep = False
    for e in _events(change, policy):
        if e.type is not kind or e.mailbox is not mailbox:  # the same objects: same verdict
            kind, mailbox = e.type, e.mailbox
            keep = kind in enabled and not (
                kind in MAILBOX_CONTENT_EVENTS
                and mailbox is not None
                and policy.mailbox_excluded(mailbox)
            )
        if keep:
            out.append(e)
    return out


def _actor(origin: Origin) -> str:
    return origin.user or ""


def _make(change: Change, kind: EventType, user: str, **facts: Any) -> Event:
    return Event(kind, change.seq, change.at, change.origin, user, **facts)


def _single(modseqs: Sequence[int]) -> int | None:
    return modseqs[0] if len(modseqs) == 1 else None


def _events(change: Change, policy: Policy) -> list[Event]:
    match change:
        case MessagesAdded():
            return _added(change)
        case MessagesExpunged():
            kind = E.MessageExpire if change.kind == "expire" else E.MessageExpunge
            msgs = change.messages
            return [
                _make(
                    change,
                    kind,
                    "" if change.kind == "expire" else _actor(change.origin),
                    mailbox=change.mailbox,
                    counts=change.counts,
                    uids=tuple(m.uid for m in msgs),
                    message_ids=tuple(m.message_id for m in msgs),
                    modseq=change.modseq if len(msgs) == 1 else None,
                )
            ]
        case FlagsChanged():
            return _flag_events(change, policy)
        case MailboxCreated():
            return [_make(change, E.MailboxCreate, _actor(change.origin), mailbox=change.mailbox)]
        case MailboxDeleted():
            return [_make(change, E.MailboxDelete, _actor(change.origin), mailbox=change.mailbox)]
        case MailboxRenamed():
            old, new = change.renames[0]  # one event for the named mailbox (docs/events.md)
            return [
                _make(change, E.MailboxRename, _actor(change.origin), mailbox=new, old_mailbox=old)
            ]
        case SubscriptionChanged():
            kind = E.MailboxSubscribe if change.subscribed else E.MailboxUnSubscribe
            return [_make(change, kind, change.user, subscription=change.name)]
        case SessionEvent():
            kind = E.Login if change.kind == "login" else E.Logout
            return [_make(change, kind, change.user, server=change.server)]
        case ApplePushRegistered():
            return [_make(change, E.ApplePushService, change.user, aps=change)]
        case MetadataChanged():
            return []  # Cyrus has no event for METADATA (docs/events.md)
        case AclChanged():
            # aclRights keeps its +/- modifier (a Cyrus bug not copied, docs/events.md);
            # DELETEACL has none (the key is absent, as in Cyrus).
            extra: tuple[tuple[str, object], ...] = (("aclSubject", change.subject),)
            if change.rights is not None:
                extra += (("aclRights", change.rights),)
            return [
                _make(
                    change, E.AclChange, _actor(change.origin), mailbox=change.mailbox, extra=extra
                )
            ]
        case QuotaChanged():
            return [_quota(change)]
        case CalendarAlarmFired():
            return [
                _make(change, E.CalendarAlarm, change.user, mailbox=change.mailbox, alarm=change)
            ]
        case UrlKeysReset():
            return []  # RESETKEY: RFC 5423 names no event for it
        case _:
            assert_never(change)


_QUOTA_KINDS = {"limits": E.QuotaChange, "exceeded": E.QuotaExceed, "within": E.QuotaWithin}


def _quota(change: QuotaChanged) -> Event:
    """A quota event. The uri names the root as the example files do: the owner's INBOX
    for a user's root (``imap://john@server/INBOX``), the root's name for a shared one."""
    storage = -1 if change.storage_limit is None else change.storage_limit
    messages = -1 if change.message_limit is None else change.message_limit
    extra: tuple[tuple[str, object], ...] = (
        ("diskQuota", storage),
        ("diskUsed", change.storage_used // 1024),
        ("maxMessages", messages),
        ("messages", change.messages_used),
    )
    return _make(
        change,
        _QUOTA_KINDS[change.kind],
        change.user,
        extra=extra,
        quota_root="INBOX" if change.user else change.root,
    )


def _added(change: MessagesAdded) -> list[Event]:
    msgs = change.messages
    if change.kind in {"copy", "move"}:
        kind = E.MessageMove if change.kind == "move" else E.MessageCopy
        return [
            _make(
                change,
                kind,
                _actor(change.origin),
                mailbox=change.mailbox,
                old_mailbox=change.source,
                counts=change.counts,
                uids=tuple(m.uid for m in msgs),
                old_uids=change.source_uids,
                message_ids=tuple(m.message_id for m in msgs),
                modseq=_single([m.modseq for m in msgs]),
            )
        ]
    # append / import -> MessageAppend (RFC 5423 §4.1: added by a store client; `imapd import`
    # acts for the owner, who is then the user); deliver -> MessageNew (user = recipient).
    kind = E.MessageNew if change.kind == "deliver" else E.MessageAppend
    for_owner = change.kind == "deliver" or (change.kind == "import" and not change.origin.user)
    user = change.mailbox.owner if for_owner else _actor(change.origin)
    seq, at, origin, mailbox, counts = (
        change.seq,
        change.at,
        change.origin,
        change.mailbox,
        change.counts,
    )
    return [  # one per message: what they share is looked up once (the sinks' hot path)
        Event(
            kind,
            seq,
            at,
            origin,
            user,
            mailbox,
            counts=counts,
            uids=(m.uid,),
            message_ids=(m.message_id,),
            modseq=m.modseq,
            flags=m.flags,
            message=m,
        )
        for m in msgs
    ]


def _system_rank(flag: str) -> int:
    low = flag.lower()
    return _SYSTEM_ORDER.index(low) if low in _SYSTEM_ORDER else len(_SYSTEM_ORDER)


def flag_union(per_message: Iterable[Sequence[str]], exclude: frozenset[str]) -> list[str]:
    """Cyrus's flagNames: per message system flags first (``\\Deleted \\Answered \\Flagged
    \\Draft \\Seen``), then keywords; the union in first-seen order, case-insensitively
    unique; excluded flags (lower-cased) and ``\\Recent`` left out (docs/events.md)."""
    out: list[str] = []
    seen: set[str] = set()
    for flags in per_message:
        for flag in sorted(flags, key=_system_rank):  # stable: keywords keep their order
            low = flag.lower()
            if low in seen or low in exclude or low == "\\recent":
                continue
            seen.add(low)
            out.append(flag)
    return out


def _flag_events(change: FlagsChanged, policy: Policy) -> list[Event]:
    exclude = policy.exclude_flags

    def group(kind: EventType, changes: Sequence[FlagChange], flags: Sequence[str]) -> Event:
        return Event(
            kind,
            seq=change.seq,
            at=change.at,
            origin=change.origin,
            user=_actor(change.origin),
            mailbox=change.mailbox,
            counts=change.counts,
            uids=tuple(c.uid for c in changes),
            message_ids=tuple(c.message_id for c in changes),
            modseq=_single([c.modseq for c in changes]),
            flags=tuple(flags),
        )

    def kept(flags: Sequence[str]) -> bool:
        return any(f.lower() not in exclude for f in flags)

    gained = [c for c in change.changes if kept(c.added)]
    lost = [c for c in change.changes if kept(c.removed)]
    if change.kind == "fetch":  # the implicit \Seen of a non-PEEK body FETCH
        read = [c for c in gained if any(f.lower() == "\\seen" for f in c.added)]
        return [group(E.MessageRead, read, ())] if read else []
    added_group: list[Event] = []
    if gained:
        added = flag_union((c.added for c in gained), exclude)
        lows = {f.lower() for f in added}
        if "\\deleted" in lows:
            added_group.append(group(E.MessageTrash, gained, ()))
        if "\\seen" in lows:
            added_group.append(group(E.MessageRead, gained, ()))
        rest = [f for f in added if f.lower() not in {"\\deleted", "\\seen"}]
        if rest:
            added_group.append(group(E.FlagsSet, gained, rest))
    if not lost:
        return added_group
    removed = flag_union((c.removed for c in lost), exclude)
    clear = group(E.FlagsClear, lost, removed)
    if any(f.lower() == "\\seen" for f in removed):
        return [clear, *added_group]  # unseenMessages reads naturally (docs/events.md "Order")
    return [*added_group, clear]
