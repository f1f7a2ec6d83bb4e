"""Group commit (store/sqlite/groupcommit.py): writes queued by different sessions at once
share one transaction and one COMMIT, each in its own savepoint. A write that fails (quota
exceeded, no rights, a missing mailbox) rolls back alone and gets its error; the others
commit with their change_log rows, and are published once, in seq order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from store import acl
from store.changes import Change, MessagesAdded, QuotaChanged
from store.errors import MailboxNotFound, NoPermission
from store.quota import Limits, QuotaRefused
from store.sqlite import SqliteStore
from tests.helpers.store import ORIGIN, Env, new

pytestmark = pytest.mark.sqlite_only


class Publications:
    """Each publish call's Changes (one call per committed group)."""

    def __init__(self) -> None:
        self.calls: list[list[Change]] = []

    def __call__(self, changes: Sequence[Change]) -> None:
        self.calls.append(list(changes))

    @property
    def changes(self) -> list[Change]:
        return [c for call in self.calls for c in call]


async def _setup(env: Env, pubs: Publications) -> tuple[SqliteStore, int, int, int]:
    """bob (quota: 2 messages), alice (no limit) and carol; alice's Team where carol has
    lookup/read but not insert."""
    store: SqliteStore = await env.open(publish=pubs)
    bob = await store.create_user("bob", "pw")
    alice = await store.create_user("alice", "pw")
    carol = await store.create_user("carol", "pw")
    await store.set_quota("bob", Limits(messages=2), ORIGIN)
    await store.create_mailbox(alice.id, "Team", ORIGIN)
    await store.set_acl(alice.id, "Team", "carol", acl.parse_modification("lr"), ORIGIN)
    return store, bob.id, alice.id, carol.id


async def test_concurrent_writes_share_a_commit_and_failures_stay_alone(env: Env) -> None:
    pubs = Publications()
    store, bob, alice, carol = await _setup(env, pubs)
    pubs.calls.clear()
    jobs = [store.append(alice, "INBOX", [new(f"alice {i}")], ORIGIN) for i in range(6)]
    jobs.insert(2, store.append(bob, "INBOX", [new("bob 1"), new("bob 2"), new("bob 3")], ORIGIN))
    jobs.insert(4, store.append(alice, "No such box", [new("lost")], ORIGIN))
    jobs.insert(6, store.append(carol, "Other Users/alice/Team", [new("x")], ORIGIN, need="i"))
    jobs.append(store.append(bob, "INBOX", [new("bob 4")], ORIGIN))
    results = await asyncio.gather(*jobs, return_exceptions=True)

    assert isinstance(results[2], QuotaRefused)  # 3 messages over bob's limit of 2
    assert isinstance(results[4], MailboxNotFound)
    assert isinstance(results[6], NoPermission)
    ok = [r for i, r in enumerate(results) if i not in {2, 4, 6}]
    assert not [r for r in ok if isinstance(r, BaseException)], ok
    # alice's six appends got UIDs 1..6 in queue order; bob's lone message fits his quota.
    uids = [r.uids for r in ok if not isinstance(r, BaseException)]
    assert uids == [(1,), (2,), (3,), (4,), (5,), (6,), (1,)]

    # All were queued before the writer ran: one group, one COMMIT, one publication; every
    # change once, in seq order.
    assert len(pubs.calls) == 1
    seqs = [c.seq for c in pubs.changes]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    added = [c for c in pubs.changes if isinstance(c, MessagesAdded)]
    assert [(c.mailbox.owner, tuple(m.uid for m in c.messages)) for c in added] == [
        *[("alice", (u,)) for u in (1, 2, 3)],
        *[("alice", (u,)) for u in (4, 5, 6)],
        ("bob", (1,)),
    ]
    refused = [c for c in pubs.changes if isinstance(c, QuotaChanged)]
    assert [(c.user, c.kind) for c in refused] == [("bob", "exceeded")]

    # On disk: exactly what was acknowledged, and its change_log rows with it.
    assert env.rows(
        "SELECT u.name, m.name, m.messages FROM mailboxes m JOIN users u ON u.id = m.owner_id"
        " WHERE m.messages > 0 ORDER BY u.name"
    ) == [("alice", "INBOX", 6), ("bob", "INBOX", 1)]
    assert [r[0] for r in env.rows("SELECT count(*) FROM messages")] == [7]
    logged = env.rows("SELECT seq FROM change_log WHERE seq >= ? ORDER BY seq", seqs[0])
    assert [r[0] for r in logged] == seqs
    env.check_counters()


async def test_a_lone_write_after_a_group_commits_alone(env: Env) -> None:
    pubs = Publications()
    store, _, alice, _ = await _setup(env, pubs)
    await asyncio.gather(*(store.append(alice, "INBOX", [new(str(i))], ORIGIN) for i in range(3)))
    pubs.calls.clear()
    result = await store.append(alice, "INBOX", [new("later")], ORIGIN)
    assert result.uids == (4,)
    assert [[type(c) for c in call] for call in pubs.calls] == [[MessagesAdded]]


async def test_a_cancelled_caller_does_not_cancel_its_write(env: Env) -> None:
    pubs = Publications()
    store, _, alice, _ = await _setup(env, pubs)
    tasks = [
        asyncio.ensure_future(store.append(alice, "INBOX", [new(str(i))], ORIGIN)) for i in range(4)
    ]
    await asyncio.sleep(0)  # all queued
    tasks[1].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[1], asyncio.CancelledError)
    # The cancelled caller's message committed all the same (as before group commit).
    inbox = "SELECT messages FROM mailboxes WHERE owner_id = ? AND name = 'INBOX'"
    assert env.rows(inbox, alice) == [(4,)]
    env.check_counters()
