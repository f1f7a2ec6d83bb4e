"""The bus's routing of RESETKEY (UrlKeysReset, RFC 4467 §7): to the sessions "logged in as
the user that has the mailbox selected", only (pure, no server; the end-to-end tests are
tests/e2e/test_urlmech.py)."""

from __future__ import annotations

import datetime as dt

from notify.bus import EventBus, Subscription, change_owner, url_key_topics
from notify.events import events_for
from store.changes import Origin, UrlKeysReset

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ORIGIN = Origin(session="writer", user="alice")


def reset(mailbox_id: int | None, user: str = "alice", seq: int = 1) -> UrlKeysReset:
    return UrlKeysReset(seq, NOW, ORIGIN, user, mailbox_id)


def selected(bus: EventBus, user: str, mailbox_id: int) -> Subscription:
    """A session's selected subscription, as SELECT sets it (imapd/commands/select.py)."""
    sub = bus.subscribe()
    sub.watch(mailboxes=frozenset({mailbox_id}), topics=url_key_topics(user, mailbox_id))
    return sub


def test_a_mailbox_reset_reaches_that_users_sessions_with_that_mailbox_selected() -> None:
    bus = EventBus()
    alice_1 = selected(bus, "alice", 1)
    alice_1_again = selected(bus, "alice", 1)
    alice_2 = selected(bus, "alice", 2)
    bob_on_alices_1 = selected(bus, "bob", 1)  # shared via ACL: his keys are his own
    notify = bus.subscribe()  # a whole-account listener (NOTIFY): no event to report
    notify.watch(users=frozenset({"alice"}), topics=frozenset({"names"}))
    change = reset(1)
    bus.publish([change])
    assert alice_1.drain() == [change] and alice_1_again.drain() == [change]
    assert alice_2.drain() == [] and bob_on_alices_1.drain() == [] and notify.drain() == []


def test_a_reset_of_all_keys_reaches_every_session_of_the_user_with_a_mailbox_selected() -> None:
    bus = EventBus()
    alice_1 = selected(bus, "alice", 1)
    alice_2 = selected(bus, "alice", 2)
    bob_1 = selected(bus, "bob", 1)
    unselected = selected(bus, "alice", 3)
    unselected.watch(mailboxes=frozenset(), topics=frozenset())  # CLOSE, as session.py does
    change = reset(None)
    bus.publish([change])
    assert alice_1.drain() == [change] and alice_2.drain() == [change]
    assert bob_1.drain() == [] and unselected.drain() == []


def test_user_names_do_not_collide_in_topics() -> None:
    """A user named like another topic, or with spaces, routes to nobody else."""
    bus = EventBus()
    odd = selected(bus, "1 alice", 2)
    plain = selected(bus, "alice", 1)
    bus.publish([reset(None, "1 alice"), reset(2, "alice", 2), reset(None, "names", 3)])
    assert [c.seq for c in odd.drain()] == [1]
    assert plain.drain() == []


def test_no_rfc5423_event_and_the_owner_is_the_key_tables() -> None:
    assert events_for(reset(1)) == [] and events_for(reset(None)) == []
    assert change_owner(reset(1, "bob")) == "bob"  # `imapd events tail --user bob` keeps it
