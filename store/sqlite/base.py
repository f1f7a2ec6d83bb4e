"""What the families of `SqliteStore` share: row shapes, SQL fragments, the write-transaction
handle and the lookups of users and mailboxes.

Owns: `_Mbox` (a ``mailboxes`` row with its owner's name) and the SQL fragments selecting it,
the ``_FACTS`` columns a `MessageFacts` is built from, `_Tx` (the statements and pending
Changes of one write transaction; store/sqlite/store.py begins it, logs its Changes to change_log
and commits) and `SqliteBase`, the base of the operation mixins of store/sqlite/users.py,
store/sqlite/mailboxes.py and store/sqlite/messages.py: the state they use (set by
`SqliteStore.__init__`), `_write` (run by store/sqlite/store.py), the store clock, mailbox
creation, and the lookups every family needs (a user, a mailbox by id or name, the owner and
owner-relative name a client's mailbox name means). Leading underscores mark names private to
these store/sqlite/*.py modules; the rules are the implementation notes atop store/sqlite/store.py.
Must not import imapd or notify.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar, cast

import aiosqlite

from store import acl as aclrules
from store import flags as flagrules
from store import names, namespace
from store.api import MailboxInfo, MailboxRow, Prerender
from store.authcache import AuthCache
from store.changes import Change, Counts, MailboxCreated, MailboxRef, MessageFacts, Origin
from store.errors import MailboxInvalid, MailboxNotFound, UserNotFound
from store.mime import BodyPart
from store.sqlite.synctx import SyncTx

T = TypeVar("T")
Row = tuple[Any, ...]

_MBOX_COLUMNS = (
    "m.id, m.owner_id, u.name, m.name, m.uidvalidity, m.uidnext, m.highestmodseq, m.messages,"
    " m.unseen, m.size, m.deleted, m.recent_uid, m.special_use, m.selectable, m.retention_days"
)
_MBOX_FROM = " FROM mailboxes m JOIN users u ON u.id = m.owner_id"
_MBOX_SELECT = "SELECT " + _MBOX_COLUMNS + _MBOX_FROM
_COUNTS = "RETURNING messages, unseen, uidnext, highestmodseq, size, deleted"
_FACTS = "m.uid, m.modseq, m.flags, m.size, m.internaldate, c.message_id, m.seen, m.deleted"


def _iso(when: dt.datetime) -> str:
    return when.replace(microsecond=0).isoformat()


async def _rows(db: aiosqlite.Connection, sql: str, params: Sequence[object] = ()) -> list[Row]:
    return cast(list[Row], list(await db.execute_fetchall(sql, params)))


async def _one(db: aiosqlite.Connection, sql: str, params: Sequence[object] = ()) -> Row | None:
    rows = await _rows(db, sql, params)
    return rows[0] if rows else None


_ROW_FIELDS = tuple(f.name for f in fields(MailboxRow))


@dataclass(frozen=True, slots=True)
class _Mbox(MailboxRow):
    """A ``mailboxes`` row (`_MBOX_SELECT`): the shared `MailboxRow` fields and the
    row's \\Recent floor (the first UID no session has claimed)."""

    recent_uid: int = field(kw_only=True)

    @classmethod
    def from_row(cls, row: Row) -> _Mbox:
        return cls(
            id=row[0],
            owner_id=row[1],
            owner=row[2],
            name=row[3],
            uidvalidity=row[4],
            uidnext=row[5],
            highestmodseq=row[6],
            messages=row[7],
            unseen=row[8],
            size=row[9],
            deleted=row[10],
            recent_uid=row[11],
            special_use=tuple(row[12].split()),
            selectable=bool(row[13]),
            retention_days=row[14],
        )

    @property
    def ref(self) -> MailboxRef:
        return MailboxRef(self.id, self.owner, self.name, self.uidvalidity, self.special_use)

    @property
    def counts(self) -> Counts:
        return Counts(
            self.messages, self.unseen, self.uidnext, self.highestmodseq, self.size, self.deleted
        )

    def info(self, recent: int, subscribed: bool) -> MailboxInfo:
        return MailboxInfo(
            **{f: getattr(self, f) for f in _ROW_FIELDS}, recent=recent, subscribed=subscribed
        )


def _facts(
    row: Row,
    *,
    uid: int | None = None,
    modseq: int | None = None,
    content_id: int | None = None,
) -> MessageFacts:
    """MessageFacts from a ``_FACTS`` row, optionally with a new UID/modseq (copies) or
    the contents row (expunges)."""
    return MessageFacts(
        uid=row[0] if uid is None else uid,
        modseq=row[1] if modseq is None else modseq,
        flags=flagrules.from_text(row[2]),
        size=row[3],
        internaldate=dt.datetime.fromisoformat(row[4]),
        message_id=row[5],
        content_id=content_id,
    )


class _Tx:
    """One write transaction on the writer connection: statements and pending Changes
    (`SqliteStore._transaction`, store/sqlite/store.py, logs ``pending`` to change_log)."""

    def __init__(self, db: aiosqlite.Connection, at: dt.datetime) -> None:
        self.db = db
        self.at = at
        self.at_iso = _iso(at)
        self.pending: list[tuple[Change, str | None]] = []

    async def rows(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return await _rows(self.db, sql, params)

    async def one(self, sql: str, params: Sequence[object] = ()) -> Row | None:
        return await _one(self.db, sql, params)

    async def run(self, sql: str, params: Sequence[object] = ()) -> None:
        await self.db.execute_fetchall(sql, params)

    async def many(self, sql: str, params: Iterable[Sequence[object]]) -> None:
        await self.db.executemany(sql, params)

    def emit(self, change: Change, user: str | None) -> None:
        """Queue a Change built with ``seq=0``; `_log_changes` (store/sqlite/store.py) gives it its
        change_log seq."""
        self.pending.append((change, user))

    # --- on the writer's thread (store/sqlite/synctx.py) ---
    def sync(self) -> SyncTx:
        """This transaction as code on the connection's thread sees it (same Changes list)."""
        return SyncTx(self.db._conn, self.at, self.at_iso, self.pending)

    async def call(self, fn: Callable[[SyncTx], T]) -> T:
        """Run ``fn`` on the connection's thread: all its statements in one round trip."""
        sync = self.sync()
        return cast(T, await self.db._execute(fn, sync))  # type: ignore[no-untyped-call]


class SqliteBase:
    """The base of `SqliteStore`'s operation mixins: the state they share, all of it set by
    `SqliteStore.__init__`, and what every family uses."""

    _reader: aiosqlite.Connection
    _scrypt_n: int
    _clock: Callable[[], dt.datetime]
    _uidvalidity_source: Callable[[], int] | None
    _structures: OrderedDict[int, BodyPart]
    _prerender: Prerender | None
    _dummy_hash: str | None
    _auth_cache: AuthCache | None
    _recent_floor: dict[int, int]

    async def _write(self, body: Callable[[_Tx], Awaitable[T]]) -> T:
        """Run ``body`` in one write transaction, then publish its Changes: `SqliteStore`
        does (store/sqlite/store.py; see the implementation notes there)."""
        raise NotImplementedError

    async def _write_sync(
        self, body: Callable[[SyncTx], T], *, before: Callable[[], object] | None = None
    ) -> T:
        """`_write` of a body run on the writer's thread (store/sqlite/groupcommit.py)."""
        raise NotImplementedError

    def _writer_idle(self) -> bool:
        """No write queued or committing (store/sqlite/groupcommit.py)."""
        raise NotImplementedError

    def _now(self) -> dt.datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the store clock must return aware datetimes")
        return now.astimezone(dt.UTC)

    # --- new mailboxes ----------------------------------------------------------------------
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
        self,
        tx: _Tx,
        owner_id: int,
        owner: str,
        specs: Sequence[tuple[str, tuple[str, ...]]],
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
            + ", ".join("(?, ?, ?, ?, ?)" for _ in specs)
            + " RETURNING id, name",
            params,
        )
        ids = {name: id_ for id_, name in rows}
        out = []
        for i, (name, use) in enumerate(specs):
            mbox = _Mbox(
                id=ids[name],
                owner_id=owner_id,
                owner=owner,
                name=name,
                uidvalidity=first + i,
                uidnext=1,
                highestmodseq=1,
                messages=0,
                unseen=0,
                size=0,
                special_use=use,
                recent_uid=1,
            )
            out.append(mbox)
            tx.emit(MailboxCreated(0, tx.at, origin, mbox.ref, use), owner)
        return out

    # --- lookups (each one hop; the synchronous functions below do the work) ---------------
    @staticmethod
    async def _owner(db: aiosqlite.Connection, user_id: int) -> str:
        row = await _one(db, "SELECT name FROM users WHERE id = ?", (user_id,))
        if row is None:
            raise UserNotFound("No such user")
        return str(row[0])

    @staticmethod
    async def _by_name(db: aiosqlite.Connection, user_id: int, name: str) -> _Mbox | None:
        return await _on_thread(db, _by_name_sync, user_id, name)

    @staticmethod
    async def _by_id(db: aiosqlite.Connection, mailbox_id: int) -> _Mbox:
        row = await _one(db, _MBOX_SELECT + " WHERE m.id = ?", (mailbox_id,))
        if row is None:
            raise MailboxNotFound("Mailbox no longer exists")
        return _Mbox.from_row(row)

    @staticmethod
    async def _selectable(db: aiosqlite.Connection, user_id: int, name: str) -> _Mbox:
        mbox = await SqliteBase._by_name(db, user_id, name)
        if mbox is None:
            raise MailboxNotFound("Mailbox does not exist")
        if not mbox.selectable:
            raise MailboxInvalid("Mailbox is not selectable (\\Noselect)")
        return mbox

    # --- APPEND/COPY/MOVE targets (RFC 4314 §4; store/acl.py) ---------------------------------
    @staticmethod
    async def _acl_rights(
        db: aiosqlite.Connection, viewer: str, admin: bool, mailbox_id: int, owner: str
    ) -> str:
        """The effective rights of ``viewer`` on a mailbox of ``owner``, from its ACL rows
        as ``db`` reads them now."""
        return await _on_thread(db, _acl_rights_sync, viewer, admin, mailbox_id, owner)

    async def _target(
        self,
        tx: _Tx,
        user_id: int,
        mailbox: str | int,
        need: str,
    ) -> tuple[_Mbox, str | None]:
        """`_target_sync` in one round trip to the writer's thread."""
        return await tx.call(lambda sync: _target_sync(sync, user_id, mailbox, need))

    # --- namespaces (RFC 2342; store/namespace.py) ------------------------------------------
    @staticmethod
    async def _viewer(db: aiosqlite.Connection, user_id: int) -> tuple[str, bool]:
        """(name, is_admin) of a user, read afresh (a grant or revoke applies at once)."""
        return await _on_thread(db, _viewer_sync, user_id)

    async def _locate(self, db: aiosqlite.Connection, user_id: int, name: str) -> tuple[int, str]:
        """`_locate_sync` in one round trip (none for a name in the user's own namespace)."""
        if namespace.is_personal(name):
            return user_id, names.canonical(name)
        return await _on_thread(db, _locate_sync, user_id, name)


async def _on_thread(db: aiosqlite.Connection, fn: Callable[..., T], *args: Any) -> T:
    """``fn(connection, *args)`` on ``db``'s own thread, in one round trip."""
    return cast(T, await db._execute(fn, db._conn, *args))  # type: ignore[no-untyped-call]


# --- the lookups on the connection's thread (synchronous: one hop for all their statements) ---
def _by_name_sync(conn: sqlite3.Connection, user_id: int, name: str) -> _Mbox | None:
    row = conn.execute(
        _MBOX_SELECT + " WHERE m.owner_id = ? AND m.name = ?", (user_id, name)
    ).fetchone()
    return None if row is None else _Mbox.from_row(row)


def _viewer_sync(conn: sqlite3.Connection, user_id: int) -> tuple[str, bool]:
    """(name, is_admin) of a user, read afresh (a grant or revoke applies at once)."""
    row = conn.execute("SELECT name, is_admin FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        raise UserNotFound("No such user")
    return str(row[0]), bool(row[1])


def _locate_sync(conn: sqlite3.Connection, user_id: int, name: str) -> tuple[int, str]:
    """(owner id, owner-relative name) of the mailbox a client name means for
    ``user_id``. Raises MailboxNotFound for a namespace root or an unknown owner (the
    same error as for a missing mailbox: names are never confirmed)."""
    if namespace.is_personal(name):
        return user_id, names.canonical(name)
    viewer, _ = _viewer_sync(conn, user_id)
    where = namespace.resolve(viewer, name)
    row = (
        None
        if where is None
        else conn.execute("SELECT id FROM users WHERE name = ?", (where.owner,)).fetchone()
    )
    if where is None or row is None:
        raise MailboxNotFound("Mailbox does not exist")
    return int(row[0]), where.name


def _acl_rights_sync(
    conn: sqlite3.Connection, viewer: str, admin: bool, mailbox_id: int, owner: str
) -> str:
    """The effective rights of ``viewer`` on a mailbox of ``owner``, from its ACL rows
    as ``conn`` reads them now."""
    rows = conn.execute(
        "SELECT identifier, rights FROM acl WHERE mailbox_id = ?"
        " AND identifier IN (?, ?, 'anyone', '-anyone')",
        (mailbox_id, viewer, "-" + viewer),
    ).fetchall()
    return aclrules.effective(viewer, owner, {r[0]: r[1] for r in rows}, is_admin=admin)


def _target_sync(
    tx: SyncTx, user_id: int, mailbox: str | int, need: str
) -> tuple[_Mbox, str | None]:
    """The mailbox an APPEND/COPY/MOVE writes to, read in its write transaction: by id
    (the caller resolved the name once) or by a client name of ``user_id``. With
    ``need``, ``user_id``'s rights on it as they are now (a revoke committed since the
    caller's check counts), refused by `aclrules.require`; else no rights (None: the
    caller checks none, as LMTP delivery and import do). Raises MailboxNotFound (also
    for a mailbox deleted since the caller resolved it), NoPermission, MailboxInvalid
    (\\Noselect)."""
    conn = tx.conn
    if isinstance(mailbox, int):
        row = tx.one(_MBOX_SELECT + " WHERE m.id = ?", (mailbox,))
        mbox = None if row is None else _Mbox.from_row(row)
    else:
        mbox = _by_name_sync(conn, *_locate_sync(conn, user_id, names.canonical(mailbox)))
    if mbox is None:
        raise MailboxNotFound("Mailbox does not exist")
    rights = None
    if need:
        if mbox.owner_id == user_id:
            rights = aclrules.ALL
        else:
            viewer, admin = _viewer_sync(conn, user_id)
            rights = _acl_rights_sync(conn, viewer, admin, mbox.id, mbox.owner)
        aclrules.require(rights, need)
    if not mbox.selectable:
        raise MailboxInvalid("Mailbox is not selectable (\\Noselect)")
    return mbox, rights
