"""Quotas (RFC 9208): quota roots, their limits, their exact usage, and the rules that refuse
an addition or announce a return under a limit.

Owns: the rules, pure: what a root covers, how usage is compared with limits, and the
`QuotaChanged` values those rules produce. A backend counts usage and stores limits (SQLite:
store/sqlite/quota.py, the ``quota_roots`` table and ``mailboxes.quota_root_id`` of
store/sqlite/migrations/0008_quota.sql) inside its own write transactions (APPEND, delivery,
COPY, MOVE, EXPUNGE, expiry, DELETE, SETQUOTA). No SQL here. Imports nothing of imapd or
notify.

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
from dataclasses import dataclass

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
