"""Quotas in PostgreSQL: the usage and limit queries over ``quota_roots`` and the mailbox
counters, the rules from store/quota.py. Concurrency: `settle` locks the quota roots it
checks (``FOR UPDATE``, in id order) before summing, so two transactions growing one root
(two instances, two connections) are serialised and the second sums the first's committed
counters: of two racing APPENDs of which only one fits, exactly one wins.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from store.changes import Origin, QuotaChanged
from store.postgres.base import Db, Row, fetch_one
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

_ROOT_OF_MAILBOX = (
    "r.id = coalesce(m.quota_root_id,"
    " (SELECT q.id FROM quota_roots AS q WHERE q.user_id = m.owner_id))"
)
_COVERED = "(x.quota_root_id = r.id OR (x.quota_root_id IS NULL AND x.owner_id = r.user_id))"
_ROOT_COLUMNS = (
    "r.id, coalesce(r.name, u.name, ''), coalesce(u.name, ''), r.storage, r.messages,"
    " (SELECT coalesce(sum(x.size), 0)::bigint FROM mailboxes AS x WHERE " + _COVERED + "),"
    " (SELECT coalesce(sum(x.messages), 0)::bigint FROM mailboxes AS x WHERE " + _COVERED + ")"
)


def _info(row: Row) -> QuotaInfo:
    rid, name, owner, storage, messages, used, count = row
    return QuotaInfo(
        Root(int(rid), str(name), str(owner), Limits(storage, messages)),
        Usage(int(used), int(count)),
    )


async def of_user(db: Db, user_id: int, name: str) -> QuotaInfo:
    row = await fetch_one(
        db,
        "SELECT " + _ROOT_COLUMNS + " FROM quota_roots AS r LEFT JOIN users AS u"
        " ON u.id = r.user_id WHERE r.user_id = $1",
        user_id,
    )
    if row is not None:
        return _info(row)
    usage = await fetch_one(
        db,
        "SELECT coalesce(sum(size), 0)::bigint, coalesce(sum(messages), 0)::bigint"
        " FROM mailboxes WHERE owner_id = $1 AND quota_root_id IS NULL",
        user_id,
    )
    assert usage is not None
    return QuotaInfo(Root(None, name, name, Limits()), Usage(int(usage[0]), int(usage[1])))


async def by_name(db: Db, root: str) -> tuple[QuotaInfo, int | None]:
    """A root by name (a user's name names the user's root). Raises QuotaRootNotFound."""
    row = await fetch_one(db, "SELECT id FROM users WHERE name = $1", root)
    if row is not None:
        return await of_user(db, int(row[0]), root), int(row[0])
    row = await fetch_one(
        db,
        "SELECT " + _ROOT_COLUMNS + " FROM quota_roots AS r LEFT JOIN users AS u"
        " ON u.id = r.user_id WHERE r.user_id IS NULL AND r.name = $1",
        root,
    )
    if row is None:
        raise QuotaRootNotFound("No such quota root")
    return _info(row), None


async def of_mailbox(db: Db, user_id: int, owner: str, name: str) -> QuotaInfo:
    row = await fetch_one(
        db,
        "SELECT "
        + _ROOT_COLUMNS
        + " FROM mailboxes AS m JOIN quota_roots AS r ON "
        + _ROOT_OF_MAILBOX
        + " LEFT JOIN users AS u ON u.id = r.user_id"
        " WHERE m.owner_id = $1 AND m.name = $2 AND m.quota_root_id IS NOT NULL",
        user_id,
        name,
    )
    if row is not None:
        return _info(row)
    return await of_user(db, user_id, owner)


async def set_limits(db: Db, user_id: int, limits: Limits) -> None:
    await db.execute(
        "INSERT INTO quota_roots (user_id, storage, messages) VALUES ($1, $2, $3)"
        " ON CONFLICT (user_id) DO UPDATE SET storage = excluded.storage,"
        " messages = excluded.messages",
        user_id,
        limits.storage,
        limits.messages,
    )


async def lock_user_root(db: Db, user_id: int) -> None:
    await db.execute("SELECT 1 FROM quota_roots WHERE user_id = $1 FOR UPDATE", user_id)


async def settle(
    db: Db,
    deltas: Mapping[int, tuple[int, int]],
    at: dt.datetime,
    origin: Origin,
    *,
    applied: bool = False,
) -> list[QuotaChanged]:
    """store/sqlite/quota.py's `settle` (same contract), with the roots locked first."""
    ids = [mid for mid, (count, octets) in deltas.items() if count or octets]
    if not ids:
        return []
    locked = await db.fetch(
        "SELECT r.id FROM mailboxes AS m JOIN quota_roots AS r ON "
        + _ROOT_OF_MAILBOX
        + " WHERE m.id = ANY($1::bigint[]) ORDER BY r.id FOR UPDATE OF r",
        ids,
    )
    if not locked:
        return []  # no limits anywhere: nothing to check
    rows = await db.fetch(
        "SELECT m.id, "
        + _ROOT_COLUMNS
        + " FROM mailboxes AS m JOIN quota_roots AS r ON "
        + _ROOT_OF_MAILBOX
        + " LEFT JOIN users AS u ON u.id = r.user_id"
        " WHERE m.id = ANY($1::bigint[])",
        ids,
    )
    roots: dict[int, QuotaInfo] = {}
    grow: dict[int, tuple[int, int]] = {}
    for row in rows:
        info = _info(row[1:])
        assert info.root.id is not None
        roots[info.root.id] = info
        count, octets = grow.get(info.root.id, (0, 0))
        d_count, d_octets = deltas[row[0]]
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
