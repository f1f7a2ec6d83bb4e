"""The SQLite message store: `SqliteStore`, implementing `store.api.Store` on aiosqlite.

Owns: the SQL (schema in store/sqlite/migrations/, applied by store/sqlite/migrate.py),
transactions and the change_log outbox. Must not import imapd or notify: it is handed a
``publish`` callable. Here: opening and closing, the transaction machinery, the outbox and
other processes' commits. The operations are mixins, a module per family: users, passwords,
quota roots and push registrations (store/sqlite/users.py); mailboxes, names, subscriptions,
SELECT, ACL and METADATA (store/sqlite/mailboxes.py); APPEND (store/sqlite/append.py);
REPLACE, FETCH, STORE, EXPUNGE, COPY/MOVE, SEARCH, vanished UIDs and expiry
(store/sqlite/messages.py); what they share (`_Mbox`, SQL fragments, `_Tx`, lookups) is in
store/sqlite/base.py.

Implementation notes
--------------------
- Two connections. The *writer* runs every write transaction, serialised by ``_lock``:
  ``BEGIN IMMEDIATE``, the change, the change_log rows for its Changes, ``COMMIT``, then
  ``publish(changes)`` while still holding the lock, so publish order is commit order and a
  rollback publishes nothing. Writes queued meanwhile by other sessions commit together,
  each in a savepoint, under one COMMIT and one fsync (group commit:
  store/sqlite/groupcommit.py); a write that fails rolls back alone. The *reader* serves
  fetch, search, list, status, get_mailbox, subscriptions and vanished_since in autocommit
  mode: in WAL mode each statement reads the latest committed snapshot, so a session that
  was just published a change can read it.
- ``open_mailbox`` and ``claim_recent`` run on the writer under the lock, so a SELECT's
  snapshot and MAX(change_log.seq) come from one transaction and no write slips between.
- ``publish`` is synchronous and must not block (it only enqueues; see notify/bus.py). No
  socket is ever written while the writer lock is held.
- Other processes (the CLI) commit to the same file. Once ``follow_foreign_commits`` is on
  (the server), their change_log rows are published too, in commit order: inside an own
  transaction a gap before its first seq is read back and published ahead of its Changes
  (AUTOINCREMENT seqs and one writer at a time: a gap is exactly that), and
  ``publish_foreign`` (the control socket's "changed", imapd/control/) catches up under
  the lock when the server is idle.
- A write transaction runs in its own task, shielded: a caller cancelled mid-transaction
  (client gone, shutdown) cannot leave a COMMIT unpublished or a transaction open.
- Durability: WAL with ``synchronous=FULL`` (the default) fsyncs the WAL at every COMMIT,
  so a COMMIT that returned survives kill -9 *and* power loss. ``NORMAL`` fsyncs only at
  checkpoints: it survives kill -9 (committed frames are in the OS page cache) but a power
  loss may lose the last transactions (never corrupts). The choice is ``open(synchronous=)``.
- Round trips: each aiosqlite call is a thread hop, so statements are combined (UPDATE ...
  RETURNING for counters, subqueries in RETURNING, executemany, UID sets as one JSON array
  of ranges joined with ``json_each``); MIME is parsed once per message at APPEND, before
  the transaction begins. APPEND's whole transaction is one function run on the writer's
  thread (store/sqlite/synctx.py, `_write_sync`): alone, BEGIN IMMEDIATE, its statements,
  its change_log rows and COMMIT are one hop; in a group, the job and its change_log rows
  are one. Code running there never awaits and reads no state the loop changes while the
  writer lock is held; what it cannot finish as the awaiting path would (the calendar
  index, other processes' commits to publish first) it leaves to that path, transaction
  open.
- Counters (messages, unseen, size, deleted) live in ``mailboxes`` and change in the same
  transaction as the messages, so STATUS and Counts never scan. ``uidnext`` only grows
  (also across expunge and restart); UIDVALIDITY is ``max(source(), last + 1)`` over the
  whole store (``meta.uidvalidity``), so it strictly increases even if the clock steps back.
- MODSEQ: ``highestmodseq`` starts at 1; each change increments it once and gives the new
  value to every message it touches (append, copy target, flag change, expunge record).
  A STORE that changes nothing gets no modseq and publishes nothing.
- \\Recent: ``recent_uid`` is the first UID no session has claimed. A read-write SELECT
  claims all UIDs below ``uidnext``; a session sees new arrivals via ``claim_recent``;
  EXAMINE reports without claiming (RFC 3501 §6.3.2). ``MailboxInfo.recent`` counts the
  unclaimed messages. ``_recent_floor`` mirrors ``recent_uid`` of the mailboxes claimed
  in since it was last cleared, so that when one new message reaches thousands of selected
  sessions the claim is refused in memory at once for all but the first; a claim the floor
  allows is decided by reading the row in the write transaction, so other processes on the
  file (--workers, docs/workers.md) never show \\Recent twice. The floor is forgotten whenever a
  mailbox is created, renamed or deleted (a revived placeholder or a reused id starts at 1).
- Contents are shared by copies (COPY/MOVE never duplicate the bytes); ``contents.refs`` is
  kept by triggers and the row is deleted with its last message.
- Renaming INBOX (RFC 3501 §6.3.5) creates the new mailbox with a fresh UIDVALIDITY and moves
  the messages into it keeping their UIDs, modseqs and flags; INBOX keeps its UIDVALIDITY and
  ``uidnext`` (UIDs are never reused) and records the moved UIDs as expunged. Published as
  MailboxCreated + MessagesAdded(kind="move") + MessagesExpunged(kind="move"), exactly as a
  CREATE and a MOVE of everything. Inferiors of INBOX are not renamed. Other renames keep
  the mailbox id and UIDVALIDITY and take children along. RENAME and DELETE leave
  subscriptions alone (RFC 9051 §6.3.6: renaming does not update subscription information;
  RFC 3501 §6.3.6: the server must not remove a name from the subscription list).
- MailboxDeleted carries the mailbox's counts as they were when it was deleted (there is no
  "after"); delete_user publishes one per mailbox without per-message facts.
- Names (RFC 2342): methods taking a mailbox name take it as the asking user writes it;
  ``_locate`` turns ``Other Users/alice/X`` and ``Shared/X`` into (owner id, owner-relative
  name) (store/namespace.py; shared mailboxes belong to the pseudo-user ""). Rows, Changes and
  events keep owner-relative names; `MailboxInfo` from get_mailbox/list_mailboxes carries the
  user's name for it and their effective rights (store/acl.py). Handlers check rights
  (imapd/commands/acl.py); ``append``/``copy_messages(need=)`` check them again on the
  target, by id, in the write transaction, and filter flags with them (RFC 4314 §4).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import sqlite3
import time
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import aiosqlite

from store import parseproc, quota
from store.api import Prerender, Publish
from store.authcache import AuthCache
from store.changefeed import Unreadable, follow_change_log
from store.changes import (
    Change,
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    Origin,
    QuotaChanged,
    SessionEvent,
)
from store.errors import StoreDamaged
from store.mime import BodyPart
from store.passwords import DEFAULT_N
from store.sqlite import files, search, synctx
from store.sqlite.base import _one, _rows, _Tx
from store.sqlite.calendar import SqliteCalendar, calendar_work
from store.sqlite.cluster import SqliteCluster  # several processes (docs/workers.md)
from store.sqlite.groupcommit import GroupCommit, _Job
from store.sqlite.mailboxes import SqliteMailboxes
from store.sqlite.messages import SqliteMessages
from store.sqlite.migrate import migrate
from store.sqlite.preview import SqlitePreviews
from store.sqlite.sort import SqliteSort
from store.sqlite.synctx import SyncTx
from store.sqlite.urlauth import SqliteUrlAuth
from store.sqlite.users import SqliteUsers

__all__ = ["SqliteStore"]

log = logging.getLogger("store.sqlite")

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000  # another process (the CLI) holding the write lock briefly
SYNCHRONOUS = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})
#: What `SqliteStore.open` checks of an existing database (see there).
STARTUP_CHECKS = frozenset({"schema", "quick"})
_FOREIGN_BATCH = 1000  # other processes' change_log rows published per round trip


class _WriterLog:
    """change_log rows below ``before`` read on the writer connection (inside its lock and,
    from `_foreign_before`, inside an own transaction): other processes' commits."""

    def __init__(self, db: aiosqlite.Connection, before: int) -> None:
        self._db = db
        self._before = before

    async def change_log(self, after: int = 0, limit: int = 1000) -> list[tuple[int, str, str]]:
        rows = await _rows(
            self._db,
            "SELECT seq, kind, payload FROM change_log WHERE seq > ? AND seq < ?"
            " ORDER BY seq LIMIT ?",
            (after, self._before, limit),
        )
        return [(r[0], r[1], r[2]) for r in rows]


def _not_published(seq: int, kind: str) -> None:
    log.warning("change_log seq %d (%s) cannot be read; not published", seq, kind)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _log_changes(tx: _Tx) -> list[Change]:
    """Insert a transaction's pending Changes into change_log; return them with their seqs
    (store/sqlite/synctx.py, in one round trip)."""
    return await tx.call(synctx.log_changes)


class SqliteStore(
    GroupCommit,
    SqliteUsers,
    SqliteMailboxes,
    SqliteMessages,
    SqliteCalendar,
    SqliteSort,
    SqlitePreviews,
    SqliteUrlAuth,
    SqliteCluster,
):
    """The Store on one SQLite file. Build with `open`; see the module's implementation
    notes for the concurrency and durability rules. The operations are the mixins'."""

    _log_changes = staticmethod(_log_changes)  # for GroupCommit (store/sqlite/groupcommit.py)

    def __init__(
        self,
        writer: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        publish: Publish,
        *,
        scrypt_n: int,
        clock: Callable[[], dt.datetime],
        uidvalidity: Callable[[], int] | None,
        auth_cache: AuthCache | None = None,
        prerender: Prerender | None = None,
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._publish = publish
        self._scrypt_n = scrypt_n
        self._clock = clock
        self._uidvalidity_source = uidvalidity
        self._lock = asyncio.Lock()
        self._queue: deque[_Job] = deque()  # write jobs for the next group commit
        self._drainer: asyncio.Task[None] | None = None  # the task committing them
        self._structures: OrderedDict[int, BodyPart] = OrderedDict()
        self._prerender = prerender  # store.api.Prerender: FETCH's bytes made at APPEND
        self._dummy_hash: str | None = None
        #: Successful verifications remembered (store/authcache.py); None: off.
        self._auth_cache = auth_cache
        self._closed = False
        #: The last change_log seq published, once `follow_foreign_commits` is on.
        self._published: int | None = None
        #: mailbox id -> a lower bound of its ``recent_uid`` (see the notes on \\Recent).
        self._recent_floor: dict[int, int] = {}
        #: The shared lock on the database file (store/sqlite/files.py), held until `close`.
        self._file_lock: files.StoreLock | None = None
        self._path: Path | None = None  # the database file, for error messages
        #: Called after each own COMMIT that logged changes (not for foreign ones): the
        #: server's wake of the other processes on this file (imapd/cluster/wake.py).
        self.on_commit: Callable[[], None] | None = None

    @classmethod
    async def open(
        cls,
        path: str | Path,
        publish: Publish,
        *,
        synchronous: str = "FULL",
        scrypt_n: int = DEFAULT_N,
        clock: Callable[[], dt.datetime] | None = None,
        uidvalidity: Callable[[], int] | None = None,
        check: str = "schema",
        auth_cache: AuthCache | None = None,
        prerender: Prerender | None = None,
    ) -> SqliteStore:
        """Open (creating and migrating) the store at ``path``. ``clock`` returns aware
        datetimes (default: now in UTC); ``uidvalidity`` proposes UIDVALIDITY values
        (default: the clock's Unix time), always raised above the last one handed out.

        A missing database is created (store/sqlite/files.py: mode 0600, atomically); an existing
        one that is empty, not SQLite or unreadable raises StoreDamaged, and so does one
        that fails ``check``: "schema" reads the header and schema only (what any open
        does; cheap at any size), "quick" runs ``PRAGMA quick_check`` too (reads every
        page: seconds per GB). A full disk raises DiskFull (store/errors.py).
        ``auth_cache``: remembered logins for `authenticate` (store/authcache.py)."""
        sync = synchronous.upper()
        if sync not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {sorted(SYNCHRONOUS)}")
        if check not in STARTUP_CHECKS:
            raise ValueError(f"check must be one of {sorted(STARTUP_CHECKS)}")
        path = Path(path)
        lock = files.StoreLock(path, exclusive=False).acquire()
        try:
            if not files.check_database(path):  # StoreDamaged: empty, not SQLite, unreadable
                await asyncio.to_thread(files.create_database, path)
            files.warn_if_shared(path)
            writer, reader = await cls._connect(path, sync, check)
        except BaseException as exc:
            lock.release()
            if (full := files.unavailable(exc, path)) is not None:
                raise type(full)(f"{full.text} ({path})") from exc
            if (broken := files.damaged(exc, path)) is not None:
                raise broken from exc
            raise
        store = cls(
            writer,
            reader,
            publish,
            scrypt_n=scrypt_n,
            clock=clock or _utc_now,
            uidvalidity=uidvalidity,
            auth_cache=auth_cache,
            prerender=prerender,
        )
        store._file_lock = lock
        store._path = path
        return store

    @classmethod
    async def open_read_only(
        cls, path: str | Path
    ) -> tuple[SqliteStore, Callable[[], Awaitable[None]]]:
        """Another process's view of the file at ``path``: one connection opened read-only
        (``mode=ro``, ``query_only``), so change_log and fetch are the server's own queries
        and a write fails. Nothing is migrated or written: a missing file is an error, not a
        new store. Returns the store and its closer."""
        resolved = await asyncio.to_thread(Path(path).resolve)
        if not await asyncio.to_thread(resolved.is_file):
            raise FileNotFoundError(f"no store at {resolved}")
        conn = await aiosqlite.connect(
            resolved.as_uri() + "?mode=ro", uri=True, isolation_level=None
        )
        try:
            await conn.execute("PRAGMA busy_timeout = 5000")
            await conn.execute("PRAGMA query_only = ON")
        except BaseException:
            await conn.close()
            raise

        def no_publish(changes: object) -> None:
            raise RuntimeError("the outbox is opened read-only")

        store = cls(conn, conn, no_publish, scrypt_n=2, clock=_utc_now, uidvalidity=None)
        return store, conn.close

    @staticmethod
    async def _connect(
        path: Path, sync: str, check: str
    ) -> tuple[aiosqlite.Connection, aiosqlite.Connection]:
        """The writer (migrated) and the reader connection; ``check`` as in `open`."""
        writer = await aiosqlite.connect(path, isolation_level=None)
        reader: aiosqlite.Connection | None = None
        try:
            if check == "quick":
                started = time.monotonic()
                problems = [str(r[0]) for r in await _rows(writer, "PRAGMA quick_check")]
                log.info(
                    "%s: quick_check %s in %.2f s",
                    path,
                    problems[0] if problems else "?",
                    time.monotonic() - started,
                )
                if problems != ["ok"]:
                    raise StoreDamaged(
                        f"{path} is damaged (PRAGMA quick_check: {'; '.join(problems[:3])});"
                        " run `imapd fsck`, restore a backup (`imapd restore`) or start afresh"
                        " (`imapd init`)"
                    )
            await writer.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = await _one(writer, "PRAGMA journal_mode = WAL")
            if mode is None or str(mode[0]).lower() != "wal":
                log.warning("journal_mode is %s, not WAL: readers will block the writer", mode)
            await writer.execute(f"PRAGMA synchronous = {sync}")  # checked against SYNCHRONOUS
            await writer.execute("PRAGMA foreign_keys = ON")
            await migrate(writer)
            reader = await aiosqlite.connect(path, isolation_level=None)
            await reader.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await reader.execute("PRAGMA query_only = ON")
            matcher = search.TextMatcher()
            await reader.create_function("imap_text", 6, matcher.text, deterministic=True)
            await reader.create_function("imap_sent", 5, matcher.sent, deterministic=True)
        except BaseException:
            await writer.close()
            if reader is not None:
                await reader.close()
            raise
        return writer, reader

    async def close(self) -> None:
        """Wait for the write in flight, then close both connections (and the file lock)."""
        if self._closed:
            return
        self._closed = True
        async with self._lock:
            try:
                await self._reader.close()
                await self._writer.close()
                await asyncio.to_thread(parseproc.shutdown)  # this process's, if it made one
            finally:
                if self._file_lock is not None:
                    self._file_lock.release()

    # --- transaction machinery ------------------------------------------------------------
    async def _transaction(
        self,
        body: Callable[[_Tx], Awaitable[T]],
        answer: asyncio.Future[T] | None,
        sync: Callable[[SyncTx], T] | None = None,
        before: Callable[[], object] | None = None,
    ) -> T:
        """One write transaction with the writer lock held (`GroupCommit._drain` holds it):
        a group of one, as every write ran before group commit. ``sync``: the body as a
        function on the writer's thread, run with BEGIN, its change_log rows and COMMIT in
        one round trip (store/sqlite/synctx.py) unless it leaves work to this path."""
        db = self._writer
        try:
            changes: list[Change] | None = None
            if sync is None:
                await db.execute("BEGIN IMMEDIATE")
                tx = _Tx(db, self._now())
                result = await body(tx)
                done = False
            else:
                tx = _Tx(db, self._now())
                last = self._published
                ran = await tx.call(
                    lambda s: synctx.run_alone(s, sync, calendar_work, last, before)
                )
                result, changes, done = ran.result, ran.changes, ran.done
            if not done:
                if changes is None:
                    await self._calendar_index(tx)  # the calendar index (calendar.py)
                    changes = await _log_changes(tx)
                changes = [*await self._foreign_before(changes), *changes]
                await db.execute("COMMIT")
            assert changes is not None
        except BaseException as exc:
            try:
                await db.execute("ROLLBACK")
            except sqlite3.OperationalError:  # COMMIT failed and SQLite rolled back
                log.debug("no transaction to roll back", exc_info=True)
            if isinstance(exc, quota.QuotaRefused):
                await self._record_refusal(exc.change)
            if (refused := files.unavailable(exc, self._path)) is not None:
                # A full disk is the operator's to fix, not a bug: one line, no
                # traceback; the client gets NO [UNAVAILABLE] and nothing changed.
                log.warning(
                    "write refused, nothing changed: %s (%s: %s)", refused.text, self._path, exc
                )
                raise refused from None
            raise
        if answer is not None and not answer.done():
            answer.set_result(result)
        if changes:
            self._announce_own(changes)
        return result

    async def _record_refusal(self, change: QuotaChanged) -> None:
        """Commit a refused transaction's QuotaChanged(kind="exceeded") in a transaction of
        its own, right after the ROLLBACK and still under the writer lock (so in commit
        order), then publish it. A failure here is logged; the refusal stands."""
        db = self._writer
        try:
            await db.execute("BEGIN IMMEDIATE")
            try:
                tx = _Tx(db, change.at)
                tx.emit(change, change.user)
                changes = await _log_changes(tx)
                changes = [*await self._foreign_before(changes), *changes]
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise
        except Exception as exc:
            if (refused := files.unavailable(exc, self._path)) is not None:
                log.warning(
                    "quota: the QuotaExceed of root %r was not recorded: %s",
                    change.root,
                    refused.text,
                )
            else:
                log.exception("quota: the QuotaExceed of root %r was not recorded", change.root)
            return
        self._announce_own(changes)

    # --- maintenance (not part of the Store protocol) ---------------------------------------
    async def change_log(self, after: int = 0, limit: int = 1000) -> list[tuple[int, str, str]]:
        """(seq, kind, payload) rows with seq > ``after``, for durable consumers."""
        rows = await _rows(
            self._reader,
            "SELECT seq, kind, payload FROM change_log WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        )
        return [(r[0], r[1], r[2]) for r in rows]

    # --- events (issue 4): session events and durable consumers' cursors ---------------------
    async def record_session_event(
        self, user: str, kind: str, origin: Origin, server: str | None = None
    ) -> None:
        """Log a Login/Logout (``kind`` login|logout) as a SessionEvent change and publish
        it: the access events of RFC 5423 §4.4 reach the outbox like any other change."""
        if kind not in {"login", "logout"}:
            raise ValueError(f"bad session event kind {kind!r}")

        async def body(tx: _Tx) -> None:
            tx.emit(SessionEvent(0, tx.at, origin, user, kind, server), user)

        await self._write(body)

    def follow(
        self,
        after: int,
        *,
        wait: Callable[[], Awaitable[None]] | None = None,
        unreadable: Unreadable | None = None,
    ) -> AsyncGenerator[Change, None]:
        """`ChangeFeed.follow`: change_log read on the reader connection, `BATCH` rows a
        round trip (store/changefeed.py)."""
        return follow_change_log(self, after, wait=wait, unreadable=unreadable)

    async def change_log_head(self) -> int:
        """The highest change_log.seq (0 when empty)."""
        row = await _one(self._reader, "SELECT coalesce(max(seq), 0) FROM change_log")
        return int(row[0]) if row else 0

    async def event_cursor(self, name: str) -> int | None:
        """The last change_log.seq consumer ``name`` delivered, or None if it never ran."""
        row = await _one(self._reader, "SELECT seq FROM event_cursors WHERE name = ?", (name,))
        return None if row is None else int(row[0])

    async def set_event_cursor(self, name: str, seq: int) -> None:
        """Remember that consumer ``name`` delivered everything up to ``seq`` (no Change)."""

        async def body(tx: _Tx) -> None:
            await tx.run(
                "INSERT INTO event_cursors (name, seq) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
                (name, seq),
            )

        await self._write(body)

    # --- commits of other processes (the CLI; imapd/control/) ------------------------------
    async def follow_foreign_commits(self) -> None:
        """From now on publish other processes' commits too, in commit order, starting at
        the current end of change_log: before each own transaction's Changes, the rows
        committed elsewhere since the last publish (`_foreign_before`), and on request
        (`publish_foreign`, when the CLI says it committed). The server turns this on."""
        async with self._lock:
            row = await _one(self._writer, "SELECT coalesce(max(seq), 0) FROM change_log")
            self._published = int(row[0]) if row else 0

    async def publish_foreign(self) -> int:
        """Publish the change_log rows above the last seq published (other processes'
        commits), under the writer lock so that they keep their place in commit order.
        Returns the last seq published (0 when not following)."""
        if self._published is None or self._closed:
            return self._published or 0
        async with self._lock:
            while True:
                changes = await self._foreign_rows(None)
                if not changes:
                    break
                self._announce(changes)
            return self._published

    async def _foreign_before(self, own: list[Change]) -> list[Change]:
        """Inside an own transaction (its rows logged, not committed): the rows other
        processes committed between the last publish and ``own``'s first seq. Seqs come
        from AUTOINCREMENT and one writer at a time, so a gap means exactly that; without
        one (the usual case) this costs nothing."""
        last = self._published
        if last is None or not own or own[0].seq == last + 1:
            return []
        return await self._foreign_rows(own[0].seq)

    async def _foreign_rows(self, before: int | None) -> list[Change]:
        """Changes of change_log rows after ``_published`` (and below ``before``), at most
        `_FOREIGN_BATCH` when unbounded: the change-log follower (store/changefeed.py) over
        the writer connection, which holds the lock. An unreadable row is skipped with a
        warning; when nothing readable follows, ``_published`` steps over it."""
        assert self._published is not None
        passed = 0

        def unreadable(seq: int, kind: str) -> None:
            nonlocal passed
            _not_published(seq, kind)
            passed = seq

        below = _WriterLog(self._writer, 2**63 - 1 if before is None else before)
        batch = _FOREIGN_BATCH if before is None else -1  # -1: every row below ``before``
        out: list[Change] = []
        feed = follow_change_log(below, self._published, unreadable=unreadable, batch=batch)
        async with contextlib.aclosing(feed):
            async for change in feed:
                out.append(change)
                if before is None and len(out) >= _FOREIGN_BATCH:
                    break
        if not out and passed:
            self._published = max(self._published, passed)
        return out

    def _announce_own(self, changes: Sequence[Change]) -> None:
        """`_announce` this process's own committed ``changes``, then wake the other
        processes on the store (docs/workers.md) to publish them too."""
        self._announce(changes)
        if self.on_commit is not None:
            self.on_commit()

    def _announce(self, changes: Sequence[Change]) -> None:
        """Record ``changes`` as published and hand them to the bus, in commit order. They
        are committed: a failing listener is logged and never fails the caller."""
        self._note_published(changes)
        try:
            self._publish(changes)
        except Exception:
            log.exception("publish failed for change_log seq %s", changes[0].seq)

    def _note_published(self, changes: Sequence[Change]) -> None:
        if self._recent_floor and any(
            isinstance(c, MailboxCreated | MailboxRenamed | MailboxDeleted) for c in changes
        ):
            self._recent_floor.clear()  # a revived placeholder or reused id restarts at 1
        if self._published is not None and changes:
            self._published = max(self._published, changes[-1].seq)
