"""The event bus's routing: who hears a committed change (pure, no server)."""

from __future__ import annotations

import datetime as dt

from notify.bus import EventBus
from store.changes import (
    Counts,
    FlagChange,
    FlagsChanged,
    MailboxRef,
    MailboxRenamed,
    MessageFacts,
    MessagesAdded,
    Origin,
)

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
INBOX = MailboxRef(1, "alice", "INBOX", 7)
WORK = MailboxRef(2, "alice", "Work", 8)
COUNTS = Counts(1, 1, 2, 3, 10)
ORIGIN = Origin(session="writer")


def added(box: MailboxRef) -> MessagesAdded:
    return MessagesAdded(1, NOW, ORIGIN, box, COUNTS, (MessageFacts(1, 3, (), 10, NOW),))


def test_notify_subscription_leaves_the_selected_mailbox_messages_to_the_selected_one() -> None:
    """RFC 5465 §6.1: the selected mailbox's message events are the selected group's; NOTIFY's own
    queue does not even receive them (one delivery, one wake-up per listener less). Other
    mailboxes' message changes and name changes of the selected one still arrive."""
    bus = EventBus()
    selected = bus.subscribe()
    selected.watch(mailboxes=frozenset({INBOX.id}))
    notify = bus.subscribe()
    notify.watch(users=frozenset({"alice"}))
    notify.covered_by = selected
    rings: list[str] = []
    notify.waker = lambda: rings.append("notify")
    flags = FlagsChanged(2, NOW, ORIGIN, INBOX, COUNTS, (FlagChange(1, 4, ("\\Seen",), (), ()),))
    renamed = MailboxRenamed(3, NOW, ORIGIN, ((INBOX, MailboxRef(1, "alice", "Old", 7)),))
    bus.publish([added(INBOX), flags, added(WORK), renamed])
    assert [type(c).__name__ for c in selected.drain()] == [
        "MessagesAdded",
        "FlagsChanged",
        "MailboxRenamed",
    ]
    assert [(type(c).__name__, getattr(c, "mailbox", None)) for c in notify.drain()] == [
        ("MessagesAdded", WORK),
        ("MailboxRenamed", None),
    ]
    assert rings == ["notify", "notify"]
    selected.watch(mailboxes=frozenset())  # UNSELECT: the NOTIFY queue hears INBOX again
    bus.publish([added(INBOX)])
    assert [c.mailbox for c in notify.drain()] == [INBOX]  # type: ignore[union-attr]
