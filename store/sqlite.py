"""The SQLite message store: `SqliteStore`, implementing `store.api.Store` on aiosqlite.

Owns: the SQL (schema in store/migrations/, applied by store/migrate.py), transactions and
the change_log outbox. Must not import imapd or notify: it is handed a ``publish`` callable.

Implementation notes
--------------------
- Two connections. The *writer* runs every write transaction, serialised by ``_lock``:
  ``BEGIN IMMEDIATE``, the change, the change_log rows for its Changes, ``COMMIT``, then
  ``publish(changes)`` while still holding the lock, so publish order is commit order and a
  rollback publishes nothing. The *reader* serves fetch, search, list, status, get_mailbox,
  subscriptions and vanished_since in autocommit mode: in WAL mode each statement reads the
  latest committed snapshot, so a session that was just published a change can read it.
- ``open_mailbox`` and ``claim_recent`` run on the writer under the lock, so a SELECT's
  snapshot and MAX(change_log.seq) come from one transaction and no write slips between.
- ``publish`` is synchronous and must not block (it only enqueues; see notify/bus.py). No
  socket is ever written while the writer lock is held.
- Other processes (the CLI) commit to the same file. Once ``follow_foreign_commits`` is on
  (the server), their change_log rows are published too, in commit order: inside an own
  transaction a gap before its first seq is read back and published ahead of its Changes
  (AUTOINCREMENT seqs and one writer at a time: a gap is exactly that), and
  ``publish_foreign`` (the control socket's "changed", imapd/control.py) catches up under
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
  the lock is taken.
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
  sessions the claim is decided in memory at once and only the first session writes (this
  process is the only writer of ``recent_uid`` that matters: a foreign process's claim can
  at worst show \\Recent twice). It is forgotten whenever a mailbox is created, renamed or
  deleted (a revived placeholder or a reused id starts again at 1).
- Contents are shared by copies (COPY/MOVE never duplicate the bytes); ``contents.refs`` is
  kept by triggers and the row is deleted with its last message.
- Renaming INBOX (RFC 3501 §6.3.5) creates the new mailbox with a fresh UIDVALIDITY and moves
  the messages into it keeping their UIDs, modseqs and flags; INBOX keeps its UIDVALIDITY and
  ``uidnext`` (UIDs are never reused) and records the moved UIDs as expunged. Published as
  MailboxCreated + MessagesAdded(kind="move") + MessagesExpunged(kind="move"), exactly as a
  CREATE and a MOVE of everything. Inferiors of INBOX are not renamed. Other renames keep
  the mailbox id and UIDVALIDITY and take children and subscriptions along (as Dovecot and
  Cyrus do). DELETE keeps subscriptions (RFC 3501 §6.3.6: the server must not remove them).
- MailboxDeleted carries the mailbox's counts as they were when it was deleted (there is no
  "after"); delete_user publishes one per mailbox without per-message facts.
- Names (RFC 2342): methods taking a mailbox name take it as the asking user writes it;
  ``_locate`` turns ``Other Users/alice/X`` and ``Shared/X`` into (owner id, owner-relative
  name) (store/namespace.py; shared mailboxes belong to the pseudo-user ""). Rows, Changes and
  events keep owner-relative names; `MailboxInfo` from get_mailbox/list_mailboxes carries the
  user's name for it and their effective rights (store/acl.py). The store checks no rights:
  handlers do (imapd/commands/acl.py), except that ``copy_messages(rights=)`` filters flags.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import sqlite3
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

from store import acl as aclrules
from store import expire, metadata, mime, names, namespace, push, quota, search
from store import flags as flagrules
from store.api import (
    AppendResult,
    CopyResult,
    Criterion,
    MailboxInfo,
    MailboxSnapshot,
    MessageRecord,
    NewMessage,
    Publish,
    StoreFlagsResult,
    User,
)
from store.changes import (
    AclChanged,
    ApplePushRegistered,
    Change,
    Counts,
    FlagChange,
    FlagsChanged,
    MailboxCreated,
    MailboxDeleted,
    MailboxRef,
    MailboxRenamed,
    MessageFacts,
    MessagesAdded,
    MessagesExpunged,
    Origin,
    QuotaChanged,
    SessionEvent,
    SubscriptionChanged,
    change_kind,
    from_json,
    to_json,
)
from store.errors import (
    AuthFailed,
    MailboxExists,
    MailboxInvalid,
    MailboxNotFound,
    StoreError,
    UserExists,
    UserNotFound,
)
from store.migrate import migrate
from store.mime import BodyPart
from store.passwords import DEFAULT_N, hash_password, verify_password

log = logging.getLogger("store.sqlite")

T = TypeVar("T")
Row = tuple[Any, ...]

BUSY_TIMEOUT_MS = 5000  # another process (the CLI) holding the write lock briefly
SYNCHRONOUS = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})
# Parse MIME in a worker thread above this many bytes (small ones cost less than the hop).
PARSE_IN_THREAD = 256 * 1024
STRUCTURE_CACHE = 256  # parsed BODYSTRUCTUREs kept by content id (contents never change)
_CHANGE_ROWS_PER_INSERT = 500  # 4 parameters a row, far below SQLITE_MAX_VARIABLE_NUMBER
_FOREIGN_BATCH = 1000  # other processes' change_log rows published per round trip

DEFAULT_MAILBOXES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (names.INBOX, ()),
    ("Drafts", ("\\Drafts",)),
    ("Sent", ("\\Sent",)),
    ("Trash", ("\\Trash",)),
    ("Junk", ("\\Junk",)),
    ("Archive", ("\\Archive",)),
)
SPECIAL_USES = {  # RFC 6154 §2, RFC 8457 \Important
    s.lower(): s
    for s in ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash",
              "\\Important")
}

_MBOX_COLUMNS = (
    "m.id, m.owner_id, u.name, m.name, m.uidvalidity, m.uidnext, m.highestmodseq, m.messages,"
    " m.unseen, m.size, m.deleted, m.recent_uid, m.special_use, m.selectable, m.retention_days"
)
_MBOX_FROM = " FROM mailboxes m JOIN users u ON u.id = m.owner_id"
_MBOX_SELECT = "SELECT " + _MBOX_COLUMNS + _MBOX_FROM
# MailboxInfo extras: unclaimed \Recent (a PK range count) and subscription.
_INFO_SELECT = (
    "SELECT " + _MBOX_COLUMNS
    + ", (SELECT count(*) FROM messages x WHERE x.mailbox_id = m.id AND x.uid >= m.recent_uid)"
    + ", EXISTS (SELECT 1 FROM subscriptions s WHERE s.user_id = m.owner_id AND s.name = m.name)"
    + _MBOX_FROM
)
_COUNTS = "RETURNING messages, unseen, uidnext, highestmodseq, size, deleted"
# A UID set as one JSON array of [low, high] ranges driving a PK range seek per range.
_IN_RANGES = "json_each(?) AS r CROSS JOIN messages AS m"
_RANGE_MATCH = "m.mailbox_id = ? AND m.uid BETWEEN r.value->>0 AND r.value->>1"
_FACTS = "m.uid, m.modseq, m.flags, m.size, m.internaldate, c.message_id, m.seen, m.deleted"


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(when: dt.datetime) -> str:
    return when.replace(microsecond=0).isoformat()


def uid_ranges(uids: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, merged inclusive ranges of a UID collection (``[1, 2, 3, 7]`` ->
    ``[(1, 3), (7, 7)]``): a whole ``1:*`` becomes one parameter and one index seek."""
    out: list[tuple[int, int]] = []
    for uid in sorted(set(uids)):
        if out and out[-1][1] == uid - 1:
            out[-1] = (out[-1][0], uid)
        else:
            out.append((uid, uid))
    return out


async def _rows(db: aiosqlite.Connection, sql: str, params: Sequence[object] = ()) -> list[Row]:
    return cast(list[Row], list(await db.execute_fetchall(sql, params)))


async def _one(db: aiosqlite.Connection, sql: str, params: Sequence[object] = ()) -> Row | None:
    rows = await _rows(db, sql, params)
    return rows[0] if rows else None


@dataclass(slots=True)
class _Mbox:
    id: int
    owner_id: int
    owner: str
    name: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    messages: int
    unseen: int
    size: int
    deleted: int
    recent_uid: int
    special_use: tuple[str, ...]
    selectable: bool
    retention_days: int | None

    @classmethod
    def from_row(cls, row: Row) -> _Mbox:
        return cls(
            id=row[0], owner_id=row[1], owner=row[2], name=row[3], uidvalidity=row[4],
            uidnext=row[5], highestmodseq=row[6], messages=row[7], unseen=row[8], size=row[9],
            deleted=row[10], recent_uid=row[11], special_use=tuple(row[12].split()),
            selectable=bool(row[13]), retention_days=row[14],
        )

    @property
    def ref(self) -> MailboxRef:
        return MailboxRef(self.id, self.owner, self.name, self.uidvalidity, self.special_use)

    @property
    def counts(self) -> Counts:
        return Counts(self.messages, self.unseen, self.uidnext, self.highestmodseq, self.size,
                      self.deleted)

    def info(self, recent: int, subscribed: bool) -> MailboxInfo:
        return MailboxInfo(
            id=self.id, owner_id=self.owner_id, owner=self.owner, name=self.name,
            uidvalidity=self.uidvalidity, uidnext=self.uidnext,
            highestmodseq=self.highestmodseq, messages=self.messages, unseen=self.unseen,
            recent=recent, size=self.size, special_use=self.special_use,
            subscribed=subscribed, selectable=self.selectable,
            retention_days=self.retention_days, deleted=self.deleted,
        )


def _info(row: Row) -> MailboxInfo:
    return _Mbox.from_row(row).info(int(row[15]), bool(row[16]))


def _allowed_flags(row: Row, rights: str) -> Row:
    """A ``_FACTS`` row (and what follows) with only the flags ``rights`` let a user set
    (RFC 4314 §4 COPY/APPEND: \\Seen needs s, \\Deleted t, any other flag w)."""
    kept = aclrules.settable(flagrules.from_text(row[2]), rights)
    return (*row[:2], flagrules.to_text(kept), row[3], row[4], row[5], "\\Seen" in kept,
            "\\Deleted" in kept, *row[8:])


def _facts(row: Row, *, uid: int | None = None, modseq: int | None = None) -> MessageFacts:
    """MessageFacts from a ``_FACTS`` row, optionally with a new UID/modseq (copies)."""
    return MessageFacts(
        uid=row[0] if uid is None else uid,
        modseq=row[1] if modseq is None else modseq,
        flags=flagrules.from_text(row[2]),
        size=row[3],
        internaldate=dt.datetime.fromisoformat(row[4]),
        message_id=row[5],
    )


@dataclass(slots=True)
class _Prepared:
    """A NewMessage made ready outside the lock: flags canonical, MIME parsed once."""

    raw: bytes
    flags: tuple[str, ...]
    seen: bool
    deleted: bool
    internaldate: dt.datetime
    header_len: int
    structure: str
    message_id: str | None
    search_texts: tuple[str, ...]  # content_search, in search.STORED_KEYS order


class _Tx:
    """One write transaction on the writer connection: statements and pending Changes."""

    def __init__(self, db: aiosqlite.Connection, at: dt.datetime) -> None:
        self.db = db
        self.at = at
        self.at_iso = _iso(at)
        self._pending: list[tuple[Change, str | None]] = []

    async def rows(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return await _rows(self.db, sql, params)

    async def one(self, sql: str, params: Sequence[object] = ()) -> Row | None:
        return await _one(self.db, sql, params)

    async def run(self, sql: str, params: Sequence[object] = ()) -> None:
        await self.db.execute_fetchall(sql, params)

    async def many(self, sql: str, params: Iterable[Sequence[object]]) -> None:
        await self.db.executemany(sql, params)

    def emit(self, change: Change, user: str | None) -> None:
        """Queue a Change built with ``seq=0``; `log` gives it its change_log seq."""
        self._pending.append((change, user))

    async def log(self) -> list[Change]:
        """Insert the pending Changes into change_log; return them with their seqs."""
        out: list[Change] = []
        pending = self._pending
        for start in range(0, len(pending), _CHANGE_ROWS_PER_INSERT):
            chunk = pending[start : start + _CHANGE_ROWS_PER_INSERT]
            params: list[object] = []
            for change, user in chunk:
                params += [change_kind(change), user, to_json(change), self.at_iso]
            values = ", ".join("(?, ?, ?, ?)" for _ in chunk)
            rows = await self.rows(
                "INSERT INTO change_log (kind, user, payload, created) VALUES "
                + values + " RETURNING seq",
                params,
            )
            # Seqs are assigned in VALUES order; RETURNING's row order is not promised.
            seqs = sorted(row[0] for row in rows)
            out += [dataclasses.replace(c, seq=s) for (c, _), s in zip(chunk, seqs, strict=True)]
        return out


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a transaction task's outcome retrieved: its caller got it through ``answer``
    (or was cancelled and wants none)."""
    if not task.cancelled():
        task.exception()


class SqliteStore:
    """The Store on one SQLite file. Build with `open`; see the module's implementation
    notes for the concurrency and durability rules."""

    def __init__(
        self,
        writer: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        publish: Publish,
        *,
        scrypt_n: int,
        clock: Callable[[], dt.datetime],
        uidvalidity: Callable[[], int] | None,
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._publish = publish
        self._scrypt_n = scrypt_n
        self._clock = clock
        self._uidvalidity_source = uidvalidity
        self._lock = asyncio.Lock()
        self._structures: OrderedDict[int, BodyPart] = OrderedDict()
        self._dummy_hash: str | None = None
        self._closed = False
        #: The last change_log seq published, once `follow_foreign_commits` is on.
        self._published: int | None = None
        #: mailbox id -> a lower bound of its ``recent_uid`` (see the notes on \\Recent).
        self._recent_floor: dict[int, int] = {}

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
    ) -> SqliteStore:
        """Open (creating and migrating) the store at ``path``. ``clock`` returns aware
        datetimes (default: now in UTC); ``uidvalidity`` proposes UIDVALIDITY values
        (default: the clock's Unix time), always raised above the last one handed out."""
        sync = synchronous.upper()
        if sync not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {sorted(SYNCHRONOUS)}")
        writer = await aiosqlite.connect(path, isolation_level=None)
        reader: aiosqlite.Connection | None = None
        try:
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
        return cls(
            writer, reader, publish, scrypt_n=scrypt_n, clock=clock or _utc_now,
            uidvalidity=uidvalidity,
        )

    async def close(self) -> None:
        """Wait for the write in flight, then close both connections."""
        if self._closed:
            return
        self._closed = True
        async with self._lock:
            await self._reader.close()
            await self._writer.close()

    # --- transaction machinery ------------------------------------------------------------
    def _now(self) -> dt.datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the store clock must return aware datetimes")
        return now.astimezone(dt.UTC)

    async def _write(self, body: Callable[[_Tx], Awaitable[T]]) -> T:
        """Run ``body`` in one write transaction, then publish its Changes (see notes).

        The transaction runs in a task of its own, so a cancelled caller (a client gone
        mid-command) never cancels a transaction half way: the caller only waits for
        ``answer``. That future is resolved right after COMMIT and before the Changes are
        published, so the committing session resumes ahead of the listeners the publication
        wakes: its tagged OK does not wait for a fan-out to a thousand NOTIFY sessions."""
        answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(self._write_locked(body, answer))
        task.add_done_callback(_retrieve)
        return await answer

    async def _write_locked(
        self, body: Callable[[_Tx], Awaitable[T]], answer: asyncio.Future[T] | None = None
    ) -> T:
        try:
            return await self._transaction(body, answer)
        except BaseException as exc:
            if answer is not None and not answer.done():
                if isinstance(exc, asyncio.CancelledError):
                    answer.cancel()
                else:
                    answer.set_exception(exc)
            raise

    async def _transaction(
        self, body: Callable[[_Tx], Awaitable[T]], answer: asyncio.Future[T] | None
    ) -> T:
        async with self._lock:
            db = self._writer
            await db.execute("BEGIN IMMEDIATE")
            try:
                tx = _Tx(db, self._now())
                result = await body(tx)
                changes = await tx.log()
                changes = [*await self._foreign_before(changes), *changes]
                await db.execute("COMMIT")
            except BaseException as exc:
                try:
                    await db.execute("ROLLBACK")
                except sqlite3.OperationalError:  # COMMIT failed and SQLite rolled back
                    log.debug("no transaction to roll back", exc_info=True)
                if isinstance(exc, quota.QuotaRefused):
                    await self._record_refusal(exc.change)
                raise
            if answer is not None and not answer.done():
                answer.set_result(result)
            if changes:
                self._note_published(changes)
                try:
                    self._publish(changes)
                except Exception:  # committed: the caller's result stands
                    log.exception("publish failed for change_log seq %s", changes[0].seq)
            return result

    async def _uidvalidities(self, tx: _Tx, count: int) -> int:
        """Reserve ``count`` consecutive UIDVALIDITY values; return the first."""
        source = self._uidvalidity_source
        proposed = source() if source is not None else int(tx.at.timestamp())
        row = await tx.one(
            "INSERT INTO meta (key, value) VALUES ('uidvalidity', ?) ON CONFLICT (key) DO "
            "UPDATE SET value = max(?, value + 1) + ? RETURNING value",
            (proposed + count - 1, proposed, count - 1),
        )
        assert row is not None
        return int(row[0]) - count + 1

    async def _insert_mailboxes(
        self, tx: _Tx, owner_id: int, owner: str, specs: Sequence[tuple[str, tuple[str, ...]]],
        origin: Origin,
    ) -> list[_Mbox]:
        """Create mailboxes (fresh UIDVALIDITYs) and emit a MailboxCreated for each."""
        if not specs:
            return []
        first = await self._uidvalidities(tx, len(specs))
        params: list[object] = []
        for i, (name, use) in enumerate(specs):
            params += [owner_id, name, first + i, " ".join(use), tx.at_iso]
        rows = await tx.rows(
            "INSERT INTO mailboxes (owner_id, name, uidvalidity, special_use, created) VALUES "
            + ", ".join("(?, ?, ?, ?, ?)" for _ in specs) + " RETURNING id, name",
            params,
        )
        ids = {name: id_ for id_, name in rows}
        out = []
        for i, (name, use) in enumerate(specs):
            mbox = _Mbox(ids[name], owner_id, owner, name, first + i, 1, 1, 0, 0, 0, 0, 1, use,
                         True, None)
            out.append(mbox)
            tx.emit(MailboxCreated(0, tx.at, origin, mbox.ref, use), owner)
        return out

    @staticmethod
    async def _owner(db: aiosqlite.Connection, user_id: int) -> str:
        row = await _one(db, "SELECT name FROM users WHERE id = ?", (user_id,))
        if row is None:
            raise UserNotFound("No such user")
        return str(row[0])

    @staticmethod
    async def _by_name(db: aiosqlite.Connection, user_id: int, name: str) -> _Mbox | None:
        row = await _one(db, _MBOX_SELECT + " WHERE m.owner_id = ? AND m.name = ?",
                         (user_id, name))
        return None if row is None else _Mbox.from_row(row)

    @staticmethod
    async def _by_id(db: aiosqlite.Connection, mailbox_id: int) -> _Mbox:
        row = await _one(db, _MBOX_SELECT + " WHERE m.id = ?", (mailbox_id,))
        if row is None:
            raise MailboxNotFound("Mailbox no longer exists")
        return _Mbox.from_row(row)

    @staticmethod
    async def _selectable(db: aiosqlite.Connection, user_id: int, name: str) -> _Mbox:
        mbox = await SqliteStore._by_name(db, user_id, name)
        if mbox is None:
            raise MailboxNotFound("Mailbox does not exist")
        if not mbox.selectable:
            raise MailboxInvalid("Mailbox is not selectable (\\Noselect)")
        return mbox

    # --- namespaces and rights (RFC 2342, RFC 4314; store/namespace.py, store/acl.py) ----
    @staticmethod
    async def _viewer(db: aiosqlite.Connection, user_id: int) -> tuple[str, bool]:
        """(name, is_admin) of a user, read afresh (a grant or revoke applies at once)."""
        row = await _one(db, "SELECT name, is_admin FROM users WHERE id = ?", (user_id,))
        if row is None:
            raise UserNotFound("No such user")
        return str(row[0]), bool(row[1])

    async def _locate(self, db: aiosqlite.Connection, user_id: int, name: str) -> tuple[int, str]:
        """(owner id, owner-relative name) of the mailbox a client name means for
        ``user_id``. Raises MailboxNotFound for a namespace root or an unknown owner (the
        same error as for a missing mailbox: names are never confirmed)."""
        if namespace.is_personal(name):
            return user_id, names.canonical(name)
        viewer, _ = await self._viewer(db, user_id)
        where = namespace.resolve(viewer, name)
        row = None if where is None else await _one(
            db, "SELECT id FROM users WHERE name = ?", (where.owner,))
        if where is None or row is None:
            raise MailboxNotFound("Mailbox does not exist")
        return int(row[0]), where.name

    async def _as_seen(self, db: aiosqlite.Connection, user_id: int, info: MailboxInfo,
                       ) -> MailboxInfo:
        """``info`` (an _INFO_SELECT row of any owner) as ``user_id`` sees it: its name in
        that user's namespaces, its effective rights, that user's subscription."""
        if info.owner_id == user_id:
            return info
        viewer, admin = await self._viewer(db, user_id)
        rows = await _rows(
            db, "SELECT identifier, rights FROM acl WHERE mailbox_id = ?"
            " AND identifier IN (?, ?, 'anyone', '-anyone')", (info.id, viewer, "-" + viewer))
        rights = aclrules.effective(viewer, info.owner, {r[0]: r[1] for r in rows},
                                    is_admin=admin)
        name = namespace.visible_name(viewer, info.owner, info.name)
        return dataclasses.replace(info, name=name, rights=rights,
                                   subscribed=await self._is_subscribed(db, user_id, name))

    async def _remove(
        self, tx: _Tx, mbox_id: int, rows: list[Row], *, record: bool
    ) -> tuple[Counts, int]:
        """Delete the messages of ``rows`` (``_FACTS`` rows) from a mailbox, adjusting its
        counters with one new modseq; ``record`` keeps them in ``expunged`` for QRESYNC."""
        uids = json.dumps([row[0] for row in rows])
        row = await tx.one(
            "UPDATE mailboxes SET highestmodseq = highestmodseq + 1, messages = messages - ?,"
            " unseen = unseen - ?, size = size - ?, deleted = deleted - ? WHERE id = ? "
            + _COUNTS,
            (len(rows), sum(not r[6] for r in rows), sum(r[3] for r in rows),
             sum(r[7] for r in rows), mbox_id),
        )
        assert row is not None
        counts = Counts(*row)
        await tx.run(
            "DELETE FROM messages WHERE mailbox_id = ? AND uid IN (SELECT value FROM json_each(?))",
            (mbox_id, uids),
        )
        if record:
            await tx.run(
                "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq)"
                " SELECT ?, value, ? FROM json_each(?)",
                (mbox_id, counts.highestmodseq, uids),
            )
        return counts, counts.highestmodseq

    # --- users ------------------------------------------------------------------------------
    async def create_user(
        self, name: str, password: str, *, admin: bool = False, origin: Origin | None = None
    ) -> User:
        """Create a user with INBOX, Drafts, Sent, Trash, Junk, Archive (RFC 6154 uses), all
        subscribed; publishes a MailboxCreated for each. Raises UserExists."""
        if not name or name != name.strip():
            raise StoreError("A user name must be non-empty without surrounding spaces")
        hashed = await asyncio.to_thread(hash_password, password, n=self._scrypt_n)
        origin = origin or Origin(service="cli")

        async def body(tx: _Tx) -> User:
            row = await tx.one(
                "INSERT INTO users (name, password, is_admin, created) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name) DO NOTHING RETURNING id",
                (name, hashed, int(admin), tx.at_iso),
            )
            if row is None:
                raise UserExists("User already exists")
            user_id = int(row[0])
            await self._insert_mailboxes(tx, user_id, name, DEFAULT_MAILBOXES, origin)
            await tx.many(
                "INSERT INTO subscriptions (user_id, name) VALUES (?, ?)",
                [(user_id, mailbox) for mailbox, _ in DEFAULT_MAILBOXES],
            )
            return User(user_id, name, admin)

        return await self._write(body)

    async def authenticate(self, name: str, password: str) -> User:
        """Raises AuthFailed (same error, same work for unknown user and wrong password)."""
        row = await _one(
            self._reader, "SELECT id, name, password, is_admin FROM users WHERE name = ?", (name,)
        )
        if row is None:
            if self._dummy_hash is None:
                self._dummy_hash = await asyncio.to_thread(
                    hash_password, "not a password", n=self._scrypt_n
                )
            await asyncio.to_thread(verify_password, password, self._dummy_hash)
            raise AuthFailed("Authentication failed")
        if not await asyncio.to_thread(verify_password, password, row[2]):
            raise AuthFailed("Authentication failed")
        return User(row[0], row[1], bool(row[3]))

    async def get_user(self, name: str) -> User:
        """Raises UserNotFound (also for "", the shared namespace's pseudo-owner)."""
        if not name:
            raise UserNotFound("No such user")
        row = await _one(self._reader, "SELECT id, name, is_admin FROM users WHERE name = ?",
                         (name,))
        if row is None:
            raise UserNotFound("No such user")
        return User(row[0], row[1], bool(row[2]))

    async def set_password(self, name: str, password: str) -> None:
        """Raises UserNotFound."""
        if not name:
            raise UserNotFound("No such user")
        hashed = await asyncio.to_thread(hash_password, password, n=self._scrypt_n)

        async def body(tx: _Tx) -> None:
            row = await tx.one("UPDATE users SET password = ? WHERE name = ? RETURNING id",
                               (hashed, name))
            if row is None:
                raise UserNotFound("No such user")

        await self._write(body)

    async def delete_user(self, name: str, origin: Origin | None = None) -> None:
        """Deletes the user and all their mailboxes, messages and subscriptions; publishes a
        MailboxDeleted (without message facts) per mailbox. Raises UserNotFound."""
        origin = origin or Origin(service="cli")
        if not name:
            raise UserNotFound("No such user")  # the pseudo-owner of Shared/ stays

        async def body(tx: _Tx) -> None:
            row = await tx.one("SELECT id FROM users WHERE name = ?", (name,))
            if row is None:
                raise UserNotFound("No such user")
            user_id = row[0]
            mboxes = [_Mbox.from_row(r) for r in await tx.rows(
                _MBOX_SELECT + " WHERE m.owner_id = ? ORDER BY m.name", (user_id,))]
            owned = "(SELECT id FROM mailboxes WHERE owner_id = ?)"
            await tx.run("DELETE FROM messages WHERE mailbox_id IN " + owned, (user_id,))
            await tx.run("DELETE FROM expunged WHERE mailbox_id IN " + owned, (user_id,))
            await tx.run("DELETE FROM mailboxes WHERE owner_id = ?", (user_id,))
            await tx.run("DELETE FROM subscriptions WHERE user_id = ?", (user_id,))
            await tx.run("DELETE FROM users WHERE id = ?", (user_id,))
            for mbox in mboxes:
                tx.emit(MailboxDeleted(0, tx.at, origin, mbox.ref, mbox.counts), name)

        await self._write(body)

    async def set_admin(self, name: str, admin: bool) -> User:
        """Grant or revoke the admin flag (``imapd user admin``): admins create shared
        mailboxes and administer every ACL (store/acl.py). Sessions see the change at their
        next rights check. Raises UserNotFound."""
        if not name:
            raise UserNotFound("No such user")

        async def body(tx: _Tx) -> User:
            row = await tx.one("UPDATE users SET is_admin = ? WHERE name = ? RETURNING id",
                               (int(admin), name))
            if row is None:
                raise UserNotFound("No such user")
            return User(int(row[0]), name, admin)

        return await self._write(body)

    async def list_users(self) -> list[User]:
        rows = await _rows(self._reader, "SELECT id, name, is_admin FROM users WHERE name != ''"
                           " ORDER BY name")  # not the shared namespace's pseudo-owner
        return [User(r[0], r[1], bool(r[2])) for r in rows]

    # --- mailboxes --------------------------------------------------------------------------
    async def list_mailboxes(self, user_id: int) -> list[MailboxInfo]:
        """All of the user's mailboxes, including \\Noselect placeholders, sorted by name;
        then the other users' and shared mailboxes on which the user has any right, as the
        user sees them (`MailboxInfo.rights`: LIST shows those with ``l``)."""
        rows = await _rows(self._reader, _INFO_SELECT + " WHERE m.owner_id = ? ORDER BY m.name",
                           (user_id,))
        return [_info(r) for r in rows] + await self._others_mailboxes(user_id)

    async def _others_mailboxes(self, user_id: int) -> list[MailboxInfo]:
        """Other owners' mailboxes with a right for ``user_id`` (an ACL entry naming the user
        or anyone; every one for an admin), sorted by the name the user sees."""
        db = self._reader
        try:
            viewer, admin = await self._viewer(db, user_id)
        except UserNotFound:
            return []  # deleted meanwhile: nothing is visible
        where = " WHERE m.owner_id != ?"
        params: list[object] = [user_id]
        if not admin:
            where += (" AND m.id IN (SELECT mailbox_id FROM acl"
                      " WHERE identifier IN (?, 'anyone'))")
            params.append(viewer)
        rows = await _rows(db, _INFO_SELECT + where, params)
        if not rows:
            return []
        entries: dict[int, dict[str, str]] = {}
        for mailbox_id, identifier, rights in await _rows(
            db, "SELECT mailbox_id, identifier, rights FROM acl"
            " WHERE identifier IN (?, ?, 'anyone', '-anyone')", (viewer, "-" + viewer)):
            entries.setdefault(mailbox_id, {})[identifier] = rights
        subs = set(await self.subscriptions(user_id))
        out: list[MailboxInfo] = []
        for row in rows:
            info = _info(row)
            rights = aclrules.effective(viewer, info.owner, entries.get(info.id, {}),
                                        is_admin=admin)
            if rights:
                name = namespace.visible_name(viewer, info.owner, info.name)
                out.append(dataclasses.replace(info, name=name, rights=rights,
                                               subscribed=name in subs))
        out.sort(key=lambda m: m.name)
        return out

    async def subscriptions(self, user_id: int) -> list[str]:
        """Subscribed names; they need not exist (RFC 3501 §6.3.6)."""
        rows = await _rows(
            self._reader, "SELECT name FROM subscriptions WHERE user_id = ? ORDER BY name",
            (user_id,),
        )
        return [r[0] for r in rows]

    async def get_mailbox(self, user_id: int, name: str) -> MailboxInfo:
        """The mailbox a client name means for ``user_id`` (any namespace), as that user
        sees it, with their rights; the caller checks them (RFC 4314 §4). Raises
        MailboxNotFound; a \\Noselect placeholder is returned (selectable=False)."""
        owner_id, local = await self._locate(self._reader, user_id, name)
        row = await _one(self._reader, _INFO_SELECT + " WHERE m.owner_id = ? AND m.name = ?",
                         (owner_id, local))
        if row is None:
            raise MailboxNotFound("Mailbox does not exist")
        return await self._as_seen(self._reader, user_id, _info(row))

    async def create_mailbox(
        self, user_id: int, name: str, origin: Origin, special_use: tuple[str, ...] = ()
    ) -> MailboxInfo:
        """Creates missing parents too (RFC 3501 §6.3.3), each published; a trailing
        delimiter is dropped. A \\Noselect placeholder becomes a real mailbox (new
        UIDVALIDITY). Raises MailboxExists (also for INBOX), MailboxInvalid (empty name,
        empty level, forbidden character, unknown special use), UserNotFound."""
        name = names.validate(name)
        if name == names.INBOX:
            raise MailboxExists("INBOX always exists")
        uses: list[str] = []
        for use in special_use:
            canonical = SPECIAL_USES.get(use.lower())
            if canonical is None:
                raise MailboxInvalid(f"Unsupported special use {use}")
            if canonical not in uses:
                uses.append(canonical)

        async def body(tx: _Tx) -> MailboxInfo:
            owner_id, local = await self._locate(tx.db, user_id, name)  # any namespace
            if local == names.INBOX:
                raise MailboxExists("INBOX always exists")
            owner = await self._owner(tx.db, owner_id)
            wanted = [*names.parents(local), local]
            rows = await tx.rows(
                _MBOX_SELECT + " WHERE m.owner_id = ? AND m.name IN"
                " (SELECT value FROM json_each(?))",
                (owner_id, json.dumps(wanted)),
            )
            existing = {r[3]: _Mbox.from_row(r) for r in rows}
            target = existing.get(local)
            if target is not None and target.selectable:
                raise MailboxExists("Mailbox already exists")
            missing = [p for p in names.parents(local) if p not in existing]
            made = await self._insert_mailboxes(tx, owner_id, owner, [(p, ()) for p in missing],
                                                origin)
            # RFC 4314 §4: a new mailbox SHOULD inherit the ACL of its nearest parent.
            parent = next((existing[p] for p in reversed(names.parents(local))
                           if p in existing), None)
            if target is None:
                [created] = await self._insert_mailboxes(
                    tx, owner_id, owner, [(local, tuple(uses))], origin)
                await self._inherit_acl(tx, parent, [*made, created])
                return created.info(0, await self._is_subscribed(tx.db, owner_id, local))
            # A placeholder comes back to life: a new UIDVALIDITY, so its UIDs may restart.
            uidvalidity = await self._uidvalidities(tx, 1)
            await tx.run(
                "UPDATE mailboxes SET selectable = 1, uidvalidity = ?, uidnext = 1,"
                " highestmodseq = 1, recent_uid = 1, special_use = ? WHERE id = ?",
                (uidvalidity, " ".join(uses), target.id),
            )
            revived = dataclasses.replace(
                target, uidvalidity=uidvalidity, uidnext=1, highestmodseq=1, recent_uid=1,
                special_use=tuple(uses), selectable=True,
            )
            await self._inherit_acl(tx, parent, [*made, revived])
            tx.emit(MailboxCreated(0, tx.at, origin, revived.ref, tuple(uses)), owner)
            return revived.info(0, await self._is_subscribed(tx.db, owner_id, local))

        return await self._write(body)

    @staticmethod
    async def _inherit_acl(tx: _Tx, parent: _Mbox | None, created: Sequence[_Mbox]) -> None:
        """Copy ``parent``'s ACL to each of ``created`` (no Change: nothing was SET)."""
        if parent is None or not created:
            return
        await tx.run(
            "INSERT OR REPLACE INTO acl (mailbox_id, identifier, rights)"
            " SELECT j.value, a.identifier, a.rights FROM acl AS a, json_each(?) AS j"
            " WHERE a.mailbox_id = ?",
            (json.dumps([m.id for m in created]), parent.id),
        )

    @staticmethod
    async def _is_subscribed(db: aiosqlite.Connection, user_id: int, name: str) -> bool:
        row = await _one(db, "SELECT 1 FROM subscriptions WHERE user_id = ? AND name = ?",
                         (user_id, name))
        return row is not None

    @staticmethod
    async def _has_children(db: aiosqlite.Connection, user_id: int, name: str) -> bool:
        low, high = names.child_range(name)
        row = await _one(
            db, "SELECT 1 FROM mailboxes WHERE owner_id = ? AND name >= ? AND name < ? LIMIT 1",
            (user_id, low, high),
        )
        return row is not None

    async def delete_mailbox(self, user_id: int, name: str, origin: Origin) -> None:
        """RFC 3501 §6.3.4: INBOX cannot be deleted (MailboxInvalid); a mailbox with
        children becomes a \\Noselect placeholder (its messages removed); a placeholder with
        children cannot be deleted (MailboxInvalid); without children it is removed.
        Subscriptions are kept. Raises MailboxNotFound."""
        name = names.canonical(name)
        if name == names.INBOX:
            raise MailboxInvalid("INBOX cannot be deleted")

        async def body(tx: _Tx) -> None:
            owner_id, local = await self._locate(tx.db, user_id, name)  # any namespace
            if local == names.INBOX:
                raise MailboxInvalid("INBOX cannot be deleted")
            mbox = await self._by_name(tx.db, owner_id, local)
            if mbox is None:
                raise MailboxNotFound("Mailbox does not exist")
            children = await self._has_children(tx.db, owner_id, local)
            if not mbox.selectable and children:
                raise MailboxInvalid("Mailbox has inferior hierarchical names")
            rows = await tx.rows(
                "SELECT " + _FACTS + " FROM messages m JOIN contents c ON c.id = m.content_id"
                " WHERE m.mailbox_id = ? ORDER BY m.uid",
                (mbox.id,),
            )
            within = await quota.settle(tx.db, {mbox.id: (-mbox.messages, -mbox.size)}, tx.at,
                                        origin)
            await tx.run("DELETE FROM messages WHERE mailbox_id = ?", (mbox.id,))
            await tx.run("DELETE FROM expunged WHERE mailbox_id = ?", (mbox.id,))
            if children:
                await tx.run(
                    "UPDATE mailboxes SET selectable = 0, messages = 0, unseen = 0, size = 0,"
                    " deleted = 0, special_use = '', highestmodseq = highestmodseq + 1"
                    " WHERE id = ?",
                    (mbox.id,),
                )
            else:
                await tx.run("DELETE FROM mailboxes WHERE id = ?", (mbox.id,))
            facts = tuple(_facts(r) for r in rows)
            tx.emit(MailboxDeleted(0, tx.at, origin, mbox.ref, mbox.counts, facts), mbox.owner)
            for change in within:  # QuotaWithin follows the MailboxDelete (EVENTS.md §3.5)
                tx.emit(change, change.user)

        await self._write(body)

    async def rename_mailbox(self, user_id: int, old: str, new: str, origin: Origin) -> None:
        """Renames with all children and their subscriptions; creates missing parents of the
        new name. Renaming INBOX moves its messages to a new mailbox and leaves INBOX empty
        (RFC 3501 §6.3.5; see the module notes). Raises MailboxNotFound, MailboxExists,
        MailboxInvalid (into itself, bad new name)."""
        old = names.canonical(old)
        new = names.validate(new)
        if new == names.INBOX or new == old:
            raise MailboxExists("Target mailbox already exists")
        if old != names.INBOX and new.startswith(old + "/"):
            raise MailboxInvalid("Cannot rename a mailbox into itself")

        async def body(tx: _Tx) -> None:
            owner_id, old_local = await self._locate(tx.db, user_id, old)  # any namespace
            source = await self._by_name(tx.db, owner_id, old_local)
            if source is None:
                raise MailboxNotFound("Mailbox does not exist")
            try:
                new_owner, new_local = await self._locate(tx.db, user_id, new)
            except MailboxNotFound:
                raise MailboxInvalid("Cannot rename to that name") from None
            if new_owner != owner_id:
                raise MailboxInvalid("Cannot rename a mailbox to another owner's namespace")
            if new_local == names.INBOX:
                raise MailboxExists("Target mailbox already exists")
            if old_local == names.INBOX:
                await self._rename_inbox(tx, source, new_local, origin)
            else:
                await self._rename(tx, source, new_local, origin)

        await self._write(body)

    async def _missing_parents(self, tx: _Tx, owner_id: int, name: str,
                               taken: set[str]) -> list[tuple[str, tuple[str, ...]]]:
        parents = names.parents(name)
        rows = await tx.rows(
            "SELECT name FROM mailboxes WHERE owner_id = ? AND name IN"
            " (SELECT value FROM json_each(?))",
            (owner_id, json.dumps(parents)),
        )
        present = {r[0] for r in rows} | taken
        return [(p, ()) for p in parents if p not in present]

    async def _rename(self, tx: _Tx, source: _Mbox, new: str, origin: Origin) -> None:
        old = source.name
        low, high = names.child_range(old)
        rows = await tx.rows(
            _MBOX_SELECT + " WHERE m.owner_id = ? AND (m.name = ? OR (m.name >= ? AND m.name < ?))"
            " ORDER BY m.name",
            (source.owner_id, old, low, high),
        )
        moving = [_Mbox.from_row(r) for r in rows]
        moving.sort(key=lambda m: m.name != old)  # the named mailbox first
        targets = [new + m.name[len(old):] for m in moving]
        clash = await tx.rows(
            "SELECT name FROM mailboxes WHERE owner_id = ? AND name IN"
            " (SELECT value FROM json_each(?)) AND NOT (name = ? OR (name >= ? AND name < ?))",
            (source.owner_id, json.dumps(targets), old, low, high),
        )
        if clash:
            raise MailboxExists(f"Mailbox {clash[0][0]} already exists")
        parents = await self._missing_parents(tx, source.owner_id, new, set())
        # Two steps through names no client can make (a U+0001 prefix), so that UNIQUE holds
        # after every row whatever order SQLite updates them in. A dangling subscription
        # may already hold a target name: the moving one replaces it.
        prefix_len = len(old)
        for table, owner_col, verb in (("mailboxes", "owner_id", "UPDATE"),
                                       ("subscriptions", "user_id", "UPDATE OR REPLACE")):
            where = f" WHERE {owner_col} = ? AND (name = ? OR (name >= ? AND name < ?))"
            await tx.run(f"UPDATE {table} SET name = char(1) || name" + where,
                         (source.owner_id, old, low, high))
            await tx.run(
                f"{verb} {table} SET name = ? || substr(name, ?)"
                f" WHERE {owner_col} = ? AND substr(name, 1, 1) = char(1)",
                (new, prefix_len + 2, source.owner_id),
            )
        await self._insert_mailboxes(tx, source.owner_id, source.owner, parents, origin)
        renames = tuple(
            (m.ref, dataclasses.replace(m.ref, name=t)) for m, t in zip(moving, targets,
                                                                       strict=True)
        )
        tx.emit(MailboxRenamed(0, tx.at, origin, renames), source.owner)

    async def _rename_inbox(self, tx: _Tx, inbox: _Mbox, new: str, origin: Origin) -> None:
        if await self._by_name(tx.db, inbox.owner_id, new) is not None:
            raise MailboxExists("Target mailbox already exists")
        parents = await self._missing_parents(tx, inbox.owner_id, new, set())
        await self._insert_mailboxes(tx, inbox.owner_id, inbox.owner, parents, origin)
        [target] = await self._insert_mailboxes(tx, inbox.owner_id, inbox.owner, [(new, ())],
                                                origin)
        await metadata.copy_mailbox(tx.db, inbox.id, target.id)  # RFC 5464 §4.1
        rows = await tx.rows(
            "SELECT " + _FACTS + " FROM messages m JOIN contents c ON c.id = m.content_id"
            " WHERE m.mailbox_id = ? ORDER BY m.uid",
            (inbox.id,),
        )
        if not rows:
            return
        # The new mailbox takes INBOX's figures; its UIDVALIDITY is its own.
        row = await tx.one(
            "UPDATE mailboxes SET uidnext = ?, highestmodseq = ?, recent_uid = ?, messages = ?,"
            " unseen = ?, size = ?, deleted = ? WHERE id = ? " + _COUNTS,
            (inbox.uidnext, inbox.highestmodseq, inbox.recent_uid, inbox.messages,
             inbox.unseen, inbox.size, inbox.deleted, target.id),
        )
        assert row is not None
        target_counts = Counts(*row)
        await tx.run("UPDATE messages SET mailbox_id = ? WHERE mailbox_id = ?",
                     (target.id, inbox.id))
        row = await tx.one(
            "UPDATE mailboxes SET highestmodseq = highestmodseq + 1, recent_uid = uidnext,"
            " messages = 0, unseen = 0, size = 0, deleted = 0 WHERE id = ? " + _COUNTS,
            (inbox.id,),
        )
        assert row is not None
        inbox_counts = Counts(*row)
        await tx.run(
            "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq)"
            " SELECT ?, uid, ? FROM messages WHERE mailbox_id = ?",
            (inbox.id, inbox_counts.highestmodseq, target.id),
        )
        facts = tuple(_facts(r) for r in rows)
        uids = tuple(f.uid for f in facts)
        tx.emit(MessagesAdded(0, tx.at, origin, target.ref, target_counts, facts, "move",
                              inbox.ref, uids), inbox.owner)
        tx.emit(MessagesExpunged(0, tx.at, origin, inbox.ref, inbox_counts, facts,
                                 inbox_counts.highestmodseq, "move"), inbox.owner)

    async def set_subscribed(
        self, user_id: int, name: str, subscribed: bool, origin: Origin
    ) -> None:
        """SUBSCRIBE/UNSUBSCRIBE. Subscribing a name that does not exist, or unsubscribing
        one that is not subscribed, raises MailboxNotFound. Subscribing twice is a no-op
        (nothing published)."""
        name = names.canonical(name)

        async def body(tx: _Tx) -> None:
            owner = await self._owner(tx.db, user_id)
            if subscribed:
                owner_id, local = await self._locate(tx.db, user_id, name)
                if await self._by_name(tx.db, owner_id, local) is None:
                    raise MailboxNotFound("Mailbox does not exist")
                done = await tx.rows(
                    "INSERT INTO subscriptions (user_id, name) VALUES (?, ?)"
                    " ON CONFLICT DO NOTHING RETURNING 1",
                    (user_id, name),
                )
            else:
                done = await tx.rows(
                    "DELETE FROM subscriptions WHERE user_id = ? AND name = ? RETURNING 1",
                    (user_id, name),
                )
                if not done:
                    raise MailboxNotFound("Mailbox is not subscribed")
            if done:
                tx.emit(SubscriptionChanged(0, tx.at, origin, owner, name, subscribed), owner)

        await self._write(body)

    async def open_mailbox(
        self, user_id: int, name: str, *, claim_recent: bool
    ) -> MailboxSnapshot:
        """SELECT/EXAMINE: the snapshot and MAX(change_log.seq) in one transaction on the
        writer. Raises MailboxNotFound, MailboxInvalid (\\Noselect)."""
        name = names.canonical(name)

        async def body(tx: _Tx) -> MailboxSnapshot:
            owner_id, local = await self._locate(tx.db, user_id, name)  # any namespace
            row = await tx.one(
                "SELECT " + _MBOX_COLUMNS
                + ", EXISTS (SELECT 1 FROM subscriptions s WHERE s.user_id = m.owner_id"
                " AND s.name = m.name), (SELECT coalesce(max(seq), 0) FROM change_log)"
                + _MBOX_FROM + " WHERE m.owner_id = ? AND m.name = ?",
                (owner_id, local),
            )
            if row is None:
                raise MailboxNotFound("Mailbox does not exist")
            mbox = _Mbox.from_row(row)
            if not mbox.selectable:
                raise MailboxInvalid("Mailbox is not selectable (\\Noselect)")
            messages = await tx.rows(
                "SELECT uid, seen, flags FROM messages WHERE mailbox_id = ? ORDER BY uid",
                (mbox.id,),
            )
            uids = [m[0] for m in messages]
            first_unseen = next((m[0] for m in messages if not m[1]), None)
            keywords: dict[str, str] = {}
            for m in messages:
                for flag in flagrules.keywords(flagrules.from_text(m[2])):
                    keywords.setdefault(flag.lower(), flag)
            recent = frozenset(u for u in uids if u >= mbox.recent_uid)
            if claim_recent and mbox.recent_uid < mbox.uidnext:
                await tx.run("UPDATE mailboxes SET recent_uid = uidnext WHERE id = ?",
                             (mbox.id,))
            if claim_recent:
                self._recent_floor[mbox.id] = max(mbox.recent_uid, mbox.uidnext)
            return MailboxSnapshot(
                mailbox=mbox.info(len(recent), bool(row[15])),
                uids=uids,
                recent=recent,
                first_unseen_uid=first_unseen,
                keywords=tuple(keywords.values()),
                seq=int(row[16]),
            )

        return await self._write(body)

    async def claim_recent(self, mailbox_id: int, uids: Sequence[int]) -> frozenset[int]:
        """Claim \\Recent for newly arrived UIDs; returns those this caller is first to see."""
        if not uids:
            return frozenset()
        floor = self._recent_floor.get(mailbox_id)
        if floor is not None:
            # Decided in memory, at once: of a thousand sessions woken by one APPEND the
            # first claims and writes, the others see the raised floor and write nothing.
            claimed = frozenset(u for u in uids if u >= floor)
            if not claimed:
                return frozenset()
            top = max(claimed) + 1
            self._recent_floor[mailbox_id] = top

            async def bump(tx: _Tx) -> None:
                await tx.run("UPDATE mailboxes SET recent_uid = max(recent_uid, ?) WHERE id = ?",
                             (top, mailbox_id))

            await self._write(bump)
            return claimed

        async def body(tx: _Tx) -> frozenset[int]:
            row = await tx.one("SELECT recent_uid FROM mailboxes WHERE id = ?", (mailbox_id,))
            if row is None:
                return frozenset()
            claimed = frozenset(u for u in uids if u >= row[0])
            if claimed:
                await tx.run("UPDATE mailboxes SET recent_uid = ? WHERE id = ?",
                             (max(claimed) + 1, mailbox_id))
            self._recent_floor[mailbox_id] = max(claimed) + 1 if claimed else row[0]
            return claimed

        return await self._write(body)

    # --- messages ---------------------------------------------------------------------------
    def _prepare(self, message: NewMessage) -> _Prepared:
        flags = flagrules.canonical_flags(message.flags)
        when = message.internaldate or self._now()
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        structure = mime.parse_message(message.content)
        return _Prepared(
            raw=message.content,
            flags=flags,
            seen="\\Seen" in flags,
            deleted="\\Deleted" in flags,
            internaldate=when.replace(microsecond=0),
            header_len=structure.body_start,
            structure=mime.structure_to_json(structure),
            message_id=mime.message_id(structure),
            search_texts=search.search_texts(message.content, structure),
        )

    async def append(
        self,
        user_id: int,
        name: str,
        messages: Sequence[NewMessage],
        origin: Origin,
        *,
        kind: str = "append",
    ) -> AppendResult:
        """Atomic: all or none (MULTIAPPEND). Parses structure once and keeps it. ``kind``
        (append|deliver|import) is the MessagesAdded kind. Raises MailboxNotFound (handler
        adds TRYCREATE), MailboxInvalid for \\Noselect, ValueError for no messages."""
        if not messages:
            raise ValueError("nothing to append")
        name = names.canonical(name)
        if sum(len(m.content) for m in messages) > PARSE_IN_THREAD:
            prepared = await asyncio.to_thread(lambda: [self._prepare(m) for m in messages])
        else:
            prepared = [self._prepare(m) for m in messages]

        async def body(tx: _Tx) -> AppendResult:
            count = len(prepared)
            owner_id, local = await self._locate(tx.db, user_id, name)  # any namespace
            row = await tx.one(
                "UPDATE mailboxes SET uidnext = uidnext + ?, highestmodseq = highestmodseq + 1,"
                " messages = messages + ?, unseen = unseen + ?, size = size + ?,"
                " deleted = deleted + ? WHERE owner_id = ? AND name = ? AND selectable = 1"
                " RETURNING messages, unseen, uidnext, highestmodseq, size, deleted, id,"
                " uidvalidity, (SELECT name FROM users WHERE id = owner_id), special_use",
                (count, count, sum(not p.seen for p in prepared),
                 sum(len(p.raw) for p in prepared), sum(p.deleted for p in prepared),
                 owner_id, local),
            )
            if row is None:
                await self._selectable(tx.db, owner_id, local)  # raises the right error
                raise MailboxNotFound("Mailbox does not exist")
            counts = Counts(*row[:6])
            ref = MailboxRef(row[6], row[8], local, row[7], tuple(row[9].split()))
            # RFC 9208 §4.3.1: refused before any message row (the counters roll back).
            await self._quota(tx, {ref.id: (count, sum(len(p.raw) for p in prepared))},
                              origin, applied=True)
            first_uid, modseq = counts.uidnext - count, counts.highestmodseq
            await tx.many(  # the message_in view inserts contents, content_search, messages
                "INSERT INTO message_in (mailbox_id, uid, modseq, seen, deleted, size,"
                " internal_epoch, internaldate, savedate, flags, header_len, message_id,"
                " structure, raw, from_text, to_text, cc_text, bcc_text, subject_text)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(ref.id, first_uid + i, modseq, p.seen, p.deleted, len(p.raw),
                  int(p.internaldate.timestamp()), p.internaldate.isoformat(), tx.at_iso,
                  flagrules.to_text(p.flags), p.header_len, p.message_id, p.structure, p.raw,
                  *p.search_texts)
                 for i, p in enumerate(prepared)],
            )
            facts = tuple(
                MessageFacts(first_uid + i, modseq, p.flags, len(p.raw), p.internaldate,
                             p.message_id, p.structure)
                for i, p in enumerate(prepared)
            )
            tx.emit(MessagesAdded(0, tx.at, origin, ref, counts, facts, kind), ref.owner)
            return AppendResult(ref, tuple(f.uid for f in facts))

        return await self._write(body)

    def _structure(self, content_id: int, text: str) -> BodyPart:
        cache = self._structures
        found = cache.get(content_id)
        if found is None:
            found = mime.structure_from_json(text)
            cache[content_id] = found
            if len(cache) > STRUCTURE_CACHE:
                cache.popitem(last=False)
        else:
            cache.move_to_end(content_id)
        return found

    async def fetch(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        *,
        content: bool = False,
        structure: bool = False,
        changedsince: int | None = None,
    ) -> list[MessageRecord]:
        """Records of the existing messages among ``uids``, in UID order; ``changedsince``
        keeps only those with modseq > it. One query; contents joined only when asked."""
        ranges = uid_ranges(uids)
        if not ranges:
            return []
        extra = ", c.id, c.raw, c.structure" if content or structure else ""
        join = " JOIN contents AS c ON c.id = m.content_id" if extra else ""
        where = " AND m.modseq > ?" if changedsince is not None else ""
        params: list[object] = [json.dumps(ranges), mailbox_id]
        if changedsince is not None:
            params.append(changedsince)
        rows = await _rows(
            self._reader,
            "SELECT m.uid, m.modseq, m.flags, m.internaldate, m.size, m.savedate" + extra
            + " FROM " + _IN_RANGES + join + " WHERE " + _RANGE_MATCH + where
            + " ORDER BY m.uid",
            params,
        )
        fromiso = dt.datetime.fromisoformat
        return [
            MessageRecord(
                uid=r[0], modseq=r[1], flags=tuple(r[2].split()), internaldate=fromiso(r[3]),
                size=r[4], savedate=fromiso(r[5]),
                content=r[7] if content else None,
                structure=self._structure(r[6], r[8]) if structure else None,
            )
            for r in rows
        ]

    async def fetch_plain(
        self, mailbox_id: int, uids: Sequence[int]
    ) -> list[tuple[int, int, str, int, str]]:
        """``(uid, modseq, flags, size, internaldate ISO)`` of the existing messages among
        ``uids``, in UID order, as SQLite returns them: the FETCH (UID FLAGS) hot path of
        synchronising clients, with no record objects and no date parsing."""
        ranges = uid_ranges(uids)
        if not ranges:
            return []
        rows = await _rows(
            self._reader,
            "SELECT m.uid, m.modseq, m.flags, m.size, m.internaldate FROM " + _IN_RANGES
            + " WHERE " + _RANGE_MATCH + " ORDER BY m.uid",
            [json.dumps(ranges), mailbox_id],
        )
        return cast(list[tuple[int, int, str, int, str]], rows)

    async def deleted_size(self, mailbox_id: int) -> int:
        """Octets an EXPUNGE would free: the sizes of the \\Deleted messages (RFC 9208
        §4.1.4 allows this sum for DELETED-STORAGE); read on the (mailbox, deleted) index."""
        row = await _one(
            self._reader,
            "SELECT COALESCE(SUM(size), 0) FROM messages WHERE mailbox_id = ? AND deleted = 1",
            (mailbox_id,),
        )
        return int(row[0]) if row else 0

    async def store_flags(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        mode: str,
        flags: Sequence[str],
        origin: Origin,
        *,
        unchangedsince: int | None = None,
        kind: str = "store",
    ) -> StoreFlagsResult:
        """mode: "+" add, "-" remove, "" replace. Changed messages share one new modseq;
        unchanged ones get none and no FlagChange. Raises MailboxNotFound, ValueError (mode)."""
        if mode not in {"+", "-", ""}:
            raise ValueError(f"bad STORE mode {mode!r}")
        given = flagrules.canonical_flags(flags)
        ranges = uid_ranges(uids)

        async def body(tx: _Tx) -> StoreFlagsResult:
            mbox = await self._by_id(tx.db, mailbox_id)
            if not ranges:
                return StoreFlagsResult((), {})
            rows = await tx.rows(
                "SELECT m.uid, m.modseq, m.flags, c.message_id FROM " + _IN_RANGES
                + " JOIN contents AS c ON c.id = m.content_id WHERE "
                + _RANGE_MATCH + " ORDER BY m.uid",
                (json.dumps(ranges), mailbox_id),
            )
            modseq = mbox.highestmodseq + 1
            current: dict[int, tuple[tuple[str, ...], int]] = {}
            modified: list[int] = []
            changes: list[FlagChange] = []
            updates: list[tuple[object, ...]] = []
            unseen_delta = deleted_delta = 0
            for uid, old_modseq, text, message_id in rows:
                old = flagrules.from_text(text)
                current[uid] = (old, old_modseq)
                if unchangedsince is not None and old_modseq > unchangedsince:
                    modified.append(uid)  # RFC 7162 §3.1.3
                    continue
                new, added, removed = flagrules.apply(mode, old, given)
                if not added and not removed:
                    continue
                seen, deleted = "\\Seen" in new, "\\Deleted" in new
                unseen_delta += ("\\Seen" in old) - seen
                deleted_delta += deleted - ("\\Deleted" in old)
                current[uid] = (new, modseq)
                changes.append(FlagChange(uid, modseq, new, added, removed, message_id))
                updates.append((flagrules.to_text(new), seen, deleted, modseq, mailbox_id, uid))
            if not changes:
                return StoreFlagsResult((), current, tuple(modified))
            await tx.many(
                "UPDATE messages SET flags = ?, seen = ?, deleted = ?, modseq = ?"
                " WHERE mailbox_id = ? AND uid = ?",
                updates,
            )
            row = await tx.one(
                "UPDATE mailboxes SET highestmodseq = ?, unseen = unseen + ?,"
                " deleted = deleted + ? WHERE id = ? " + _COUNTS,
                (modseq, unseen_delta, deleted_delta, mailbox_id),
            )
            assert row is not None
            tx.emit(FlagsChanged(0, tx.at, origin, mbox.ref, Counts(*row), tuple(changes),
                                 kind), mbox.owner)
            return StoreFlagsResult(tuple(changes), current, tuple(modified))

        return await self._write(body)

    async def expunge(
        self, mailbox_id: int, origin: Origin, uids: Sequence[int] | None = None,
        *, kind: str = "expunge",
    ) -> tuple[int, ...]:
        """Remove messages flagged \\Deleted (restricted to ``uids`` when given: UID
        EXPUNGE). Returns the removed UIDs, ascending; remembered with their new modseq.
        ``kind`` (expunge|expire) is the MessagesExpunged kind. Raises MailboxNotFound."""
        ranges = None if uids is None else uid_ranges(uids)
        if ranges == []:
            return ()

        async def body(tx: _Tx) -> tuple[int, ...]:
            mbox = await self._by_id(tx.db, mailbox_id)
            join = " JOIN contents AS c ON c.id = m.content_id"
            if ranges is None:
                rows = await tx.rows(
                    "SELECT " + _FACTS + " FROM messages AS m" + join
                    + " WHERE m.mailbox_id = ? AND m.deleted = 1 ORDER BY m.uid",
                    (mailbox_id,),
                )
            else:
                rows = await tx.rows(
                    "SELECT " + _FACTS + " FROM " + _IN_RANGES + join + " WHERE "
                    + _RANGE_MATCH + " AND m.deleted = 1 ORDER BY m.uid",
                    (json.dumps(ranges), mailbox_id),
                )
            if not rows:
                return ()
            counts, modseq = await self._remove(tx, mailbox_id, rows, record=True)
            facts = tuple(_facts(r) for r in rows)
            tx.emit(MessagesExpunged(0, tx.at, origin, mbox.ref, counts, facts, modseq, kind),
                    mbox.owner)
            await self._quota(tx, {mailbox_id: (-len(rows), -sum(r[3] for r in rows))},
                              origin, applied=True)
            return tuple(f.uid for f in facts)

        return await self._write(body)

    async def copy_messages(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        dest_user_id: int,
        dest_name: str,
        origin: Origin,
        *,
        move: bool = False,
        rights: str | None = None,
    ) -> CopyResult:
        """COPY/MOVE in one transaction; never partial. New UIDs in source UID order; flags
        and INTERNALDATE kept, the bytes shared. Copy into the same mailbox is allowed.
        ``dest_name`` is in ``dest_user_id``'s namespaces; ``rights`` (the user's on the
        destination) keeps only the flags they allow (RFC 4314 §4: \\Seen needs s,
        \\Deleted t, others w). Raises MailboxNotFound (source gone, or destination:
        handler adds TRYCREATE), MailboxInvalid (destination \\Noselect)."""
        dest_name = names.canonical(dest_name)
        ranges = uid_ranges(uids)

        async def body(tx: _Tx) -> CopyResult:
            source = await self._by_id(tx.db, mailbox_id)
            dest = await self._selectable(tx.db, *await self._locate(tx.db, dest_user_id,
                                                                     dest_name))
            rows = await tx.rows(
                "SELECT " + _FACTS + ", m.internal_epoch, m.content_id FROM " + _IN_RANGES
                + " JOIN contents AS c ON c.id = m.content_id WHERE " + _RANGE_MATCH
                + " ORDER BY m.uid",
                (json.dumps(ranges), mailbox_id),
            ) if ranges else []
            if not rows:
                return CopyResult(dest.uidvalidity, (), ())
            added = rows if rights is None else [_allowed_flags(r, rights) for r in rows]
            count = len(rows)
            octets = sum(r[3] for r in rows)
            deltas = {dest.id: (count, octets)}
            if move:  # a MOVE within one quota root changes no usage
                back = deltas.get(mailbox_id, (0, 0))
                deltas[mailbox_id] = (back[0] - count, back[1] - octets)
            within = await quota.settle(tx.db, deltas, tx.at, origin)  # before any insert
            row = await tx.one(
                "UPDATE mailboxes SET uidnext = uidnext + ?, highestmodseq = highestmodseq + 1,"
                " messages = messages + ?, unseen = unseen + ?, size = size + ?,"
                " deleted = deleted + ? WHERE id = ? " + _COUNTS,
                (count, count, sum(not r[6] for r in added), sum(r[3] for r in rows),
                 sum(r[7] for r in added), dest.id),
            )
            assert row is not None
            counts = Counts(*row)
            first, modseq = counts.uidnext - count, counts.highestmodseq
            await tx.many(
                "INSERT INTO messages (mailbox_id, uid, modseq, seen, deleted, size,"
                " internal_epoch, internaldate, savedate, flags, content_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(dest.id, first + i, modseq, r[6], r[7], r[3], r[8], r[4], tx.at_iso, r[2], r[9])
                 for i, r in enumerate(added)],
            )
            source_uids = tuple(r[0] for r in rows)
            facts = tuple(_facts(r, uid=first + i, modseq=modseq) for i, r in enumerate(added))
            how = "move" if move else "copy"
            tx.emit(MessagesAdded(0, tx.at, origin, dest.ref, counts, facts, how, source.ref,
                                  source_uids), dest.owner)
            if move:
                src_counts, src_modseq = await self._remove(tx, mailbox_id, rows, record=True)
                tx.emit(MessagesExpunged(0, tx.at, origin, source.ref, src_counts,
                                         tuple(_facts(r) for r in rows), src_modseq, "move"),
                        source.owner)
            for change in within:  # the source's root, left by a MOVE
                tx.emit(change, change.user)
            return CopyResult(dest.uidvalidity, source_uids, tuple(f.uid for f in facts),
                              source_uids if move else ())

        return await self._write(body)

    async def search(self, mailbox_id: int, criterion: Criterion) -> list[int]:
        """UIDs matching, ascending. Raises ValueError for an unknown key (a bug upstream)."""
        compiled = search.compile_criterion(criterion, self._now())
        join = " JOIN contents AS c ON c.id = m.content_id" if compiled.needs_content else ""
        if compiled.needs_search:
            join += " LEFT JOIN content_search AS s ON s.id = m.content_id"
        # One row, one string: no per-row work in Python (thousands of UIDs for UNSEEN).
        row = await _one(
            self._reader,
            "SELECT group_concat(uid) FROM (SELECT m.uid FROM messages AS m" + join
            + " WHERE m.mailbox_id = ? AND (" + compiled.sql + ") ORDER BY m.uid)",
            [mailbox_id, *compiled.params],
        )
        if row is None or row[0] is None:
            return []
        uids = list(map(int, str(row[0]).split(",")))
        uids.sort()  # already ascending; group_concat's order is not a documented promise
        return uids

    async def vanished_since(
        self, mailbox_id: int, modseq: int, uids: Sequence[tuple[int, int]] | None = None
    ) -> list[int]:
        """UIDs expunged with a modseq > ``modseq`` (restricted to ranges), for QRESYNC."""
        if uids is None:
            rows = await _rows(
                self._reader,
                "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
                (mailbox_id, modseq),
            )
        else:
            if not uids:
                return []
            rows = await _rows(
                self._reader,
                "SELECT DISTINCT e.uid FROM json_each(?) AS r CROSS JOIN expunged AS e"
                " WHERE e.mailbox_id = ? AND e.uid BETWEEN r.value->>0 AND r.value->>1"
                " AND e.modseq > ? ORDER BY e.uid",
                (json.dumps([list(r) for r in uids]), mailbox_id, modseq),
            )
        return [r[0] for r in rows]

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

    # --- METADATA (RFC 5464; the SQL lives in store/metadata.py) ------------------------------
    async def get_metadata(
        self, user_id: int, mailbox: str | None, entries: Sequence[str], *, depth: int | None
    ) -> list[tuple[str, bytes | None]]:
        """GETMETADATA: entries of a mailbox (None: the server) as ``user_id`` sees them,
        None for a requested entry without value (see `metadata.read`). \\Noselect
        placeholders have annotations too (RFC 5464 §4.1). Raises MailboxNotFound."""
        mailbox_id = metadata.SERVER
        if mailbox is not None:
            mailbox_id = (await self.get_mailbox(user_id, mailbox)).id
        return await metadata.read(self._reader, mailbox_id, user_id, entries, depth)

    async def set_metadata(
        self,
        user_id: int,
        mailbox: str | None,
        items: Sequence[tuple[str, bytes | None]],
        origin: Origin,
        limits: metadata.MetadataLimits,
    ) -> tuple[str, ...]:
        """SETMETADATA in one transaction with its MetadataChanged changes (none if nothing
        changed); a None value removes the entry. Returns the entries changed. Raises
        MailboxNotFound, MetadataNoPrivate, MetadataTooBig, MetadataTooMany (nothing set)."""
        name = None if mailbox is None else names.canonical(mailbox)

        async def body(tx: _Tx) -> tuple[str, ...]:
            owner = await self._owner(tx.db, user_id)
            ref: MailboxRef | None = None
            mailbox_id = metadata.SERVER
            if name is not None:
                mbox = await self._by_name(tx.db, *await self._locate(tx.db, user_id, name))
                if mbox is None:
                    raise MailboxNotFound("Mailbox does not exist")
                ref, mailbox_id = mbox.ref, mbox.id
            changed = await metadata.write(tx.db, mailbox_id, user_id, items, limits)
            for change, who in metadata.changes(tx.at, origin, owner, ref, changed):
                tx.emit(change, who)
            return tuple(changed)

        return await self._write(body)

    # --- ACL (RFC 4314; the rules in store/acl.py) ---------------------------------------------
    async def acl_entries(self, mailbox_id: int) -> list[tuple[str, str]]:
        """The stored ACL of a mailbox: (identifier, canonical rights), sorted; the owner's
        implicit entry is not among them. The caller checked the ``a`` right."""
        rows = await _rows(self._reader, "SELECT identifier, rights FROM acl"
                           " WHERE mailbox_id = ? ORDER BY identifier", (mailbox_id,))
        return [(str(r[0]), str(r[1])) for r in rows]

    async def set_acl(
        self,
        user_id: int,
        name: str,
        identifier: str,
        change: aclrules.Modification | None,
        origin: Origin,
    ) -> str:
        """SETACL (``change``) or DELETEACL (None) on the mailbox ``name`` means for
        ``user_id``, with its AclChanged in the same transaction (also when nothing
        changed, as Cyrus reports every SETACL). An entry left with no rights is removed.
        Returns the entry's rights after. The caller checked the ``a`` right. Raises
        MailboxNotFound, MailboxInvalid (the owner's own entry: their rights are fixed)."""

        async def body(tx: _Tx) -> str:
            mbox = await self._by_name(tx.db, *await self._locate(tx.db, user_id, name))
            if mbox is None:
                raise MailboxNotFound("Mailbox does not exist")
            if identifier.removeprefix("-") == mbox.owner:
                raise MailboxInvalid("The owner's rights cannot be changed")
            row = await tx.one("SELECT rights FROM acl WHERE mailbox_id = ? AND identifier = ?",
                               (mbox.id, identifier))
            old = "" if row is None else str(row[0])
            new = "" if change is None else aclrules.apply(old, change)
            if new:
                await tx.run("INSERT OR REPLACE INTO acl (mailbox_id, identifier, rights)"
                             " VALUES (?, ?, ?)", (mbox.id, identifier, new))
            else:
                await tx.run("DELETE FROM acl WHERE mailbox_id = ? AND identifier = ?",
                             (mbox.id, identifier))
            rights = None if change is None else str(change)
            tx.emit(AclChanged(0, tx.at, origin, mbox.ref, identifier, rights, new), mbox.owner)
            return new

        return await self._write(body)

    # --- expiry (store/expire.py) ------------------------------------------------------------
    async def set_retention(self, user_id: int, name: str, days: int | None) -> None:
        """Set (or with None/0 clear) a mailbox's retention in days; no Change (nothing a
        client sees changes until messages expire). Raises MailboxNotFound, ValueError."""
        value = expire.check_days(days)
        name = names.canonical(name)

        async def body(tx: _Tx) -> None:
            row = await tx.one(
                "UPDATE mailboxes SET retention_days = ? WHERE owner_id = ? AND name = ?"
                " RETURNING id",
                (value, user_id, name),
            )
            if row is None:
                raise MailboxNotFound("Mailbox does not exist")

        await self._write(body)

    async def expire(self, now: dt.datetime | None = None) -> int:
        """Remove the messages older than their mailbox's retention (see store/expire.py):
        one transaction per mailbox, each publishing MessagesExpunged(kind="expire") with
        Origin(service="expire"). Returns how many messages were removed."""
        when = self._now() if now is None else now
        origin = Origin(service="expire")
        total = 0
        for due in await expire.due_mailboxes(self._reader):
            before = expire.cutoff(when, due.retention_days)

            async def body(tx: _Tx, due: expire.DueMailbox = due, before: str = before) -> int:
                try:
                    mbox = await self._by_id(tx.db, due.id)
                except MailboxNotFound:
                    return 0  # deleted since the list was read
                if mbox.retention_days != due.retention_days or not mbox.selectable:
                    return 0  # changed since: the next run uses the new value
                rows = await tx.rows(
                    "SELECT " + _FACTS + " FROM messages AS m JOIN contents AS c"
                    " ON c.id = m.content_id WHERE " + expire.EXPIRED_WHERE + " ORDER BY m.uid",
                    (due.id, before),
                )
                if not rows:
                    return 0
                counts, modseq = await self._remove(tx, due.id, rows, record=True)
                facts = tuple(_facts(r) for r in rows)
                tx.emit(MessagesExpunged(0, tx.at, origin, mbox.ref, counts, facts, modseq,
                                         "expire"), mbox.owner)
                await self._quota(tx, {due.id: (-len(rows), -sum(r[3] for r in rows))},
                                  origin, applied=True)
                return len(rows)

            total += await self._write(body)
        return total

    # --- XAPPLEPUSHSERVICE (store/push.py) ---------------------------------------------------
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
        """Register a device for the user's mailboxes (names that do not exist or are
        \\Noselect are left out) and publish ApplePushRegistered. Returns the mailbox names
        registered. Raises UserNotFound."""
        wanted = tuple(dict.fromkeys(names.canonical(n) for n in mailboxes))

        async def body(tx: _Tx) -> tuple[str, ...]:
            owner = await self._owner(tx.db, user_id)
            present = await push.existing_mailboxes(tx.db, user_id, wanted)
            await push.upsert(tx.db, user_id, aps_version, account_id, device_token, subtopic,
                              present, tx.at_iso)
            tx.emit(ApplePushRegistered(0, tx.at, origin, owner, aps_version, account_id,
                                        device_token, subtopic, present), owner)
            return present

        return await self._write(body)

    async def push_devices(self, user_id: int | None = None) -> list[push.PushDevice]:
        """XAPPLEPUSHSERVICE registrations of one user, or of everyone."""
        return await push.devices(self._reader, user_id)

    # --- QUOTA (RFC 9208; the rules and SQL live in store/quota.py) ---------------------------
    async def _quota(
        self, tx: _Tx, deltas: dict[int, tuple[int, int]], origin: Origin, *, applied: bool
    ) -> None:
        """Apply the quota rules to a transaction's (messages, octets) per mailbox: raises
        QuotaRefused, or emits the QuotaChanged(kind="within") of roots no longer full."""
        for change in await quota.settle(tx.db, deltas, tx.at, origin, applied=applied):
            tx.emit(change, change.user)

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
                changes = await tx.log()
                changes = [*await self._foreign_before(changes), *changes]
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise
        except Exception:
            log.exception("quota: the QuotaExceed of root %r was not recorded", change.root)
            return
        self._note_published(changes)
        try:
            self._publish(changes)
        except Exception:
            log.exception("publish failed for change_log seq %s", changes[0].seq)

    async def get_quota(self, root: str) -> quota.QuotaInfo:
        """GETQUOTA: a root by name (a user's name names the user's root), with its usage.
        Raises QuotaRootNotFound."""
        info, _ = await quota.by_name(self._reader, root)
        return info

    async def get_quota_root(self, user_id: int, name: str) -> quota.QuotaInfo:
        """GETQUOTAROOT: the root of the user's mailbox ``name``, which need not exist
        (RFC 9208 §4.1.2). Raises UserNotFound."""
        owner = await self._owner(self._reader, user_id)
        return await quota.of_mailbox(self._reader, user_id, owner, names.canonical(name))

    async def set_quota(
        self, root: str, limits: quota.Limits, origin: Origin | None = None
    ) -> quota.QuotaInfo:
        """SETQUOTA / ``imapd quota set``: replace a user root's limits (RFC 9208 §4.1.3:
        limits not given are removed) and publish QuotaChanged(kind="limits"), then
        QuotaChanged(kind="within") if the root was full and no longer is. Returns the root
        with its usage. Raises QuotaRootNotFound (also for roots without a user: they
        cannot be set yet)."""
        origin = origin or Origin(service="cli")

        async def body(tx: _Tx) -> quota.QuotaInfo:
            before, user_id = await quota.by_name(tx.db, root)
            if user_id is None:
                raise quota.QuotaRootNotFound("Only users' quota roots can be set")
            await quota.set_limits(tx.db, user_id, limits)
            after, _ = await quota.by_name(tx.db, root)
            tx.emit(quota.change("limits", tx.at, origin, after.root, after.usage),
                    after.root.owner)
            if (quota.full(before.root.limits, before.usage)
                    and not quota.full(limits, after.usage)):
                tx.emit(quota.change("within", tx.at, origin, after.root, after.usage),
                        after.root.owner)
            return after

        return await self._write(body)

    # --- commits of other processes (the CLI; imapd/control.py) ------------------------------
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
                self._note_published(changes)
                try:
                    self._publish(changes)
                except Exception:
                    log.exception("publish failed for change_log seq %s", changes[0].seq)
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
        `_FOREIGN_BATCH`; an unreadable row is skipped with a warning (it is passed)."""
        assert self._published is not None
        rows = await _rows(
            self._writer,
            "SELECT seq, kind, payload FROM change_log WHERE seq > ? AND seq < ?"
            " ORDER BY seq LIMIT ?",
            (self._published, before if before is not None else 2**63 - 1,
             _FOREIGN_BATCH if before is None else -1),
        )
        out: list[Change] = []
        for seq, kind, payload in rows:
            try:
                out.append(from_json(kind, seq, payload))
            except (KeyError, TypeError, ValueError):
                log.warning("change_log seq %d (%s) cannot be read; not published", seq, kind)
        if rows and not out:  # all unreadable: step over them
            self._published = max(self._published, int(rows[-1][0]))
            return await self._foreign_rows(before)
        return out

    def _note_published(self, changes: Sequence[Change]) -> None:
        if self._recent_floor and any(
            isinstance(c, MailboxCreated | MailboxRenamed | MailboxDeleted) for c in changes
        ):
            self._recent_floor.clear()  # a revived placeholder or reused id restarts at 1
        if self._published is not None and changes:
            self._published = max(self._published, changes[-1].seq)
