"""The PostgreSQL message store: `PostgresStore`, implementing `store.api.Store` on asyncpg
(issue 18). The SQLite store's contract (store/README.md, "What a backend implements") with
these PostgreSQL-specific notes:

- Each change is ONE transaction on a pooled connection (READ COMMITTED). Row locks order
  concurrent changes: the mailbox row (UIDs, MODSEQ, counters change in one UPDATE), the
  ``meta`` uidvalidity row, the quota roots (store/postgres/quota.py). Nothing is serialised
  per process: several processes (instances, the CLI) write at once.
- The change log in commit order. A PostgreSQL sequence is not commit order (A takes 10, B
  takes 11, B commits first: a follower past 11 misses 10). So seqs are not taken during the
  transaction: right before COMMIT, after all its other work, a transaction takes the
  transaction-level advisory lock `COMMIT_LOCK`, reads max(seq) and writes its rows as the
  next seqs (one call of the function ``imapd_log_changes``, migrations/0008), then
  commits, which releases the lock. A transaction is visible to others before
  its locks are released, so whoever numbers next does so after the previous one is visible:
  seqs are gap-free and increase in commit order across all processes, and a reader that sees
  seq N sees every seq below it. The lock is held only for that INSERT and the COMMIT.
- Publication in commit order: after COMMIT a transaction publishes "everything up to my last
  seq" under an asyncio lock: rows another transaction (this process or another) committed
  below its own first seq are read back from change_log and published first; when following
  foreign commits, a LISTEN on channel ``imapd_changes`` (each logging transaction NOTIFYs its
  last seq; delivered at COMMIT) wakes `publish_foreign`: no polling loop.
- \\Recent is claimed in the database (the mailbox row, ``FOR UPDATE``): exactly one session
  across all instances gets a message as \\Recent.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable, Sequence
from typing import Any, TypeVar

import asyncpg

from store import quota
from store.api import ChangeFeed, Prerender, Publish, PushDevice, Store, User
from store.authcache import AuthCache
from store.changefeed import Unreadable, follow_change_log
from store.changes import (
    ApplePushRegistered,
    Change,
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    Origin,
    QuotaChanged,
    SessionEvent,
    change_kind,
    to_json,
)
from store.errors import AuthFailed, StoreError, UserExists, UserNotFound
from store.passwords import DEFAULT_N, dummy_hash, hash_password, parameters, verify_password
from store.postgres import quota as quota_sql
from store.postgres.appendone import AppendAlone
from store.postgres.base import MBOX_SELECT, Mbox, Tx, fetch_one
from store.postgres.calendar import PostgresCalendar
from store.postgres.cluster import KICK_CHANNEL, PostgresCluster  # docs/workers.md
from store.postgres.expire import PostgresExpire
from store.postgres.groupcommit import GroupCommit
from store.postgres.mailboxes import PostgresMailboxes
from store.postgres.messages import PostgresMessages
from store.postgres.migrate import migrate
from store.postgres.pool import Pool
from store.postgres.preview import PostgresPreviews
from store.postgres.sort import PostgresSort
from store.postgres.urlauth import PostgresUrlAuth

__all__ = ["CHANNEL", "COMMIT_LOCK", "PostgresStore"]

log = logging.getLogger("store.postgres")
T = TypeVar("T")

#: pg_advisory_xact_lock key under which change_log rows are numbered (ASCII "imapdlog").
COMMIT_LOCK = 0x696D6170646C6F67
#: LISTEN/NOTIFY channel: the payload is the last seq a transaction logged.
CHANNEL = "imapd_changes"
_FOREIGN_BATCH = 1000
#: Seconds to wait for a new connection (an unreachable host fails at start, not after 60 s).
CONNECT_TIMEOUT = 10.0

DEFAULT_MAILBOXES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("INBOX", ()),
    ("Drafts", ("\\Drafts",)),
    ("Sent", ("\\Sent",)),
    ("Trash", ("\\Trash",)),
    ("Junk", ("\\Junk",)),
    ("Archive", ("\\Archive",)),
)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _no_reset(conn: asyncpg.Connection) -> None:
    """The pool's reset of a released connection: nothing to undo, so no round trip.
    asyncpg's default sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``
    at every release (every statement run on the pool, every transaction): pooled
    connections here never take session-level advisory locks, open cursors outside a
    transaction, LISTEN (the listener has its own connection) or SET anything; a
    transaction left open is still rolled back by asyncpg before this is called."""


def _not_published(seq: int, kind: str) -> None:
    log.warning("change_log seq %d (%s) cannot be read; not published", seq, kind)


async def _log_changes(tx: Tx) -> list[Change]:
    """Number the transaction's Changes under `COMMIT_LOCK` and insert them: the last
    statement before COMMIT (see the module notes), one round trip (the function
    ``imapd_log_changes`` of migrations/0009_write_path.sql: lock, max(seq), INSERT,
    NOTIFY of the last seq)."""
    row = await tx.one(
        "SELECT imapd_log_changes($1, $2, $3, $4, $5, $6)",
        COMMIT_LOCK,
        [change_kind(c) for c, _ in tx.pending],
        [u for _, u in tx.pending],
        [to_json(c) for c, _ in tx.pending],
        tx.at_iso,
        CHANNEL,
    )
    assert row is not None
    first = int(row[0])
    return [dataclasses.replace(c, seq=first + i) for i, (c, _) in enumerate(tx.pending)]


class PostgresStore(
    PostgresMailboxes,
    PostgresExpire,
    AppendAlone,  # a lone APPEND in one round trip (store/postgres/appendone.py)
    PostgresMessages,
    PostgresCalendar,
    PostgresSort,
    PostgresPreviews,
    PostgresUrlAuth,
    PostgresCluster,
    GroupCommit,  # concurrent APPENDs share a COMMIT (store/postgres/groupcommit.py)
):
    """The Store on one PostgreSQL database. Build with `open`."""

    def __init__(
        self,
        pool: Pool,
        publish: Publish,
        *,
        scrypt_n: int,
        clock: Callable[[], dt.datetime],
        uidvalidity: Callable[[], int] | None,
        prerender: Prerender | None = None,
    ) -> None:
        self._pool = pool
        self._prerender = prerender  # store.api.Prerender: FETCH's bytes made at APPEND
        self._dsn = ""  # for the LISTEN connection (set by `open`)
        self._publish = publish
        self._scrypt_n = scrypt_n
        self._clock = clock
        self._uidvalidity_source = uidvalidity
        self._dummy_hash: str | None = None
        self._recent_floor: dict[int, int] = {}  # store/postgres/mailboxes.py claim_recent
        self._claiming: dict[int, list[Any]] = {}
        #: Successful logins remembered (store/authcache.py), as the SQLite store does.
        self._auth_cache: AuthCache | None = None
        self._publish_lock = asyncio.Lock()
        #: The last change_log seq published; None until `follow_foreign_commits`.
        self._published: int | None = None
        self._listener: asyncpg.Connection | None = None
        self._wakeups: set[asyncio.Task[int]] = set()
        self._inflight: set[asyncio.Task[Any]] = set()
        self._grouped: dict[Hashable, collections.deque[Any]] = {}  # groupcommit.py
        #: This process's numbered transactions in seq order, published from the head.
        self._order: collections.deque[_Slot] = collections.deque()
        #: The last seq of each slot in ``_order`` (its NOTIFY payload: `_notified`).
        self._own_last: set[int] = set()
        self._alone = 0  # store/postgres/appendone.py: lone APPENDs in flight
        self._held: set[int] = set()  # and the LISTEN wake-ups held meanwhile
        self._under_quota: set[int] = set()  # store/postgres/append.py
        self._closed = False
        #: Called when a kick request is stored (imapd/cluster/node.py sets it; docs/workers.md).
        self.on_kick: Callable[[], None] | None = None

    @classmethod
    async def open(
        cls,
        dsn: str,
        publish: Publish,
        *,
        scrypt_n: int = DEFAULT_N,
        clock: Callable[[], dt.datetime] | None = None,
        uidvalidity: Callable[[], int] | None = None,
        auth_cache: AuthCache | None = None,
        min_size: int = 1,
        max_size: int = 10,
        prerender: Prerender | None = None,
    ) -> PostgresStore:
        """Connect (a pool of ``min_size``..``max_size``) and migrate. Raises SchemaTooNew
        (store/postgres/migrate.py) when the database has migrations this code lacks."""
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, timeout=CONNECT_TIMEOUT, reset=_no_reset
        )
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
        except BaseException:
            await pool.close()
            raise
        store = cls(
            Pool(pool),
            publish,
            scrypt_n=scrypt_n,
            clock=clock or _utc_now,
            uidvalidity=uidvalidity,
            prerender=prerender,
        )
        store._dsn = dsn
        store._auth_cache = auth_cache
        return store

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._inflight:  # let the transactions in flight commit and publish
            await asyncio.wait(list(self._inflight))
        for task in list(self._wakeups):
            task.cancel()
        if self._listener is not None:
            await self._listener.close()
        await self._pool.close()

    # --- transactions -----------------------------------------------------------------------
    async def _write(self, body: Callable[[Tx], Awaitable[T]]) -> T:
        """Run ``body`` in one transaction with its change_log rows, then publish.

        The transaction runs in a task of its own (kept in ``_inflight``; `close` waits for
        it), so a cancelled caller never cancels a transaction half way. The caller's
        ``answer`` is resolved right before its Changes are handed to ``publish`` (after any
        earlier commit read back meanwhile, in commit order), as the SQLite store does."""
        if self._closed:
            raise StoreError("The store is closed")
        answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(self._transaction(body, answer))
        self._inflight.add(task)
        task.add_done_callback(self._done)
        return await answer

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._inflight.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: the caller got it through ``answer``

    async def _transaction(
        self, body: Callable[[Tx], Awaitable[T]], answer: asyncio.Future[T]
    ) -> T:
        slot: _Slot | None = None
        try:
            async with self._pool.acquire() as conn:
                tx = Tx(conn, self._now())
                async with conn.transaction():
                    result = await body(tx)
                    if tx.pending:
                        await self._calendar_index(tx)  # store/postgres/calendar.py
                        slot = await self._numbered(tx)
        except BaseException as exc:
            if slot is not None:  # numbered, then COMMIT failed: nothing to publish
                await self._abandon(slot)
            if isinstance(exc, quota.QuotaRefused):
                await self._record_refusal(exc.change)
            if not answer.done():
                if isinstance(exc, asyncio.CancelledError):
                    answer.cancel()
                else:
                    answer.set_exception(exc)
            raise
        if slot is not None:
            # As SQLite does: the caller is answered in the same step as its Changes are
            # handed to ``publish`` (right before), so the committing session finds its own
            # change queued when its command ends (its EXISTS in the APPEND answer) and
            # still resumes ahead of the listeners the publication wakes.
            def answered() -> None:
                if not answer.done():
                    answer.set_result(result)

            slot.answer = answered
            slot.done = True
            try:
                await self._drain()
            except StoreError as exc:  # committed: the caller's answer stands (Unavailable)
                log.warning("publishing after COMMIT delayed: %s", exc.text)
        if not answer.done():
            answer.set_result(result)
        return result

    async def _abandon(self, slot: _Slot) -> None:
        """A numbered slot whose COMMIT failed: nothing to publish. Another process may
        take its seqs, and that NOTIFY may have been skipped as ours meanwhile: catch up
        once."""
        self._own_last.discard(slot.changes[-1].seq)
        slot.changes, slot.done = [], True
        await self._drain()
        if self._published is not None:
            self._notified(None, 0, CHANNEL, str(self._published + 1))

    async def _numbered(self, tx: Tx) -> _Slot:
        """Number ``tx``'s Changes (under COMMIT_LOCK: `_log_changes`) and take their place
        in this process's publication order, which is thereby seq order: the slot is queued
        while the lock is held, and the lock orders numbering."""
        changes = await _log_changes(tx)
        slot = _Slot(changes)
        self._order.append(slot)
        self._own_last.add(changes[-1].seq)
        return slot

    async def _drain(self) -> None:
        """Publish the committed slots at the head of the order (a slot still committing
        holds back those behind it)."""
        async with self._publish_lock:
            while self._order and self._order[0].done:
                slot = self._order.popleft()
                if slot.changes:
                    self._own_last.discard(slot.changes[-1].seq)
                if slot.changes:
                    await self._publish_locked(slot.changes, slot.answer)

    async def _record_refusal(self, change: QuotaChanged) -> None:
        """A refused transaction's QuotaChanged(kind="exceeded"), committed on its own right
        after the ROLLBACK, then published. A failure here is logged; the refusal stands."""
        slot: _Slot | None = None
        try:
            async with self._pool.acquire() as conn:
                tx = Tx(conn, change.at)
                tx.emit(change, change.user)
                async with conn.transaction():
                    slot = await self._numbered(tx)
        except Exception:
            log.exception("quota: the QuotaExceed of root %r was not recorded", change.root)
            if slot is not None:
                self._own_last.discard(slot.changes[-1].seq)
                slot.changes = []
        if slot is not None:
            slot.done = True
            await self._drain()

    async def _publish_locked(
        self, own: list[Change], answer: Callable[[], None] | None = None
    ) -> None:
        """Under ``_publish_lock``: publish, in commit order, everything up to ``own``'s
        last seq not yet published: when following other processes' commits, first the rows
        committed before ``own`` (read back), then ``own``."""
        answer = answer or (lambda: None)  # called right before ``own`` is published
        if self._published is None:  # not following: only this process's commits
            answer()
            self._announce(own)
            return
        if own[-1].seq <= self._published:
            answer()
            return  # published already (read back by `publish_foreign`)
        if own[0].seq > self._published + 1:
            await self._publish_rows(before=own[0].seq)
        fresh = [c for c in own if c.seq > self._published]
        answer()
        if fresh:
            self._announce(fresh)

    async def _publish_rows(self, before: int | None) -> None:
        """Publish change_log rows after ``_published`` (and below ``before``)."""
        assert self._published is not None
        passed = 0

        def unreadable(seq: int, kind: str) -> None:
            nonlocal passed
            _not_published(seq, kind)
            passed = seq

        while True:
            upto = before if before is not None else 2**63 - 1
            rows = await self._pool.fetch(
                "SELECT seq, kind, payload FROM change_log WHERE seq > $1 AND seq < $2"
                " ORDER BY seq LIMIT $3",
                self._published,
                upto,
                _FOREIGN_BATCH,
            )
            if not rows:
                return
            batch: list[Change] = []
            feed = follow_change_log(_Rows(rows), self._published, unreadable=unreadable)
            async with contextlib.aclosing(feed):
                async for change in feed:
                    batch.append(change)
            if batch:
                self._announce(batch)
            self._published = max(self._published, int(rows[-1][0]), passed)

    def _announce(self, changes: Sequence[Change]) -> None:
        if self._recent_floor and any(
            isinstance(c, MailboxCreated | MailboxRenamed | MailboxDeleted) for c in changes
        ):
            self._recent_floor.clear()  # a revived placeholder restarts at 1 (claim_recent)
        if self._published is not None and changes:
            self._published = max(self._published, changes[-1].seq)
        try:
            self._publish(changes)
        except Exception:
            log.exception("publish failed for change_log seq %s", changes[0].seq)

    # --- the change log ---------------------------------------------------------------------
    async def change_log(self, after: int = 0, limit: int = 1000) -> list[tuple[int, str, str]]:
        rows = await self._pool.fetch(
            "SELECT seq, kind, payload FROM change_log WHERE seq > $1 ORDER BY seq LIMIT $2",
            after,
            limit,
        )
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def follow(
        self,
        after: int,
        *,
        wait: Callable[[], Awaitable[None]] | None = None,
        unreadable: Unreadable | None = None,
    ) -> AsyncGenerator[Change, None]:
        return follow_change_log(self, after, wait=wait, unreadable=unreadable)

    async def change_log_head(self) -> int:
        return int(await self._pool.fetchval("SELECT coalesce(max(seq), 0) FROM change_log"))

    async def event_cursor(self, name: str) -> int | None:
        value = await self._pool.fetchval("SELECT seq FROM event_cursors WHERE name = $1", name)
        return None if value is None else int(value)

    async def set_event_cursor(self, name: str, seq: int) -> None:
        await self._pool.execute(
            "INSERT INTO event_cursors (name, seq) VALUES ($1, $2)"
            " ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
            name,
            seq,
        )

    async def record_session_event(
        self, user: str, kind: str, origin: Origin, server: str | None = None
    ) -> None:
        if kind not in ("login", "logout"):
            raise ValueError(f"session event kind must be login or logout, not {kind!r}")

        async def body(tx: Tx) -> None:
            tx.emit(SessionEvent(0, tx.at, origin, user, kind, server), user)

        await self._write(body)

    async def follow_foreign_commits(self) -> None:
        """Publish other processes' commits too, woken by LISTEN ``imapd_changes``."""
        async with self._publish_lock:
            self._published = await self.change_log_head()
        if self._listener is None:
            await self._listen()

    async def _listen(self) -> None:
        self._listener = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT)
        await self._listener.add_listener(CHANNEL, self._notified)
        await self._listener.add_listener(KICK_CHANNEL, self._kick_requested)
        self._listener.add_termination_listener(self._listener_lost)

    def _listener_lost(self, conn: object) -> None:
        """The LISTEN connection died (PostgreSQL restarted): listen again, with backoff,
        then catch up from the last seq published (commits made meanwhile)."""
        if self._closed:
            return
        self._listener = None
        task = asyncio.ensure_future(self._relisten())
        self._wakeups.add(task)
        task.add_done_callback(self._wakeups.discard)

    async def _relisten(self) -> int:
        delay = 0.1
        while not self._closed:
            try:
                await self._listen()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("LISTEN %s: reconnecting in %.1f s (%s)", CHANNEL, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            try:
                return await self.publish_foreign()
            except StoreError as exc:  # Unavailable: the next commit or wake-up catches up
                log.warning("catching up after LISTEN reconnect failed: %s", exc.text)
                return 0
        return 0

    def _notified(self, conn: object, pid: int, channel: str, payload: str) -> None:
        seq = int(payload)
        if self._closed or (self._published is not None and seq <= self._published):
            return
        if seq in self._own_last:
            # This process's own commit, whose NOTIFY came before its COMMIT's answer: its
            # slot publishes it, reading back first any foreign rows below it
            # (`_publish_locked`), so no read of change_log here (one per own commit).
            return
        if self._defer_notified(seq):  # maybe a lone APPEND's (store/postgres/appendone.py)
            return
        task = asyncio.ensure_future(self.publish_foreign())
        self._wakeups.add(task)
        task.add_done_callback(self._wakeups.discard)

    def _kick_requested(self, conn: object, pid: int, channel: str, payload: str) -> None:
        if not self._closed and self.on_kick is not None:
            self.on_kick()

    async def publish_foreign(self) -> int:
        if self._published is None or self._closed:
            return self._published or 0
        async with self._publish_lock:
            await self._publish_rows(before=None)
            return self._published

    # --- users ------------------------------------------------------------------------------
    async def create_user(
        self, name: str, password: str, *, admin: bool = False, origin: Origin | None = None
    ) -> User:
        if not name or name != name.strip():
            raise StoreError("A user name must be non-empty without surrounding spaces")
        hashed = await asyncio.to_thread(hash_password, password, n=self._scrypt_n)
        origin = origin or Origin(service="cli")

        async def body(tx: Tx) -> User:
            row = await tx.one(
                "INSERT INTO users (name, password, is_admin, created) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (name) DO NOTHING RETURNING id",
                name,
                hashed,
                admin,
                tx.at_iso,
            )
            if row is None:
                raise UserExists("User already exists")
            user_id = int(row[0])
            await self._insert_mailboxes(tx, user_id, name, DEFAULT_MAILBOXES, origin)
            await tx.run(
                "INSERT INTO subscriptions (user_id, name) SELECT $1, unnest($2::text[])",
                user_id,
                [m for m, _ in DEFAULT_MAILBOXES],
            )
            return User(user_id, name, admin)

        return await self._write(body)

    async def authenticate(self, name: str, password: str) -> User:
        """Raises AuthFailed; one scrypt verification whether or not the user exists."""
        row = await fetch_one(
            self._pool, "SELECT id, name, password, is_admin FROM users WHERE name = $1", name
        )
        stored = row[2] if row is not None else None
        if stored is None or parameters(stored) is None:
            if self._dummy_hash is None:
                self._dummy_hash = dummy_hash(n=self._scrypt_n)
            row, stored = None, self._dummy_hash
        cache = self._auth_cache
        if row is not None and cache is not None and cache.hit(name, password, stored):
            return User(int(row[0]), row[1], bool(row[3]))
        matched = await asyncio.to_thread(verify_password, password, stored)
        if row is None:
            raise AuthFailed("Authentication failed", unknown_user=True)
        if not matched:
            raise AuthFailed("Authentication failed")
        if cache is not None:
            cache.remember(name, password, stored)
        return User(int(row[0]), row[1], bool(row[3]))

    async def get_user(self, name: str) -> User:
        if not name:
            raise UserNotFound("No such user")
        row = await fetch_one(
            self._pool, "SELECT id, name, is_admin FROM users WHERE name = $1", name
        )
        if row is None:
            raise UserNotFound("No such user")
        return User(int(row[0]), row[1], bool(row[2]))

    async def set_password(self, name: str, password: str) -> None:
        if not name:
            raise UserNotFound("No such user")
        hashed = await asyncio.to_thread(hash_password, password, n=self._scrypt_n)

        async def body(tx: Tx) -> None:
            if (
                await tx.one(
                    "UPDATE users SET password = $1 WHERE name = $2 RETURNING id", hashed, name
                )
                is None
            ):
                raise UserNotFound("No such user")

        await self._write(body)
        if self._auth_cache is not None:
            self._auth_cache.forget(name)  # the new hash misses anyway; free the entries

    async def delete_user(self, name: str, origin: Origin | None = None) -> None:
        origin = origin or Origin(service="cli")
        if not name:
            raise UserNotFound("No such user")

        async def body(tx: Tx) -> None:
            row = await tx.one("SELECT id FROM users WHERE name = $1 FOR UPDATE", name)
            if row is None:
                raise UserNotFound("No such user")
            user_id = row[0]
            mboxes = [
                Mbox.from_row(r)
                for r in await tx.rows(
                    MBOX_SELECT + " WHERE m.owner_id = $1 ORDER BY m.name FOR UPDATE OF m", user_id
                )
            ]
            ids = [m.id for m in mboxes]
            gone = await tx.rows(
                "DELETE FROM messages WHERE mailbox_id = ANY($1::bigint[]) RETURNING content_id",
                ids,
            )
            await self._drop_contents(tx, [r[0] for r in gone])
            await tx.run("DELETE FROM expunged WHERE mailbox_id = ANY($1::bigint[])", ids)
            await tx.run(
                "DELETE FROM metadata WHERE mailbox_id = ANY($1::bigint[]) OR user_id = $2",
                ids,
                user_id,
            )
            await tx.run("DELETE FROM acl WHERE identifier = ANY($1::text[])", [name, "-" + name])
            await tx.run("DELETE FROM mailboxes WHERE owner_id = $1", user_id)
            await tx.run("DELETE FROM subscriptions WHERE user_id = $1", user_id)
            await tx.run("DELETE FROM users WHERE id = $1", user_id)
            for mbox in mboxes:
                tx.emit(MailboxDeleted(0, tx.at, origin, mbox.ref, mbox.counts), name)

        await self._write(body)
        if self._auth_cache is not None:
            self._auth_cache.forget(name)  # no row, no hit anyway; free the entries

    async def set_admin(self, name: str, admin: bool) -> User:
        if not name:
            raise UserNotFound("No such user")

        async def body(tx: Tx) -> User:
            row = await tx.one(
                "UPDATE users SET is_admin = $1 WHERE name = $2 RETURNING id", admin, name
            )
            if row is None:
                raise UserNotFound("No such user")
            return User(int(row[0]), name, admin)

        return await self._write(body)

    async def list_users(self) -> list[User]:
        rows = await self._pool.fetch(
            "SELECT id, name, is_admin FROM users WHERE name != '' ORDER BY name COLLATE \"C\""
        )
        return [User(int(r[0]), r[1], bool(r[2])) for r in rows]

    # --- quota (RFC 9208; rules in store/quota.py) -------------------------------------------
    async def get_quota(self, root: str) -> quota.QuotaInfo:
        info, _ = await quota_sql.by_name(self._pool, root)
        return info

    async def get_quota_root(self, user_id: int, name: str) -> quota.QuotaInfo:
        from store import names

        owner = await self._owner(self._pool, user_id)
        return await quota_sql.of_mailbox(self._pool, user_id, owner, names.canonical(name))

    async def set_quota(
        self, root: str, limits: quota.Limits, origin: Origin | None = None
    ) -> quota.QuotaInfo:
        origin = origin or Origin(service="cli")

        async def body(tx: Tx) -> quota.QuotaInfo:
            _, user_id = await quota_sql.by_name(tx.db, root)
            if user_id is None:
                raise quota.QuotaRootNotFound("Only users' quota roots can be set")
            await quota_sql.lock_user_root(tx.db, user_id)
            before, _ = await quota_sql.by_name(tx.db, root)
            await quota_sql.set_limits(tx.db, user_id, limits)
            after, _ = await quota_sql.by_name(tx.db, root)
            tx.emit(
                quota.change("limits", tx.at, origin, after.root, after.usage), after.root.owner
            )
            if quota.full(before.root.limits, before.usage) and not quota.full(limits, after.usage):
                tx.emit(
                    quota.change("within", tx.at, origin, after.root, after.usage), after.root.owner
                )
            return after

        return await self._write(body)

    # --- XAPPLEPUSHSERVICE ------------------------------------------------------------------
    async def register_push(
        self,
        user_id: int,
        aps_version: int,
        account_id: str,
        device_token: str,
        subtopic: str,
        mailboxes: Sequence[str],
        origin: Origin,
    ) -> tuple[str, ...]:
        import json

        from store import names

        wanted = tuple(dict.fromkeys(names.canonical(n) for n in mailboxes))

        async def body(tx: Tx) -> tuple[str, ...]:
            owner = await self._owner(tx.db, user_id)
            rows = await tx.rows(
                "SELECT name FROM mailboxes WHERE owner_id = $1 AND selectable"
                " AND name = ANY($2::text[])",
                user_id,
                list(wanted),
            )
            found = {r[0] for r in rows}
            present = tuple(n for n in wanted if n in found)
            await tx.run(
                "INSERT INTO aps_devices (user_id, account_id, device_token, subtopic,"
                " aps_version, mailboxes, registered) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                " ON CONFLICT (user_id, account_id, device_token, subtopic) DO UPDATE SET"
                " aps_version = excluded.aps_version, mailboxes = excluded.mailboxes,"
                " registered = excluded.registered",
                user_id,
                account_id,
                device_token,
                subtopic,
                aps_version,
                json.dumps(list(present)),
                tx.at_iso,
            )
            tx.emit(
                ApplePushRegistered(
                    0,
                    tx.at,
                    origin,
                    owner,
                    aps_version,
                    account_id,
                    device_token,
                    subtopic,
                    present,
                ),
                owner,
            )
            return present

        return await self._write(body)

    async def push_devices(self, user_id: int | None = None) -> list[PushDevice]:
        import json

        rows = await self._pool.fetch(
            "SELECT u.name, d.aps_version, d.account_id, d.device_token, d.subtopic,"
            " d.mailboxes, d.registered FROM aps_devices d JOIN users u ON u.id = d.user_id"
            " WHERE $1::bigint IS NULL OR d.user_id = $1"
            ' ORDER BY u.name COLLATE "C", d.registered, d.device_token',
            user_id,
        )
        return [
            PushDevice(
                r[0],
                int(r[1]),
                r[2],
                r[3],
                r[4],
                tuple(json.loads(r[5])),
                dt.datetime.fromisoformat(r[6]),
            )
            for r in rows
        ]


@dataclasses.dataclass(slots=True)
class _Slot:
    """A numbered transaction's Changes; ``done`` once committed (``changes`` emptied if
    the COMMIT failed)."""

    changes: list[Change]
    done: bool = False
    #: Answers the transaction's caller: called right before its Changes are published.
    answer: Callable[[], None] | None = None


class _Rows:
    """Rows already read, as a `ChangeLog` for store/changefeed.py's decoding loop."""

    def __init__(self, rows: Sequence[Any]) -> None:
        self._rows = [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    async def change_log(self, after: int = 0, limit: int = 1000) -> list[tuple[int, str, str]]:
        return [r for r in self._rows if r[0] > after][:limit]


def missing_methods() -> list[str]:
    """The methods of the Store Protocol (store/api.py) PostgresStore does not implement
    yet: store/open.py refuses a PostgreSQL URL while there are any (no half backend:
    SORT and THREAD are advertised by every server)."""
    wanted: set[str] = set()
    for protocol in (ChangeFeed, Store):
        wanted |= {n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")}
    return sorted(n for n in wanted if not callable(getattr(PostgresStore, n, None)))
