"""The in-process event bus: committed changes -> each interested session's Subscription.

Owns: routing of `store.changes.Change` values to subscriptions, and the bounded per-session
queue with its wake-up callback. `publish` is handed to the store and called after each COMMIT, in
commit order, still under the store's writer lock: it must never block or await, so it only
appends to lists and calls wake-ups. Must not import imapd.

Routing is by mailbox id (a session's selected mailbox) and by user name (whole-account
listeners such as NOTIFY and the IDLE of a session with nothing selected). The user name is
the mailbox *owner's* (shared mailboxes: the pseudo-owner "", whom no session is): a change
to alice's mailbox made by bob reaches alice's listeners, never bob's, so a whole-account
listener only hears of its own mailboxes. A session hears of someone else's mailbox only
through its id, and it watches an id only after SELECT checked its rights (RFC 4314 §4);
NOTIFY must do the same for other users' and shared mailboxes (README, "Access control").
Durable consumers (the notification socket) read `change_log` instead and use the bus only
as a wake-up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from store.changes import (
    AclChanged,
    ApplePushRegistered,
    CalendarAlarmFired,
    Change,
    FlagsChanged,
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    MessagesAdded,
    MessagesExpunged,
    MetadataChanged,
    QuotaChanged,
    SessionEvent,
    SubscriptionChanged,
    UrlKeysReset,
)


def change_mailbox_ids(change: Change) -> tuple[int, ...]:
    match change:
        case MessagesAdded() | MessagesExpunged() | FlagsChanged() | MailboxCreated():
            return (change.mailbox.id,)
        case MailboxDeleted() | AclChanged():
            return (change.mailbox.id,)
        case MailboxRenamed():
            return tuple(old.id for old, _ in change.renames)
        case MetadataChanged():
            return () if change.mailbox is None else (change.mailbox.id,)
        case SubscriptionChanged() | SessionEvent() | ApplePushRegistered():
            return ()
        case QuotaChanged():
            return ()  # a root spans mailboxes: whole-account listeners of its owner
        case CalendarAlarmFired():
            return (change.mailbox.id,)
        case UrlKeysReset():
            return ()  # routed by `url_key_topics`, to that user's sessions only


def change_owner(change: Change) -> str:
    match change:
        case MessagesAdded() | MessagesExpunged() | FlagsChanged() | MailboxCreated():
            return change.mailbox.owner
        case MailboxDeleted() | AclChanged():
            return change.mailbox.owner
        case MailboxRenamed():
            return change.renames[0][0].owner
        case SubscriptionChanged() | SessionEvent() | MetadataChanged() | ApplePushRegistered():
            return change.user
        case QuotaChanged() | CalendarAlarmFired():
            return change.user  # the quota root's / the calendar's owner
        case UrlKeysReset():
            return change.user  # whose key table (not the mailbox owner: RFC 4467 §7)


#: The empty watched set, shared (``frozenset()`` makes a new 216-byte object every call).
_EMPTY: frozenset[Any] = frozenset()
#: The changes `Subscription.covered_by` concerns (message events of one mailbox).
_MESSAGE_CHANGES = frozenset({MessagesAdded, MessagesExpunged, FlagsChanged})
#: Distinct watched sets `EventBus._shared` keeps (then starts over).
SHARED_SETS = 65_536
T = TypeVar("T")


class Subscription:
    """One session's view of the feed: a bounded queue, a wake-up callback, an overflow flag.

    When more than ``limit`` changes are queued the newest is dropped and ``overflow`` set;
    the session then decides (BYE for a selected mailbox, NOTIFICATIONOVERFLOW for NOTIFY).

    Two per connection, idle for most of their life: slots, and the queue a list (an empty
    deque is 760 bytes, a list 56; `drain` hands the whole list over instead of copying it).
    """

    __slots__ = (
        "_bus",
        "covered_by",
        "limit",
        "mailboxes",
        "overflow",
        "pending",
        "topics",
        "users",
        "waker",
    )

    def __init__(self, bus: EventBus, limit: int) -> None:
        self._bus = bus
        self.limit = limit
        self.pending: list[Change] = []
        self.overflow = False
        self.mailboxes: frozenset[int] = _EMPTY
        self.users: frozenset[str] = _EMPTY
        self.topics: frozenset[str] = _EMPTY
        #: Called on every delivery while set: the owning session's wake-up while it waits
        #: (one callback instead of a task per wait). Must not block.
        self.waker: Callable[[], None] | None = None
        #: Message changes (new, expunged, flags) of a mailbox this other subscription
        #: watches are not queued here: NOTIFY's, for the selected mailbox, whose message
        #: events only the selected group reports (RFC 5465 §5.1, §6.1). Saves one delivery
        #: and one wake-up per listener and message change.
        self.covered_by: Subscription | None = None

    def watch(
        self,
        *,
        mailboxes: frozenset[int] | None = None,
        users: frozenset[str] | None = None,
        topics: frozenset[str] | None = None,
    ) -> None:
        """Replace what this subscription listens to (a SELECT, an UNSELECT, a NOTIFY SET)."""
        bus = self._bus
        bus._unroute(self)
        if mailboxes is not None:
            self.mailboxes = bus._shared(mailboxes)
        if users is not None:
            self.users = bus._shared(users)
        if topics is not None:
            self.topics = bus._shared(topics)
        bus._route(self)

    def deliver(self, change: Change) -> None:
        covered = self.covered_by
        if (
            covered is not None
            and isinstance(change, MessagesAdded | MessagesExpunged | FlagsChanged)
            and change.mailbox.id in covered.mailboxes
        ):
            return
        self._put(change)

    def _put(self, change: Change) -> None:
        """`deliver` once ``covered_by`` is known not to apply (`EventBus.publish`)."""
        if len(self.pending) >= self.limit:
            self.overflow = True
        else:
            self.pending.append(change)
        if self.waker is not None:
            self.waker()

    @property
    def ringing(self) -> bool:
        """Something was delivered since the last `drain` (an overflow implies a full
        queue, so it rings too)."""
        return bool(self.pending)

    def drain(self) -> list[Change]:
        out = self.pending
        if not out:
            return []
        self.pending = []
        return out

    def discard_through(self, seq: int) -> None:
        """Forget queued changes a snapshot already contains (``seq`` <= the snapshot's:
        SELECT subscribes before it reads)."""
        if self.pending:
            self.pending = [ch for ch in self.pending if ch.seq > seq]

    def close(self) -> None:
        self._bus._unroute(self)
        self.waker = None
        self.covered_by = None
        self.mailboxes = frozenset()
        self.users = frozenset()
        self.topics = frozenset()


#: Topics (`Subscription.watch`): ``NAMES`` hears every mailbox creation and rename, of any
#: owner (NOTIFY MailboxName for mailboxes that come into a user's view: the session decides
#: from the rights it keeps, the change names no other owner's ACL); ``SHARED_SERVER_METADATA``
#: hears changes to /shared server entries (RFC 5465 §5.7), which belong to no user.
NAMES = "names"
SHARED_SERVER_METADATA = "shared-server-metadata"


def url_key_topics(user: str, mailbox_id: int) -> frozenset[str]:
    """The topics a session of ``user`` with ``mailbox_id`` selected watches on its selected
    subscription: RESETKEY of that mailbox, and RESETKEY of all the user's keys (RFC 4467
    §7: "Any current IMAP session logged in as the user that has the mailbox selected").
    Keys are per user, so another user's session on a shared mailbox is not told."""
    return frozenset((_url_key_topic(user, None), _url_key_topic(user, mailbox_id)))


def _url_key_topic(user: str, mailbox_id: int | None) -> str:
    return f"urlkeys {mailbox_id if mailbox_id is not None else '*'} {user}"


class EventBus:
    def __init__(self) -> None:
        self._by_mailbox: dict[int, set[Subscription]] = {}
        self._by_user: dict[str, set[Subscription]] = {}
        self._by_topic: dict[str, set[Subscription]] = {}
        self._listeners: list[Callable[[Sequence[Change]], None]] = []
        #: One object per distinct watched set (`_shared`).
        self._sets: dict[frozenset[Any], frozenset[Any]] = {}

    def subscribe(self, limit: int = 10_000) -> Subscription:
        return Subscription(self, limit)

    def add_listener(self, listener: Callable[[Sequence[Change]], None]) -> None:
        """A whole-feed listener (e.g. the notification sink's wake-up). Must not block."""
        self._listeners.append(listener)

    def publish(self, changes: Sequence[Change]) -> None:
        for change in changes:
            if isinstance(change, UrlKeysReset):  # only as `url_key_topics` says
                topic = _url_key_topic(change.user, change.mailbox_id)
                for sub in tuple(self._by_topic.get(topic, ())):
                    sub.deliver(change)
                continue
            targets: set[Subscription] = set()
            for mailbox_id in change_mailbox_ids(change):
                targets.update(self._by_mailbox.get(mailbox_id, ()))
            targets.update(self._by_user.get(change_owner(change), ()))
            if isinstance(change, MailboxCreated | MailboxRenamed):
                targets.update(self._by_topic.get(NAMES, ()))
            elif isinstance(change, MetadataChanged) and change.mailbox is None and not change.user:
                targets.update(self._by_topic.get(SHARED_SERVER_METADATA, ()))
            if isinstance(change, AclChanged):
                # NOTIFY (RFC 5465 §5.9): the user whose rights changed learns that access
                # came or went (imapd/commands/notify.py re-reads the rights; the ACL itself
                # is never shown). ``anyone`` concerns every whole-account listener.
                subject = change.subject.removeprefix("-")
                if subject == "anyone":
                    for subs in self._by_user.values():
                        targets.update(subs)
                else:
                    targets.update(self._by_user.get(subject, ()))
            if type(change) in _MESSAGE_CHANGES:
                # The common case of a mailbox with many listeners (issue 17, fan-out): each
                # NOTIFY subscription covered by its session's selected one skipped here
                # (`Subscription.deliver`'s test, inline), not one call per listener.
                mailbox_id = change.mailbox.id  # type: ignore[union-attr]
                for sub in targets:
                    covered = sub.covered_by
                    if covered is None or mailbox_id not in covered.mailboxes:
                        sub._put(change)
            else:
                for sub in targets:
                    sub.deliver(change)
        for listener in self._listeners:
            listener(changes)

    def _shared(self, watched: frozenset[T]) -> frozenset[T]:
        """The one frozenset equal to ``watched`` that every subscription keeps: a thousand
        listeners of one mailbox (one user, no topic) hold the same three sets, not 3,000
        copies of 216 bytes each (issue 17, memory). Bounded: forgotten past SHARED_SETS."""
        if not watched:
            return _EMPTY
        found = self._sets.get(watched)
        if found is not None:
            return found
        if len(self._sets) >= SHARED_SETS:
            self._sets.clear()
        self._sets[watched] = watched
        return watched

    def _route(self, sub: Subscription) -> None:
        for mailbox_id in sub.mailboxes:
            self._by_mailbox.setdefault(mailbox_id, set()).add(sub)
        for user in sub.users:
            self._by_user.setdefault(user, set()).add(sub)
        for topic in sub.topics:
            self._by_topic.setdefault(topic, set()).add(sub)

    def _unroute(self, sub: Subscription) -> None:
        for mailbox_id in sub.mailboxes:
            subs = self._by_mailbox.get(mailbox_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_mailbox[mailbox_id]
        for user in sub.users:
            subs = self._by_user.get(user)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_user[user]
        for topic in sub.topics:
            subs = self._by_topic.get(topic)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_topic[topic]
