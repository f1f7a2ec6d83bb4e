"""What the families of `PostgresStore` share: row shapes, SQL fragments, the write
transaction handle and the lookups of users and mailboxes (the PostgreSQL twin of
store/sqlite/base.py; the rules are the pure modules of store/).

`_Tx` is one write transaction on one pooled connection; store/postgres/store.py begins it,
numbers its Changes into change_log under the commit lock and commits. Must not import imapd
or notify.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

import asyncpg

from store import acl as aclrules
from store import flags as flagrules
from store import names, namespace
from store.api import MailboxInfo, Prerender
from store.changes import Change, Counts, MailboxCreated, MailboxRef, MessageFacts, Origin
from store.errors import MailboxInvalid, MailboxNotFound, UserNotFound
from store.postgres.pool import Pool

T = TypeVar("T")
Row = Sequence[Any]
#: An asyncpg Connection or Pool (both fetch, fetchrow, execute); asyncpg is untyped.
Db: TypeAlias = Any

MBOX_COLUMNS = (
    "m.id, m.owner_id, u.name, m.name, m.uidvalidity, m.uidnext, m.highestmodseq, m.messages,"
    " m.unseen, m.size, m.deleted, m.recent_uid, m.special_use, m.selectable, m.retention_days"
)
MBOX_FROM = " FROM mailboxes m JOIN users u ON u.id = m.owner_id"
MBOX_SELECT = "SELECT " + MBOX_COLUMNS + MBOX_FROM
COUNTS = "RETURNING messages, unseen, uidnext, highestmodseq, size, deleted"
FACTS = "m.uid, m.modseq, m.flags, m.size, m.internaldate, c.message_id, m.seen, m.deleted"


def iso(when: dt.datetime) -> str:
    return when.replace(microsecond=0).isoformat()


@dataclass(slots=True)
class Mbox:
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
    def from_row(cls, row: Row) -> Mbox:
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
            id=self.id,
            owner_id=self.owner_id,
            owner=self.owner,
            name=self.name,
            uidvalidity=self.uidvalidity,
            uidnext=self.uidnext,
            highestmodseq=self.highestmodseq,
            messages=self.messages,
            unseen=self.unseen,
            recent=recent,
            size=self.size,
            special_use=self.special_use,
            subscribed=subscribed,
            selectable=self.selectable,
            retention_days=self.retention_days,
            deleted=self.deleted,
        )


def facts(
    row: Row, *, uid: int | None = None, modseq: int | None = None, content_id: int | None = None
) -> MessageFacts:
    """MessageFacts from a ``FACTS`` row, optionally with a new UID/modseq or contents id."""
    return MessageFacts(
        uid=row[0] if uid is None else uid,
        modseq=row[1] if modseq is None else modseq,
        flags=flagrules.from_text(row[2]),
        size=row[3],
        internaldate=dt.datetime.fromisoformat(row[4]),
        message_id=row[5],
        content_id=content_id,
    )


class Tx:
    """One write transaction: its connection, time and pending Changes."""

    def __init__(self, db: asyncpg.Connection, at: dt.datetime) -> None:
        self.db = db
        self.at = at
        self.at_iso = iso(at)
        self.pending: list[tuple[Change, str | None]] = []

    async def rows(self, sql: str, *params: object) -> list[Row]:
        return list(await self.db.fetch(sql, *params))

    async def one(self, sql: str, *params: object) -> Row | None:
        row: Row | None = await self.db.fetchrow(sql, *params)
        return row

    async def run(self, sql: str, *params: object) -> None:
        await self.db.execute(sql, *params)

    async def many(self, sql: str, params: Iterable[Sequence[object]]) -> None:
        await self.db.executemany(sql, params)

    def emit(self, change: Change, user: str | None) -> None:
        """Queue a Change built with ``seq=0``; the store numbers it at commit."""
        self.pending.append((change, user))


async def fetch_one(db: Db, sql: str, *params: object) -> Row | None:
    row: Row | None = await db.fetchrow(sql, *params)
    return row


class PostgresBase:
    """State and lookups the operation mixins share (set by `PostgresStore.__init__`)."""

    _pool: Pool
    _scrypt_n: int
    _clock: Callable[[], dt.datetime]
    _uidvalidity_source: Callable[[], int] | None
    _prerender: Prerender | None
    _dummy_hash: str | None
    #: mailbox id -> a lower bound of its ``recent_uid`` (`claim_recent`).
    _recent_floor: dict[int, int]
    #: mailbox id -> [its claim lock, callers holding or waiting for it] (`claim_recent`).
    _claiming: dict[int, list[Any]]

    async def _write(self, body: Callable[[Tx], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def _write_grouped(
        self, key: Hashable, body: Callable[[Tx], Awaitable[T]], batch: object = None
    ) -> T:
        """`_write`, maybe sharing one transaction with other jobs queued under ``key``
        (store/postgres/groupcommit.py); ``batch``: what lets a group of such jobs be written
        as one (an APPEND's `Appending`, store/postgres/appendbatch.py)."""
        raise NotImplementedError

    async def _drop_contents(self, tx: Tx, content_ids: Sequence[int]) -> None:
        """Delete the contents rows among ``content_ids`` no message uses any more."""
        if content_ids:
            await tx.run(
                "DELETE FROM contents c WHERE c.id = ANY($1::bigint[]) AND NOT EXISTS"
                " (SELECT 1 FROM messages m WHERE m.content_id = c.id)",
                list(set(content_ids)),
            )

    def _now(self) -> dt.datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the store clock must return aware datetimes")
        return now.astimezone(dt.UTC)

    async def _uidvalidities(self, tx: Tx, count: int) -> int:
        """Reserve ``count`` consecutive UIDVALIDITY values (the meta row's lock orders
        concurrent reservations); return the first."""
        source = self._uidvalidity_source
        proposed = source() if source is not None else int(tx.at.timestamp())
        row = await tx.one(
            "INSERT INTO meta (key, value) VALUES ('uidvalidity', $1) ON CONFLICT (key) DO"
            " UPDATE SET value = greatest($2, meta.value + 1) + $3 RETURNING value",
            proposed + count - 1,
            proposed,
            count - 1,
        )
        assert row is not None
        return int(row[0]) - count + 1

    async def _insert_mailboxes(
        self,
        tx: Tx,
        owner_id: int,
        owner: str,
        specs: Sequence[tuple[str, tuple[str, ...]]],
        origin: Origin,
    ) -> list[Mbox]:
        """Create mailboxes (fresh UIDVALIDITYs) and emit a MailboxCreated for each."""
        if not specs:
            return []
        first = await self._uidvalidities(tx, len(specs))
        rows = await tx.rows(
            "INSERT INTO mailboxes (owner_id, name, uidvalidity, special_use, created)"
            " SELECT $1, n, v, s, $5 FROM unnest($2::text[], $3::bigint[], $4::text[])"
            " AS x(n, v, s) RETURNING id, name",
            owner_id,
            [n for n, _ in specs],
            [first + i for i in range(len(specs))],
            [" ".join(u) for _, u in specs],
            tx.at_iso,
        )
        ids = {r[1]: r[0] for r in rows}
        out = []
        for i, (name, use) in enumerate(specs):
            mbox = Mbox(
                ids[name], owner_id, owner, name, first + i, 1, 1, 0, 0, 0, 0, 1, use, True, None
            )
            out.append(mbox)
            tx.emit(MailboxCreated(0, tx.at, origin, mbox.ref, use), owner)
        return out

    @staticmethod
    async def _owner(db: Db, user_id: int) -> str:
        row = await fetch_one(db, "SELECT name FROM users WHERE id = $1", user_id)
        if row is None:
            raise UserNotFound("No such user")
        return str(row[0])

    @staticmethod
    async def _by_name(db: Db, user_id: int, name: str) -> Mbox | None:
        row = await fetch_one(
            db, MBOX_SELECT + " WHERE m.owner_id = $1 AND m.name = $2", user_id, name
        )
        return None if row is None else Mbox.from_row(row)

    @staticmethod
    async def _by_id(db: Db, mailbox_id: int) -> Mbox:
        row = await fetch_one(db, MBOX_SELECT + " WHERE m.id = $1", mailbox_id)
        if row is None:
            raise MailboxNotFound("Mailbox no longer exists")
        return Mbox.from_row(row)

    @staticmethod
    async def _selectable(db: Db, user_id: int, name: str) -> Mbox:
        mbox = await PostgresBase._by_name(db, user_id, name)
        if mbox is None:
            raise MailboxNotFound("Mailbox does not exist")
        if not mbox.selectable:
            raise MailboxInvalid("Mailbox is not selectable (\\Noselect)")
        return mbox

    async def _target(
        self,
        tx: Tx,
        user_id: int,
        mailbox: str | int,
        need: str,
    ) -> tuple[Mbox, str | None]:
        """The mailbox an APPEND/COPY/MOVE writes to, read and locked (``FOR UPDATE``) in
        its write transaction: by id or by a client name of ``user_id``. With ``need``,
        ``user_id``'s rights on it as they are now, refused by `aclrules.require`. Raises
        MailboxNotFound, NoPermission, MailboxInvalid (\\Noselect)."""
        if isinstance(mailbox, int):
            row = await tx.one(MBOX_SELECT + " WHERE m.id = $1 FOR UPDATE OF m", mailbox)
        else:
            owner_id, local = await self._locate(tx.db, user_id, names.canonical(mailbox))
            row = await tx.one(
                MBOX_SELECT + " WHERE m.owner_id = $1 AND m.name = $2 FOR UPDATE OF m",
                owner_id,
                local,
            )
        if row is None:
            raise MailboxNotFound("Mailbox does not exist")
        mbox = Mbox.from_row(row)
        rights = None
        if need:
            if mbox.owner_id == user_id:
                rights = aclrules.ALL
            else:
                viewer, admin = await self._viewer(tx.db, user_id)
                rows = await tx.rows(
                    "SELECT identifier, rights FROM acl WHERE mailbox_id = $1"
                    " AND identifier IN ($2, $3, 'anyone', '-anyone')",
                    mbox.id,
                    viewer,
                    "-" + viewer,
                )
                rights = aclrules.effective(
                    viewer, mbox.owner, {r[0]: r[1] for r in rows}, is_admin=admin
                )
            aclrules.require(rights, need)
        if not mbox.selectable:
            raise MailboxInvalid("Mailbox is not selectable (\\Noselect)")
        return mbox, rights

    @staticmethod
    async def _viewer(db: Db, user_id: int) -> tuple[str, bool]:
        row = await fetch_one(db, "SELECT name, is_admin FROM users WHERE id = $1", user_id)
        if row is None:
            raise UserNotFound("No such user")
        return str(row[0]), bool(row[1])

    async def _locate(self, db: Db, user_id: int, name: str) -> tuple[int, str]:
        """(owner id, owner-relative name) of the mailbox a client name means for
        ``user_id`` (store/namespace.py). Raises MailboxNotFound."""
        if namespace.is_personal(name):
            return user_id, names.canonical(name)
        viewer, _ = await self._viewer(db, user_id)
        where = namespace.resolve(viewer, name)
        row = (
            None
            if where is None
            else await fetch_one(db, "SELECT id FROM users WHERE name = $1", where.owner)
        )
        if where is None or row is None:
            raise MailboxNotFound("Mailbox does not exist")
        return int(row[0]), where.name
