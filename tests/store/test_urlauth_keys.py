"""URLAUTH mailbox access keys (RFC 4467 §2.2; store/sqlite/urlauth.py, store/postgres/urlauth.py):
per user and mailbox, made on first use, replaced or removed by RESETKEY, gone with their
mailbox, never in the change_log; a reset logs a UrlKeysReset (user, mailbox) in its own
transaction, which yields no RFC 5423 event."""

from __future__ import annotations

import pytest

from notify.events import events_for
from store.changes import CHANGE_TYPES, UrlKeysReset
from tests.helpers.store import ORIGIN, Env

BOTH_BACKENDS = True


async def test_keys_per_user_and_mailbox(env: Env) -> None:
    store = await env.open()
    alice = await store.create_user("alice", "pw")
    bob = await store.create_user("bob", "pw")
    await store.create_mailbox(alice.id, "Work", ORIGIN)
    inbox = await store.get_mailbox(alice.id, "INBOX")
    shared = await store.get_mailbox(alice.id, "Work")
    env.take()
    seq = await store.change_log_head()
    assert await store.urlauth_key(alice.id, inbox.id, create=False) is None
    key = await store.urlauth_key(alice.id, inbox.id, create=True)
    assert key is not None and len(key) == 32  # RFC 4467 §2.2: at least 128 bits
    assert await store.urlauth_key(alice.id, inbox.id, create=True) == key  # kept
    assert await store.urlauth_key(alice.id, inbox.id, create=False) == key
    # RFC 4467 §2.2: "two users sharing the same mailbox each have a different ... key"
    other = await store.urlauth_key(bob.id, inbox.id, create=True)
    assert other is not None and other != key
    # "each mailbox accessed by a single user also has a different mailbox access key"
    second = await store.urlauth_key(alice.id, shared.id, create=True)
    assert second is not None and second not in (key, other)
    # No Change when a key is made: a key is nothing a client or an event consumer sees.
    assert env.take() == [] and await store.change_log_head() == seq
    # RESETKEY mailbox: a new key for that mailbox only, and one UrlKeysReset naming the user
    # whose key table it is and the mailbox (RFC 4467 §7: that user's sessions are told).
    await store.reset_urlauth_keys(alice.id, inbox.id, ORIGIN)
    renewed = await store.urlauth_key(alice.id, inbox.id, create=False)
    assert renewed is not None and renewed != key
    assert await store.urlauth_key(alice.id, shared.id, create=False) == second
    assert await store.urlauth_key(bob.id, inbox.id, create=False) == other
    (one,) = env.take()
    assert isinstance(one, UrlKeysReset) and one.seq == seq + 1
    assert (one.user, one.mailbox_id, one.origin) == ("alice", inbox.id, ORIGIN)
    # RESETKEY: all of the user's keys, nobody else's; mailbox None.
    await store.reset_urlauth_keys(alice.id, None, ORIGIN)
    assert await store.urlauth_key(alice.id, inbox.id, create=False) is None
    assert await store.urlauth_key(alice.id, shared.id, create=False) is None
    assert await store.urlauth_key(bob.id, inbox.id, create=False) == other
    (every,) = env.take()
    assert isinstance(every, UrlKeysReset) and every.seq == seq + 2
    assert (every.user, every.mailbox_id) == ("alice", None)
    # The logged rows read back as the same Changes; no key in them; no RFC 5423 event.
    rows = await store.change_log(seq)
    assert [kind for _, kind, _ in rows] == ["UrlKeysReset", "UrlKeysReset"]
    logged = [c async for c in store.follow(seq)]
    assert logged == [one, every]
    for secret in (key, renewed, second):
        assert all(secret.hex() not in payload for _, _, payload in rows)
    assert events_for(one) == [] and events_for(every) == []


async def test_key_goes_with_its_mailbox(env: Env) -> None:
    store = await env.open()
    alice = await store.create_user("alice", "pw")
    await store.create_mailbox(alice.id, "Drafts2", ORIGIN)
    box = await store.get_mailbox(alice.id, "Drafts2")
    assert await store.urlauth_key(alice.id, box.id, create=True) is not None
    await store.delete_mailbox(alice.id, "Drafts2", ORIGIN)
    await store.create_mailbox(alice.id, "Drafts2", ORIGIN)
    again = await store.get_mailbox(alice.id, "Drafts2")
    assert again.id != box.id
    assert await store.urlauth_key(alice.id, box.id, create=False) is None
    assert await store.urlauth_key(alice.id, again.id, create=False) is None
    # No key can be made for a mailbox that does not exist (any more).
    assert await store.urlauth_key(alice.id, box.id, create=True) is None
    env.take()
    await store.reset_urlauth_keys(alice.id, box.id, ORIGIN)
    assert await store.urlauth_key(alice.id, box.id, create=False) is None
    assert env.take() == []  # no mailbox, no key made, nobody to tell


async def test_a_reader_that_does_not_know_the_kind_steps_over_it(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version from before UrlKeysReset (another instance on the same PostgreSQL during
    an upgrade, an older ``imapd notifyd --outbox``) reads the log on: the row is reported
    to ``unreadable(seq, kind)`` in its place and the changes after it still come."""
    store = await env.open()
    alice = await store.create_user("alice", "pw")
    seq = await store.change_log_head()
    await store.reset_urlauth_keys(alice.id, None, ORIGIN)
    await store.create_mailbox(alice.id, "After", ORIGIN)
    monkeypatch.delitem(CHANGE_TYPES, "UrlKeysReset")  # what the older version knows
    skipped: list[tuple[int, str]] = []
    follow = store.follow(seq, unreadable=lambda s, kind: skipped.append((s, kind)))
    read = [c async for c in follow]
    assert skipped == [(seq + 1, "UrlKeysReset")]
    assert [(c.seq, type(c).__name__) for c in read] == [(seq + 2, "MailboxCreated")]
