"""Quotas (RFC 9208): quota roots, their limits, their exact usage, and the rules that refuse
an addition or announce a return under a limit.

Owns: the ``quota_roots`` table and ``mailboxes.quota_root_id`` (store/migrations/
0008_quota.sql), what a root covers, how usage is counted and compared, and the
`QuotaChanged` values those rules produce. `SqliteStore` runs these functions inside its own
write transactions (APPEND, delivery, COPY, MOVE, EXPUNGE, expiry, DELETE, SETQUOTA) and
read connection (GETQUOTA, GETQUOTAROOT); nothing here opens a transaction. Imports nothing
of imapd or notify.

Rules
-----
- Every user has one root, named by the user's name, covering all their mailboxes (shared
  mailboxes belong to the pseudo-user "" of store/namespace.py, so they share the root "").
  A mailbox may instead be attached to a root of its own (``mailboxes.quota_root_id``, a
  ``quota_roots`` row with ``user_id`` NULL and a ``name``): the schema and the usage query
  allow it; no command creates such roots yet.
- A user without a ``quota_roots`` row has no limits (GETQUOTA answers ``()``); SETQUOTA
  creates the row. Limits are STORAGE in KiB and MESSAGE in messages, NULL = unlimited.
- Usage is not stored: it is the SUM of the per-mailbox counters ``messages`` and ``size``
  (kept exactly in the transaction of every change) over the root's mailboxes, read inside
  the writing transaction, so it is exact and serialised with every other write. STORAGE
  usage is the sum of RFC822.SIZEs (RFC 9208 §5.1 allows this estimate), shown in KiB
  truncated (bytes // 1024, as Dovecot and Cyrus show it and Cyrus's ``diskUsed``).
- Enforcement (RFC 9208 §4.3.1, Cyrus's quota_check): an operation that adds ``n`` to a
  resource of a root is refused when usage + n > limit; reaching the limit exactly is
  allowed. A MOVE inside one root adds nothing and is never refused. The check runs in the
  transaction before any message row is written; the refusal (`QuotaRefused`) rolls the
  whole transaction back (never a partial COPY) and carries a QuotaChanged(kind="exceeded")
  that the store commits in a small transaction of its own right after.
- "Full" is Cyrus's quota_is_overquota: usage >= limit for some limited resource. A change
  that takes a root from full to not full yields QuotaChanged(kind="within"), in the same
  transaction (after an expunge, expiry, DELETE, a MOVE out of the root, or a SETQUOTA that
  raised or removed a limit: then after the QuotaChanged(kind="limits")).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass

import aiosqlite

from store.changes import Origin, QuotaChanged
from store.errors import OverQuota, StoreError

KIB = 1024
#: RFC 9208 §7: resource-limit = number64 (RFC 9051: a signed 63-bit positive number).
MAX_LIMIT = 2**63 - 1
RESOURCES = ("STORAGE", "MESSAGE")


class QuotaRootNotFound(StoreError):
    code = "NONEXISTENT"


class QuotaRefused(OverQuota):
    """An addition over a limit: ``NO [OVERQUOTA]``. ``change`` is the QuotaChanged(kind=
    "exceeded") the store commits after rolling the refused transaction back."""

    def __init__(self, text: str, change: QuotaChanged) -> None:
        super().__init__(text)
        self.change = change


@dataclass(frozen=True, slots=True)
class Limits:
    """STORAGE in KiB and MESSAGE in messages; None = unlimited."""

    storage: int | None = None
    messages: int | None = None

    def __post_init__(self) -> None:
        for value in (self.storage, self.messages):
            if value is not None and not 0 <= value <= MAX_LIMIT:
                raise ValueError(f"a quota limit must be 0..{MAX_LIMIT} or unlimited")


@dataclass(frozen=True, slots=True)
class Usage:
    storage: int  # octets (the sum of RFC822.SIZE)
    messages: int

    def plus(self, messages: int, storage: int) -> Usage:
        return Usage(self.storage + storage, self.messages + messages)


@dataclass(frozen=True, slots=True)
class Root:
    """A quota root: ``id`` None for a user who never had limits (no row yet)."""

    id: int | None
    name: str
    owner: str  # the user whose root it is; "" for shared mailboxes' roots
    limits: Limits


@dataclass(frozen=True, slots=True)
class QuotaInfo:
    """What GETQUOTA shows of a root."""

    root: Root
    usage: Usage

    def resources(self) -> list[tuple[str, int, int]]:
        """RFC 9208 §4.2.1 triplets (name, usage, limit) of the limited resources only
        ("Resources not named in the list are not limited"), STORAGE in KiB truncated."""
        out: list[tuple[str, int, int]] = []
        if self.root.limits.storage is not None:
            out.append(("STORAGE", self.usage.storage // KIB, self.root.limits.storage))
        if self.root.limits.messages is not None:
            out.append(("MESSAGE", self.usage.messages, self.root.limits.messages))
        return out


def full(limits: Limits, usage: Usage) -> bool:
    """Cyrus's quota_is_overquota for any resource: usage >= limit."""
    return (limits.storage is not None and usage.storage >= limits.storage * KIB) or (
        limits.messages is not None and usage.messages >= limits.messages
    )


def refuses(limits: Limits, before: Usage, messages: int, storage: int) -> bool:
    """Whether adding ``messages``/``storage`` octets to ``before`` goes over a limit; a
    resource that does not grow never refuses (a MOVE within a root, a lowered limit)."""
    if (
        storage > 0
        and limits.storage is not None
        and (before.storage + storage > limits.storage * KIB)
    ):
        return True
    return (
        messages > 0
        and limits.messages is not None
        and (before.messages + messages > limits.messages)
    )


def change(kind: str, at: dt.datetime, origin: Origin, root: Root, usage: Usage) -> QuotaChanged:
    """A QuotaChanged with ``seq=0`` (the store's change_log insert numbers it)."""
    return QuotaChanged(
        0,
        at,
        origin,
        kind,
        root.name,
        root.owner,
        root.limits.storage,
        usage.storage,
        root.limits.messages,
        usage.messages,
    )


# --- SQL ---------------------------------------------------------------------------------------
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
    ids = [mid for mid, (count, octets) in deltas.items() if count or octets]
    if not ids:
        return []
    rows = await _rows(
        db,
        "SELECT m.id, " + _ROOT_COLUMNS + " FROM json_each(?) AS j JOIN mailboxes AS m"
        " ON m.id = j.value JOIN quota_roots AS r ON "
        + _ROOT_OF_MAILBOX
        + " LEFT JOIN users AS u ON u.id = r.user_id",
        (json.dumps(ids),),
    )
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
