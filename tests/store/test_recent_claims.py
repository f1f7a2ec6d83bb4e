"""\\Recent claimed by many sessions at once (issue 17, push under load): the listeners one
APPEND wakes all claim in the same turn of the event loop. Each new message is \\Recent in
exactly one session (RFC 3501 §2.3.2: "the message is considered recent in exactly one
session"), whichever process the claimant runs in; the rest are refused."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest

from store.api import User
from tests.helpers.store import ORIGIN, Env, new

BOTH_BACKENDS = True


async def _bob(store: Any) -> User:
    user: User = await store.create_user("bob", "hash")
    return user


async def test_many_concurrent_claims_one_winner(store: Any, env: Env) -> None:
    bob = await _bob(store)
    await store.append(bob.id, "INBOX", [new()], ORIGIN)
    snapshot = await store.open_mailbox(bob.id, "INBOX", claim_recent=True)
    assert snapshot.recent == frozenset({1})
    box = snapshot.mailbox.id
    await store.append(bob.id, "INBOX", [new(), new()], ORIGIN)  # UIDs 2 and 3
    # Fifty listeners in one loop turn, each told of the whole APPEND (2 and 3), some of a
    # later part of it again (3: ``recent_uid`` is a watermark, claims come in UID order).
    claims = await asyncio.gather(
        *(store.claim_recent(box, [3] if i % 2 else [2, 3]) for i in range(50))
    )
    winners = [c for c in claims if c]
    assert sorted(u for c in winners for u in c) == [2, 3]  # each once, none lost
    assert await store.claim_recent(box, [2, 3]) == frozenset()
    # Another process on the same file (--workers) finds them claimed too.
    other = await env.open()
    assert await other.claim_recent(box, [2, 3]) == frozenset()
    await store.append(bob.id, "INBOX", [new()], ORIGIN)  # UID 4: the other process first
    assert await other.claim_recent(box, [4]) == frozenset({4})
    assert await store.claim_recent(box, [4]) == frozenset()


@pytest.mark.sqlite_only
async def test_a_claim_lost_to_another_process_takes_no_write_lock(store: Any, env: Env) -> None:
    """--workers (docs/workers.md): the process whose listeners come second finds the
    message claimed by a read, without a write transaction whose lock the writer's next
    APPEND would wait for. Shown with the file's write lock held by a third connection: the
    lost claim answers at once; one still to decide waits for the lock."""
    bob = await _bob(store)
    box = (await store.open_mailbox(bob.id, "INBOX", claim_recent=False)).mailbox.id
    await store.append(bob.id, "INBOX", [new()], ORIGIN)  # UID 1
    assert await store.claim_recent(box, [1]) == frozenset({1})
    await store.append(bob.id, "INBOX", [new()], ORIGIN)  # UID 2, claimed by nobody yet
    other = await env.open()
    other.on_commit = lambda: None  # a worker of a cluster (imapd/cluster/node.py sets it)
    lock = sqlite3.connect(env.path, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # the write lock, as another process's commit holds it
    try:
        assert await asyncio.wait_for(other.claim_recent(box, [1]), 2.0) == frozenset()
        undecided = asyncio.ensure_future(other.claim_recent(box, [2]))
        await asyncio.sleep(0.3)
        assert not undecided.done()  # not claimed yet anywhere: only the write decides
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert await undecided == frozenset({2})
