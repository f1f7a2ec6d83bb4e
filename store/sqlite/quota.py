"""Quotas in SQLite: the usage and limit queries over ``quota_roots`` and the mailbox counters
(store/sqlite/migrations/0008_quota.sql). The rules they apply (refuses, full, change) are
store/quota.py; `SqliteStore` runs these inside its own transactions; nothing here opens one.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Mapping

import aiosqlite

from store.changes import Origin, QuotaChanged
from store.quota import (
    Limits,
    QuotaInfo,
    QuotaRefused,
    QuotaRootNotFound,
    Root,
    Usage,
    change,
    full,
    refuses,
)

#: The root of mailbox ``m``: its own, else its owner's row (none: no limits).
_ROOT_OF_MAILBOX = (
    "r.id = coalesce(m.quota_root_id,"
    " (SELECT q.id FROM quota_roots AS q WHERE q.user_id = m.owner_id))"
)
#: The mailboxes a root ``r`` covers (two index seeks: quota_root_id, (owner_id, name)).
_COVERED = "(x.quota_root_id = r.id OR (x.quota_root_id IS NULL AND x.owner_id = r.user_id))"
_ROOT_COLUMNS = (
    "r.id, coalesce(r.name, u.name, ''), coalesce(u.name, ''), r.storage, r.messages,"
    " (SELECT coalesce(sum(x.size), 0) FROM mailboxes AS x WHERE " + _COVERED + "),"
    " (SELECT coalesce(sum(x.messages), 0) FROM mailboxes AS x WHERE " + _COVERED + ")"
)


def _info(row: tuple[object, ...]) -> QuotaInfo:
    rid, name, owner, storage, messages, used, count = row
    assert isinstance(rid, int) and isinstance(name, str) and isinstance(owner, str)
    assert storage is None or isinstance(storage, int)
    assert messages is None or isinstance(messages, int)
    assert isinstance(used, int) and isinstance(count, int)
    return QuotaInfo(Root(rid, name, owner, Limits(storage, messages)), Usage(used, count))


async def _rows(
    db: aiosqlite.Connection, sql: str, params: tuple[object, ...]
) -> list[tuple[object, ...]]:
    return [tuple(r) for r in await db.execute_fetchall(sql, params)]


async def _user_usage(db: aiosqlite.Connection, user_id: int) -> Usage:
    rows = await _rows(
        db,
        "SELECT coalesce(sum(size), 0), coalesce(sum(messages), 0) FROM mailboxes"
        " WHERE owner_id = ? AND quota_root_id IS NULL",
        (user_id,),
    )
    storage, messages = rows[0]
    assert isinstance(storage, int) and isinstance(messages, int)
    return Usage(storage, messages)


async def of_user(db: aiosqlite.Connection, user_id: int, name: str) -> QuotaInfo:
    """The user's root with its usage (no row: no limits)."""
    rows = await _rows(
        db,
        "SELECT " + _ROOT_COLUMNS + " FROM quota_roots AS r LEFT JOIN users AS u"
        " ON u.id = r.user_id WHERE r.user_id = ?",
        (user_id,),
    )
    if rows:
        return _info(rows[0])
    return QuotaInfo(Root(None, name, name, Limits()), await _user_usage(db, user_id))


async def by_name(db: aiosqlite.Connection, root: str) -> tuple[QuotaInfo, int | None]:
    """A root by its name, with the id of the user it belongs to (None: a mailbox root).
    A user's name names the user's root. Raises QuotaRootNotFound."""
    rows = await _rows(db, "SELECT id FROM users WHERE name = ?", (root,))
    if rows:
        user_id = rows[0][0]
        assert isinstance(user_id, int)
        return await of_user(db, user_id, root), user_id
    rows = await _rows(
        db,
        "SELECT " + _ROOT_COLUMNS + " FROM quota_roots AS r LEFT JOIN users AS u"
        " ON u.id = r.user_id WHERE r.user_id IS NULL AND r.name = ?",
        (root,),
    )
    if not rows:
        raise QuotaRootNotFound("No such quota root")
    return _info(rows[0]), None


async def of_mailbox(db: aiosqlite.Connection, user_id: int, owner: str, name: str) -> QuotaInfo:
    """GETQUOTAROOT: the root of ``owner``'s mailbox ``name`` (need not exist, RFC 9208
    §4.1.2: a mailbox yet to be created falls under its owner's root)."""
    rows = await _rows(
        db,
        "SELECT "
        + _ROOT_COLUMNS
        + " FROM mailboxes AS m JOIN quota_roots AS r ON "
        + _ROOT_OF_MAILBOX
        + " LEFT JOIN users AS u ON u.id = r.user_id"
        " WHERE m.owner_id = ? AND m.name = ? AND m.quota_root_id IS NOT NULL",
        (user_id, name),
    )
    if rows:
        return _info(rows[0])
    return await of_user(db, user_id, owner)


async def set_limits(db: aiosqlite.Connection, user_id: int, limits: Limits) -> None:
    """Create or replace a user's limits (SETQUOTA discards limits not named, §4.1.3)."""
    await db.execute_fetchall(
        "INSERT INTO quota_roots (user_id, storage, messages) VALUES (?, ?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET storage = excluded.storage,"
        " messages = excluded.messages",
        (user_id, limits.storage, limits.messages),
    )


#: The roots of the mailboxes of a JSON array of ids, with their limits and usage.
_SETTLE_ROOTS = (
    "SELECT m.id, " + _ROOT_COLUMNS + " FROM json_each(?) AS j JOIN mailboxes AS m"
    " ON m.id = j.value JOIN quota_roots AS r ON "
    + _ROOT_OF_MAILBOX
    + " LEFT JOIN users AS u ON u.id = r.user_id"
)


async def settle(
    db: aiosqlite.Connection,
    deltas: Mapping[int, tuple[int, int]],
    at: dt.datetime,
    origin: Origin,
    *,
    applied: bool = False,
) -> list[QuotaChanged]:
    """The quota rules for one transaction: ``deltas`` maps each mailbox id it changes to
    (messages, octets) added (negative: removed). ``applied``: the mailboxes' counters
    already include them (else they are about to). Raises `QuotaRefused` when a root would
    grow over a limit; returns the QuotaChanged(kind="within") of roots that stop being
    full. Roots without limits cost one query and nothing else."""
    ids = _changed(deltas)
    if not ids:
        return []
    rows = await _rows(db, _SETTLE_ROOTS, (json.dumps(ids),))
    return _decide(rows, deltas, at, origin, applied)


def settle_sync(
    conn: sqlite3.Connection,
    deltas: Mapping[int, tuple[int, int]],
    at: dt.datetime,
    origin: Origin,
    *,
    applied: bool = False,
) -> list[QuotaChanged]:
    """`settle` on the connection's own thread (store/sqlite/synctx.py)."""
    ids = _changed(deltas)
    if not ids:
        return []
    rows = [tuple(r) for r in conn.execute(_SETTLE_ROOTS, (json.dumps(ids),)).fetchall()]
    return _decide(rows, deltas, at, origin, applied)


def _changed(deltas: Mapping[int, tuple[int, int]]) -> list[int]:
    return [mid for mid, (count, octets) in deltas.items() if count or octets]


def _decide(
    rows: list[tuple[object, ...]],
    deltas: Mapping[int, tuple[int, int]],
    at: dt.datetime,
    origin: Origin,
    applied: bool,
) -> list[QuotaChanged]:
    """`settle`'s rules over its ``_SETTLE_ROOTS`` rows."""
    roots: dict[int, QuotaInfo] = {}
    grow: dict[int, tuple[int, int]] = {}
    for row in rows:
        mailbox_id = row[0]
        assert isinstance(mailbox_id, int)
        info = _info(row[1:])
        assert info.root.id is not None
        roots[info.root.id] = info
        count, octets = grow.get(info.root.id, (0, 0))
        d_count, d_octets = deltas[mailbox_id]
        grow[info.root.id] = (count + d_count, octets + d_octets)
    out: list[QuotaChanged] = []
    for root_id, info in roots.items():
        count, octets = grow[root_id]
        now = info.usage
        before = now.plus(-count, -octets) if applied else now
        after = now if applied else now.plus(count, octets)
        if refuses(info.root.limits, before, count, octets):
            raise QuotaRefused("Quota exceeded", change("exceeded", at, origin, info.root, before))
        if full(info.root.limits, before) and not full(info.root.limits, after):
            out.append(change("within", at, origin, info.root, after))
    return out
