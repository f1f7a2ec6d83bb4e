"""APPEND on the SQLite store runs its whole write transaction as one function on the writer's
thread (store/sqlite/synctx.py): BEGIN IMMEDIATE, the statements, the change_log rows and
COMMIT in one round trip, with every guarantee of the statement-by-statement path (all or
none, Changes published only after COMMIT, UIDs ascending, quota refused in the
transaction)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from store.api import NewMessage
from store.changes import MessagesAdded, QuotaChanged
from store.quota import Limits, QuotaRefused
from store.sqlite import SqliteStore
from tests.helpers.store import ORIGIN, Env, message, new

pytestmark = pytest.mark.sqlite_only


class _Hops:
    """Counts the calls queued to an aiosqlite connection's thread (each one a round trip)."""

    def __init__(self, store: SqliteStore) -> None:
        self.writer = self.reader = 0
        self._wrap(store, "_writer", "writer")
        self._wrap(store, "_reader", "reader")

    def _wrap(self, store: SqliteStore, conn_name: str, counter: str) -> None:
        conn = getattr(store, conn_name)
        real: Callable[..., Any] = conn._execute

        async def counted(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            setattr(self, counter, getattr(self, counter) + 1)
            return await real(fn, *args, **kwargs)

        conn._execute = counted

    def reset(self) -> None:
        self.writer = self.reader = 0


async def test_a_lone_append_is_one_round_trip_to_the_writer(env: Env, tmp_path: Path) -> None:
    store: SqliteStore = await env.open()
    bob = await store.create_user("bob", "pw")
    box = await store.get_mailbox(bob.id, "INBOX")
    hops = _Hops(store)
    for messages in (
        [new("one")],
        [new("two"), new("three"), new("four")],  # MULTIAPPEND
    ):
        hops.reset()
        await store.append(bob.id, box.id, messages, ORIGIN, need="i")
        assert (hops.writer, hops.reader) == (1, 0)
    spooled = tmp_path / "spooled.eml"  # a big literal's spool file (imapd/spool.py)
    spooled.write_bytes(message(subject="spooled", body="x" * 10_000))
    hops.reset()
    result = await store.append(bob.id, box.id, [NewMessage(spooled, (), None)], ORIGIN)
    assert (hops.writer, hops.reader) == (1, 0)
    assert result.uids == (5,)
    records = await store.fetch(box.id, [5], content=True)
    assert records[0].content == spooled.read_bytes()
    added = [c for c in env.take() if isinstance(c, MessagesAdded)]
    assert [[m.uid for m in c.messages] for c in added] == [[1], [2, 3, 4], [5]]
    assert [c.seq for c in added] == sorted(c.seq for c in added)
    assert added[-1] == env.logged()[-1]
    env.check_counters()


async def test_a_failure_in_the_one_round_trip_rolls_the_whole_append_back(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the messages' rows were written (here: their change_log row) leaves
    no row, no counter change and nothing published; the next APPEND goes on normally."""
    store: SqliteStore = await env.open()
    bob = await store.create_user("bob", "pw")
    await store.append(bob.id, "INBOX", [new("kept")], ORIGIN)
    before = await store.get_mailbox(bob.id, "INBOX")
    env.take()

    def broken(change: object) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr("store.sqlite.synctx.to_json", broken)
    with pytest.raises(RuntimeError, match="boom"):
        await store.append(bob.id, "INBOX", [new("lost"), new("lost too")], ORIGIN)
    monkeypatch.undo()
    assert env.take() == []
    assert await store.get_mailbox(bob.id, "INBOX") == before
    assert env.rows("SELECT count(*) FROM messages WHERE mailbox_id = ?", before.id) == [(1,)]
    env.check_counters()
    assert (await store.append(bob.id, "INBOX", [new("next")], ORIGIN)).uids == (2,)  # uidnext too


async def test_a_quota_refusal_in_the_one_round_trip_is_logged_after_the_rollback(
    env: Env,
) -> None:
    """RFC 9208 §4.3.1: an APPEND over the limit fails with nothing appended; its
    QuotaChanged(kind="exceeded") is committed and published after the rollback."""
    store: SqliteStore = await env.open()
    bob = await store.create_user("bob", "pw")
    await store.set_quota("bob", Limits(messages=1), ORIGIN)
    await store.append(bob.id, "INBOX", [new("fits")], ORIGIN)
    env.take()
    with pytest.raises(QuotaRefused):
        await store.append(bob.id, "INBOX", [new("over")], ORIGIN)
    published = env.take()
    assert [(type(c), getattr(c, "kind", None)) for c in published] == [(QuotaChanged, "exceeded")]
    assert published == env.logged()[-1:]
    assert (await store.get_mailbox(bob.id, "INBOX")).messages == 1
    env.check_counters()


async def test_concurrent_appends_keep_ascending_uids_in_commit_order(env: Env) -> None:
    """Appends queued together (group commit) each run as one function in their savepoint:
    UIDs ascend in queue order, the Changes are published in seq order."""
    store: SqliteStore = await env.open()
    bob = await store.create_user("bob", "pw")
    box = await store.get_mailbox(bob.id, "INBOX")
    hops = _Hops(store)
    results = await asyncio.gather(
        *(store.append(bob.id, box.id, [new(str(i))], ORIGIN) for i in range(12))
    )
    assert [r.uids for r in results] == [(i + 1,) for i in range(12)]
    added = [c for c in env.take() if isinstance(c, MessagesAdded)]
    assert [c.messages[0].uid for c in added] == list(range(1, 13))
    assert [c.seq for c in added] == sorted(c.seq for c in added)
    assert added == env.logged()[-12:]
    # However the 12 are grouped: per group BEGIN+SAVEPOINT, then each job (its statements
    # and change_log rows) and the savepoint step after it (the last one with COMMIT).
    assert hops.writer <= 12 * 3
    env.check_counters()
