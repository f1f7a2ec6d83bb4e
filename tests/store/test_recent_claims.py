"""\\Recent claimed by many sessions at once (issue 17, push under load): the listeners one
APPEND wakes all claim in the same turn of the event loop. Each new message is \\Recent in
exactly one session (RFC 3501 §2.3.2: "the message is considered recent in exactly one
session"), whichever process the claimant runs in; the rest are refused."""

from __future__ import annotations

import asyncio
from typing import Any

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
