"""APPEND, FETCH, STORE, EXPUNGE, COPY, MOVE: results, exact changes in commit order, the
same rows in change_log, counters against a recomputation, UIDs and MODSEQs."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from store.api import HEADER_ROW_MAX, MailboxInfo, NewMessage, User
from store.changes import FlagChange, FlagsChanged, MessagesAdded, MessagesExpunged
from store.errors import MailboxInvalid, MailboxNotFound, StoreError
from store.ranges import number_ranges
from store.sqlite import SqliteStore
from tests.helpers.store import ORIGIN, START, Env, message, new

BOTH_BACKENDS = True


@pytest.fixture
async def bob(store: SqliteStore, env: Env) -> User:
    user = await store.create_user("bob", "pw")
    env.take()
    return user


async def inbox(store: SqliteStore, user: User) -> MailboxInfo:
    return await store.get_mailbox(user.id, "INBOX")


def test_number_ranges() -> None:
    assert number_ranges([]) == []
    assert number_ranges([5, 1, 2, 3, 3, 9, 8]) == [(1, 3), (5, 5), (8, 9)]


async def test_append_and_fetch(store: SqliteStore, env: Env, bob: User) -> None:
    when = dt.datetime(2024, 2, 29, 23, 30, 5, 123, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    raw = message("First", message_id="<id1@example.org>")
    result = await store.append(
        bob.id,
        "INBOX",
        [NewMessage(raw, ("\\seen", "$Label", "\\Recent"), when), new("2")],
        ORIGIN,
    )
    box = await inbox(store, bob)
    assert result.mailbox == box.ref and result.uids == (1, 2)
    [added] = env.take()
    assert isinstance(added, MessagesAdded)
    assert (added.kind, added.origin, added.at, added.mailbox) == ("append", ORIGIN, START, box.ref)
    assert added.counts.messages == 2 and added.counts.unseen == 1
    assert added.counts.uidnext == 3 and added.counts.highestmodseq == 2
    assert added.counts.size == len(raw) + len(message("2"))
    first = added.messages[0]
    assert (first.uid, first.modseq, first.flags, first.size) == (
        1,
        2,
        ("\\Seen", "$Label"),
        len(raw),
    )
    assert first.internaldate == when.replace(microsecond=0)
    assert first.internaldate.utcoffset() == dt.timedelta(hours=-5)
    assert first.message_id == "<id1@example.org>"
    assert added.messages[1].internaldate == START  # "now" from the clock
    assert [added] == env.logged()[-1:]
    assert (box.messages, box.unseen, box.recent, box.uidnext) == (2, 1, 2, 3)

    records = await store.fetch(box.id, [2, 1, 7])
    assert [r.uid for r in records] == [1, 2]
    assert records[0].flags == ("\\Seen", "$Label") and records[0].content is None
    assert records[0].structure is None and records[0].savedate == START
    full = await store.fetch(box.id, [1], content=True, structure=True)
    assert full[0].content == raw
    assert full[0].structure is not None and full[0].structure.envelope is not None
    assert full[0].structure.envelope.subject == "First"
    env.check_counters()


async def test_append_errors_publish_nothing(store: SqliteStore, env: Env, bob: User) -> None:
    with pytest.raises(MailboxNotFound):
        await store.append(bob.id, "Nope", [new()], ORIGIN)
    await store.create_mailbox(bob.id, "p/c", ORIGIN)
    await store.delete_mailbox(bob.id, "p", ORIGIN)
    env.take()
    with pytest.raises(MailboxInvalid):
        await store.append(bob.id, "p", [new()], ORIGIN)
    assert env.take() == []
    assert env.rows("SELECT count(*) FROM contents") == [(0,)]


async def test_committer_resumes_before_the_listeners_it_wakes(env: Env, bob: User) -> None:
    """The caller of a write is answered before its changes are published: what the
    publication wakes (a thousand NOTIFY sessions) runs after the committing session, whose
    tagged OK therefore does not wait for the fan-out."""
    order: list[str] = []
    loop = asyncio.get_running_loop()

    def publish(changes: object) -> None:
        loop.call_soon(order.append, "listener")

    store = await env.open(publish=publish)
    try:
        await store.append(bob.id, "INBOX", [new()], ORIGIN)
        order.append("committer")
        await asyncio.sleep(0)
        assert order == ["committer", "listener"]
        with pytest.raises(MailboxNotFound):  # a refusal still reaches the caller
            await store.append(bob.id, "Nope", [new()], ORIGIN)
    finally:
        await store.close()


async def test_fetch_plain_reads_the_columns_asked(store: SqliteStore, env: Env, bob: User) -> None:
    """FETCH's plain path: (uid, *columns) in UID order, for one range (1:*, a key range
    scan) and several, only existing messages; a column it does not know is refused (the
    names go into the SQL)."""
    await store.append(bob.id, "INBOX", [new(str(i)) for i in range(5)], ORIGIN)
    box = await inbox(store, bob)
    await store.store_flags(box.id, [2, 4], "+", ["\\Seen"], ORIGIN)
    records = {r.uid: r for r in await store.fetch(box.id, [1, 2, 3, 4, 5])}
    everything = await store.fetch_plain(box.id, [1, 2, 3, 4, 5])
    assert everything == [
        (u, r.modseq, " ".join(r.flags), r.size, r.internaldate.isoformat())
        for u, r in records.items()
    ]
    assert await store.fetch_plain(box.id, range(1, 10), ("flags",)) == [
        (1, ""),
        (2, "\\Seen"),
        (3, ""),
        (4, "\\Seen"),
        (5, ""),
    ]
    assert await store.fetch_plain(box.id, [1, 2, 4, 9], ("size", "modseq")) == [
        (u, records[u].size, records[u].modseq) for u in (1, 2, 4)
    ]
    assert await store.fetch_plain(box.id, [], ("flags",)) == []
    with pytest.raises(ValueError):
        await store.fetch_plain(box.id, [1], ("flags; DROP TABLE messages",))


async def test_uids_ascend_across_expunge_and_reopen(env: Env, bob: User) -> None:
    store = env.stores[0]
    await store.append(bob.id, "INBOX", [new(), new(), new()], ORIGIN)
    box = await inbox(store, bob)
    await store.store_flags(box.id, [2, 3], "+", ["\\Deleted"], ORIGIN)
    assert await store.expunge(box.id, ORIGIN) == (2, 3)
    assert (await store.append(bob.id, "INBOX", [new()], ORIGIN)).uids == (4,)
    await store.close()
    store = await env.open()
    assert (await store.append(bob.id, "INBOX", [new(), new()], ORIGIN)).uids == (5, 6)
    again = await inbox(store, bob)
    assert again.uidvalidity == box.uidvalidity
    snapshot = await store.open_mailbox(bob.id, "INBOX", claim_recent=True)
    assert snapshot.uids == [1, 4, 5, 6]
    env.check_counters()


async def test_store_flags(store: SqliteStore, env: Env, bob: User) -> None:
    await store.append(bob.id, "INBOX", [new(flags=("\\Seen",)), new(), new()], ORIGIN)
    box = await inbox(store, bob)
    env.take()
    result = await store.store_flags(box.id, [1, 2, 9], "+", ["\\SEEN", "\\Recent", "Work"], ORIGIN)
    assert result.changes == (
        FlagChange(1, 3, ("\\Seen", "Work"), ("Work",), ()),
        FlagChange(2, 3, ("\\Seen", "Work"), ("\\Seen", "Work"), ()),
    )
    assert result.current == {1: (("\\Seen", "Work"), 3), 2: (("\\Seen", "Work"), 3)}
    [change] = env.take()
    assert isinstance(change, FlagsChanged) and change.kind == "store"
    assert change.changes == result.changes and change.counts.unseen == 1
    assert change.counts.highestmodseq == 3
    # Nothing really changes: no modseq, no change.
    same = await store.store_flags(box.id, [1, 2], "+", ["\\Seen", "work"], ORIGIN)
    assert same.changes == () and same.current[1] == (("\\Seen", "Work"), 3)
    assert env.take() == []
    assert (await inbox(store, bob)).highestmodseq == 3
    # Removal and replacement; keywords compare case-insensitively.
    removed = await store.store_flags(box.id, [1], "-", ["WORK"], ORIGIN, kind="fetch")
    assert removed.changes == (FlagChange(1, 4, ("\\Seen",), (), ("Work",)),)
    replaced = await store.store_flags(box.id, [1, 2, 3], "", ["\\Deleted", "\\Flagged"], ORIGIN)
    assert [c.uid for c in replaced.changes] == [1, 2, 3]
    assert replaced.changes[0] == FlagChange(
        1, 5, ("\\Flagged", "\\Deleted"), ("\\Flagged", "\\Deleted"), ("\\Seen",)
    )
    kinds = [c.kind for c in env.take() if isinstance(c, FlagsChanged)]
    assert kinds == ["fetch", "store"]
    box = await inbox(store, bob)
    assert (box.unseen, box.highestmodseq) == (3, 5)
    env.check_counters()
    with pytest.raises(ValueError, match="mode"):
        await store.store_flags(box.id, [1], "*", ["x"], ORIGIN)


async def test_unchangedsince(store: SqliteStore, env: Env, bob: User) -> None:
    """RFC 7162 §3.1.3: messages modified after UNCHANGEDSINCE are reported, not changed."""
    await store.append(bob.id, "INBOX", [new(), new()], ORIGIN)  # modseq 2
    box = await inbox(store, bob)
    await store.store_flags(box.id, [2], "+", ["\\Answered"], ORIGIN)  # uid 2 -> modseq 3
    result = await store.store_flags(box.id, [1, 2], "+", ["\\Flagged"], ORIGIN, unchangedsince=2)
    assert result.modified == (2,)
    assert [c.uid for c in result.changes] == [1]
    assert result.current[2] == (("\\Answered",), 3)
    assert result.current[1] == (("\\Flagged",), 4)


async def test_expunge(store: SqliteStore, env: Env, bob: User) -> None:
    await store.append(bob.id, "INBOX", [new(), new(), new(), new()], ORIGIN)
    box = await inbox(store, bob)
    await store.store_flags(box.id, [1, 2, 4], "+", ["\\Deleted"], ORIGIN)  # modseq 3
    env.take()
    assert await store.expunge(box.id, ORIGIN, uids=[2, 3]) == (2,)  # UID EXPUNGE
    [first] = env.take()
    assert isinstance(first, MessagesExpunged)
    assert first.kind == "expunge" and first.modseq == 4
    assert [(m.uid, m.modseq, m.flags) for m in first.messages] == [(2, 3, ("\\Deleted",))]
    assert first.counts.messages == 3 and first.counts.deleted == 2
    assert await store.expunge(box.id, ORIGIN) == (1, 4)
    assert await store.expunge(box.id, ORIGIN) == ()  # nothing: no change, no modseq
    changes = env.take()
    assert len(changes) == 1 and isinstance(changes[0], MessagesExpunged)
    assert changes[0].counts.highestmodseq == 5
    assert (await inbox(store, bob)).highestmodseq == 5
    assert await store.vanished_since(box.id, 3) == [1, 2, 4]
    assert await store.vanished_since(box.id, 4) == [1, 4]
    assert await store.vanished_since(box.id, 5) == []
    assert await store.vanished_since(box.id, 0, [(2, 3), (4, 10)]) == [2, 4]
    assert await store.vanished_since(box.id, 0, []) == []
    assert [r.uid for r in await store.fetch(box.id, [1, 2, 3, 4])] == [3]
    env.check_counters()
    assert env.rows("SELECT count(*) FROM contents") == [(1,)]


async def test_fetch_expunged_serves_from_facts_and_shared_contents(
    store: SqliteStore, env: Env, bob: User
) -> None:
    """RFC 2180 §4.1.1 support: an expunge's facts carry the contents row, so a session not
    yet told can be served: always from the facts; text only while a copy keeps it."""
    await store.append(bob.id, "INBOX", [new("kept"), new("lost")], ORIGIN)
    box = await inbox(store, bob)
    await store.copy_messages(box.id, [1], bob.id, "Trash", ORIGIN)
    await store.store_flags(box.id, [1, 2], "+", ["\\Deleted"], ORIGIN)
    env.take()
    assert await store.expunge(box.id, ORIGIN) == (1, 2)
    [gone] = env.take()
    assert isinstance(gone, MessagesExpunged)
    assert all(m.content_id is not None for m in gone.messages)
    plain = await store.fetch_expunged(gone.messages)
    assert [(r.uid, r.flags, r.content) for r in plain] == [
        (1, ("\\Deleted",), None),
        (2, ("\\Deleted",), None),
    ]
    full = await store.fetch_expunged(gone.messages, content=True, structure=True)
    assert [r.uid for r in full] == [1]  # 2's contents went with its last message
    assert full[0].content is not None and b"Subject: kept" in full[0].content
    assert full[0].structure is not None


async def test_copy_shares_contents(store: SqliteStore, env: Env, bob: User) -> None:
    await store.append(bob.id, "INBOX", [new("a", ("\\Seen",)), new("b"), new("c")], ORIGIN)
    box = await inbox(store, bob)
    trash = await store.get_mailbox(bob.id, "Trash")
    env.take()
    result = await store.copy_messages(box.id, [3, 1, 99], bob.id, "Trash", ORIGIN)
    assert (result.source_uids, result.dest_uids, result.expunged) == ((1, 3), (1, 2), ())
    assert result.uidvalidity == trash.uidvalidity
    [added] = env.take()
    assert isinstance(added, MessagesAdded)
    assert (added.kind, added.source, added.source_uids) == ("copy", box.ref, (1, 3))
    assert [(m.uid, m.modseq, m.flags) for m in added.messages] == [(1, 2, ("\\Seen",)), (2, 2, ())]
    source = await store.fetch(box.id, [1], content=True)
    copied = await store.fetch(trash.id, [1], content=True)
    assert copied[0].content == source[0].content
    assert copied[0].internaldate == source[0].internaldate
    assert env.rows("SELECT count(*) FROM contents") == [(3,)]
    # Into the same mailbox, then delete the originals: contents survive.
    await store.copy_messages(box.id, [1], bob.id, "INBOX", ORIGIN)
    await store.store_flags(box.id, [1, 2, 3], "+", ["\\Deleted"], ORIGIN)
    await store.expunge(box.id, ORIGIN, [1, 2, 3])
    assert env.rows("SELECT count(*) FROM contents") == [(2,)]
    env.check_counters()


async def test_move(store: SqliteStore, env: Env, bob: User) -> None:
    await store.append(bob.id, "INBOX", [new("a"), new("b", ("\\Flagged",)), new("c")], ORIGIN)
    box = await inbox(store, bob)
    await store.create_mailbox(bob.id, "Keep", ORIGIN)
    env.take()
    result = await store.copy_messages(box.id, [2, 3], bob.id, "Keep", ORIGIN, move=True)
    assert (result.source_uids, result.dest_uids, result.expunged) == ((2, 3), (1, 2), (2, 3))
    added, expunged = env.take()
    assert isinstance(added, MessagesAdded) and isinstance(expunged, MessagesExpunged)
    assert added.seq + 1 == expunged.seq
    assert (added.kind, added.source, added.source_uids) == ("move", box.ref, (2, 3))
    assert added.messages[0].flags == ("\\Flagged",)
    assert (expunged.kind, expunged.mailbox, expunged.modseq) == ("move", box.ref, 3)
    assert [m.uid for m in expunged.messages] == [2, 3]
    assert expunged.counts.messages == 1 and expunged.counts.uidnext == 4
    assert [added, expunged] == env.logged()[-2:]
    assert await store.vanished_since(box.id, 2) == [2, 3]
    # MOVE within one mailbox: new UIDs, old ones gone.
    moved = await store.copy_messages(box.id, [1], bob.id, "INBOX", ORIGIN, move=True)
    assert moved.dest_uids == (4,) and moved.expunged == (1,)
    assert (await store.open_mailbox(bob.id, "INBOX", claim_recent=False)).uids == [4]
    env.check_counters()


async def test_failed_copy_changes_nothing(store: SqliteStore, env: Env, bob: User) -> None:
    await store.append(bob.id, "INBOX", [new()], ORIGIN)
    box = await inbox(store, bob)
    before = env.logged()
    env.take()
    with pytest.raises(MailboxNotFound):
        await store.copy_messages(box.id, [1], bob.id, "Missing", ORIGIN, move=True)
    with pytest.raises(MailboxNotFound):
        await store.copy_messages(12345, [1], bob.id, "Trash", ORIGIN)
    assert env.take() == []
    assert env.logged() == before
    assert await inbox(store, bob) == box
    assert (await store.get_mailbox(bob.id, "Trash")).messages == 0


async def test_rollback_on_error_inside_transaction(
    store: SqliteStore, env: Env, bob: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after some statements ran (here: writing change_log) rolls all back."""
    await store.append(bob.id, "INBOX", [new()], ORIGIN)
    box = await inbox(store, bob)
    env.take()

    def broken(change: object) -> str:
        raise RuntimeError("boom")

    # Where each backend writes change_log rows (SQLite: on the writer's thread).
    logger = {"sqlite": "store.sqlite.synctx", "postgres": "store.postgres.store"}[env.backend]
    monkeypatch.setattr(f"{logger}.to_json", broken)
    with pytest.raises(RuntimeError):
        await store.copy_messages(box.id, [1], bob.id, "Trash", ORIGIN, move=True)
    monkeypatch.undo()
    assert env.take() == []
    assert await inbox(store, bob) == box
    assert (await store.get_mailbox(bob.id, "Trash")).messages == 0
    env.check_counters()
    assert (await store.append(bob.id, "INBOX", [new()], ORIGIN)).uids == (2,)


async def test_publish_order_is_commit_order(store: SqliteStore, env: Env, bob: User) -> None:
    await asyncio.gather(*(store.append(bob.id, "INBOX", [new(str(i))], ORIGIN) for i in range(20)))
    changes = env.take()
    assert [c.seq for c in changes] == sorted(c.seq for c in changes)
    uids = [c.messages[0].uid for c in changes if isinstance(c, MessagesAdded)]
    assert uids == list(range(1, 21))
    assert changes == env.logged()[-20:]


async def test_cancelled_caller_still_commits_and_publishes(
    store: SqliteStore, env: Env, bob: User
) -> None:
    task = asyncio.ensure_future(store.append(bob.id, "INBOX", [new()], ORIGIN))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await store.close()  # waits for the write in flight
    store = await env.open()
    box = await store.open_mailbox(bob.id, "INBOX", claim_recent=False)
    assert box.uids == [1]  # the transaction went on in its own task
    published = env.take()
    assert len(published) == 1 and published == env.logged()[-1:]


async def test_recent(store: SqliteStore, env: Env, bob: User) -> None:
    await store.append(bob.id, "INBOX", [new(), new()], ORIGIN)
    examine = await store.open_mailbox(bob.id, "INBOX", claim_recent=False)
    assert examine.recent == {1, 2}
    first = await store.open_mailbox(bob.id, "INBOX", claim_recent=True)
    assert first.recent == {1, 2} and first.mailbox.recent == 2
    second = await store.open_mailbox(bob.id, "INBOX", claim_recent=True)
    assert second.recent == frozenset()
    assert (await inbox(store, bob)).recent == 0
    await store.append(bob.id, "INBOX", [new(), new()], ORIGIN)
    assert (await inbox(store, bob)).recent == 2
    assert await store.claim_recent(first.mailbox.id, [3, 4]) == {3, 4}
    assert await store.claim_recent(first.mailbox.id, [3, 4]) == frozenset()
    assert await store.claim_recent(first.mailbox.id, []) == frozenset()


async def test_recent_claim_not_stored_is_not_kept(
    store: SqliteStore, env: Env, bob: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim whose write fails raises, and is forgotten: the next claim decides from the
    table again instead of from a floor nothing stored."""
    box = (await store.open_mailbox(bob.id, "INBOX", claim_recent=True)).mailbox
    await store.append(bob.id, "INBOX", [new(), new()], ORIGIN)
    # SQLite claims in one round trip to its writer thread (`_write_sync`), PostgreSQL in a
    # transaction (`_write`): whichever the store writes the claim with fails.
    writer = "_write_sync" if hasattr(store, "_write_sync") else "_write"
    real_write = getattr(store, writer)

    async def failing_write(body: object) -> object:
        raise StoreError("disk full")

    monkeypatch.setattr(store, writer, failing_write)
    with pytest.raises(StoreError):
        await store.claim_recent(box.id, [1, 2])
    monkeypatch.setattr(store, writer, real_write)
    assert await store.claim_recent(box.id, [1, 2]) == {1, 2}
    assert (await inbox(store, bob)).recent == 0


async def test_open_mailbox_snapshot(store: SqliteStore, env: Env, bob: User) -> None:
    await store.append(
        bob.id,
        "INBOX",
        [new(flags=("\\Seen", "$Junk")), new(flags=("todo",)), new(flags=("$junk", "\\Flagged"))],
        ORIGIN,
    )
    snapshot = await store.open_mailbox(bob.id, "inbox", claim_recent=True)
    assert snapshot.uids == [1, 2, 3]
    assert snapshot.first_unseen_uid == 2
    assert snapshot.keywords == ("$Junk", "todo")
    assert snapshot.seq == env.logged()[-1].seq
    assert snapshot.mailbox.subscribed
    with pytest.raises(MailboxNotFound):
        await store.open_mailbox(bob.id, "Nope", claim_recent=True)


async def test_changedsince(store: SqliteStore, bob: User) -> None:
    await store.append(bob.id, "INBOX", [new(), new(), new()], ORIGIN)
    box = await inbox(store, bob)
    await store.store_flags(box.id, [2], "+", ["\\Seen"], ORIGIN)
    assert [r.uid for r in await store.fetch(box.id, [1, 2, 3], changedsince=2)] == [2]
    assert [r.uid for r in await store.fetch(box.id, range(1, 4), changedsince=1)] == [1, 2, 3]


async def test_big_and_multi_append(store: SqliteStore, env: Env, bob: User) -> None:
    big = message("Big", body="x" * 80 + "\r\n") * 1
    body = ("y" * 998 + "\r\n") * 400  # above the parse-in-thread threshold
    many = [NewMessage(big), NewMessage(message("Large", body=body))] + [
        new(str(i)) for i in range(50)
    ]
    result = await store.append(bob.id, "INBOX", many, ORIGIN)
    assert result.uids == tuple(range(1, 53))
    records = await store.fetch((await inbox(store, bob)).id, list(result.uids), content=True)
    assert [r.content for r in records] == [m.content for m in many]
    env.check_counters()
    with pytest.raises(ValueError, match="nothing"):
        await store.append(bob.id, "INBOX", [], ORIGIN)


async def test_added_events_name_the_contents_row_for_emailid(
    store: SqliteStore, env: Env, bob: User
) -> None:
    """APPEND, COPY and MOVE events carry each message's contents id (EMAILID in the events,
    store/objectid.py), the id FETCH reports, shared by the copy, on both backends."""
    await store.append(bob.id, "INBOX", [new("one"), new("two")], ORIGIN)
    box = await inbox(store, bob)
    [appended] = [c for c in env.take() if isinstance(c, MessagesAdded)]
    ids = {r.uid: r.content_id for r in await store.fetch(box.id, [1, 2])}
    assert [m.content_id for m in appended.messages] == [ids[1], ids[2]]
    assert ids[1] != ids[2]
    await store.copy_messages(box.id, [1], bob.id, "Trash", ORIGIN)
    await store.copy_messages(box.id, [2], bob.id, "Archive", ORIGIN, move=True)
    copied, moved = [c for c in env.take() if isinstance(c, MessagesAdded)]
    assert [m.content_id for m in copied.messages] == [ids[1]]
    assert [m.content_id for m in moved.messages] == [ids[2]]


async def test_fetch_wire_is_what_the_renderer_made_at_append(env: Env) -> None:
    """A store opened with a renderer (store.api.Prerender) keeps its bytes per contents row
    and hands them to a ``wire`` FETCH without the structure; a message stored without a
    renderer is served its structure instead (the renderer's fallback), on both backends."""
    plain = await env.open()
    user = await plain.create_user("bob", "pw")
    await plain.append(user.id, "INBOX", [new("before")], ORIGIN)
    await plain.close()
    rendered = await env.open(prerender=lambda part: f"<{part.subtype}>".encode())
    await rendered.append(user.id, "INBOX", [new("after")], ORIGIN)
    box = await inbox(rendered, user)
    old, fresh = await rendered.fetch(box.id, [1, 2], wire=True)
    assert (old.wire, old.structure is not None) == (None, True)
    assert (fresh.wire, fresh.structure) == (b"<plain>", None)
    await rendered.copy_messages(box.id, [2], user.id, "Trash", ORIGIN)
    trash = await rendered.get_mailbox(user.id, "Trash")
    [copied] = await rendered.fetch(trash.id, [1], wire=True)
    assert copied.wire == b"<plain>"  # the contents row is shared, so are its bytes


async def test_fetch_plain_reads_contents_columns(env: Env) -> None:
    """Issue 17 (FETCH rendered from rows): ``wire``, ``header`` and ``raw`` in the same
    query as the plain columns, for one range and several; ``wire`` None for a message
    stored without a renderer; ``header`` None past HEADER_ROW_MAX (read with `fetch`)."""
    plain = await env.open()
    user = await plain.create_user("bob", "pw")
    await plain.append(user.id, "INBOX", [new("before")], ORIGIN)
    await plain.close()
    store = await env.open(prerender=lambda part: f"<{part.subtype}>".encode())
    long_header = message("long", extra="X-Long: " + "y" * HEADER_ROW_MAX + "\r\n")
    await store.append(user.id, "INBOX", [new("after"), NewMessage(long_header), new("3")], ORIGIN)
    box = await inbox(store, user)
    records = await store.fetch(box.id, [1, 2, 3, 4], content=True, wire=True, header=True)
    for uids in ([1, 2, 3, 4], [1, 3, 4, 7]):
        rows = await store.fetch_plain(box.id, uids, ("flags", "wire", "header", "raw", "size"))
        want = [
            (
                r.uid,
                " ".join(r.flags),
                r.wire,
                r.header if r.uid != 3 else None,
                r.content,
                r.size,
            )
            for r in records
            if r.uid in uids
        ]
        assert rows == want
    assert [r[2] for r in rows] == [None, b"<plain>", b"<plain>"]
    assert records[2].header is not None and len(records[2].header) > HEADER_ROW_MAX
    assert [r.header[:6] for r in records if r.header] == [b"From: "] * 4
    assert await store.fetch_plain(box.id, [2], ("header",)) == [(2, records[1].header)]
