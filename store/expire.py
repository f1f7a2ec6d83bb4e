"""Message expiry by per-mailbox retention: the rules and the SQL that finds what is due.

Owns: what "expired" means. A mailbox with ``retention_days`` set loses the messages saved
into it (``savedate``, RFC 8514: arrival by APPEND, delivery, COPY or MOVE) more than that many
days ago. This is Cyrus's cyr_expire with ``expire_by_savedate: on`` (its default is the
sent date, ``gmtime``); unlike Cyrus the value is not inherited by child mailboxes and
``\\Flagged`` messages are not kept (Cyrus: ``expire_keep_flagged``, off by default). The
transaction itself (one per mailbox, MessagesExpunged kind "expire", Origin(service=
"expire")) is `SqliteStore.expire`. Imports nothing of imapd or notify.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import aiosqlite

#: Retention values are whole days, at most about 100 years (keeps the cutoff arithmetic
#: far from datetime's limits).
MAX_RETENTION_DAYS = 36500

#: Messages of mailbox ? saved before the ISO 8601 cutoff ?. julianday() reads the offset,
#: so the comparison holds whatever offset a savedate was written with.
EXPIRED_WHERE = "m.mailbox_id = ? AND julianday(m.savedate) < julianday(?)"


@dataclass(frozen=True, slots=True)
class DueMailbox:
    id: int
    retention_days: int


def check_days(days: int | None) -> int | None:
    """Normalise a retention: None or 0 clears it. Raises ValueError when out of range."""
    if days is None or days == 0:
        return None
    if not 0 < days <= MAX_RETENTION_DAYS:
        raise ValueError(f"retention must be 1..{MAX_RETENTION_DAYS} days, or 0/none")
    return days


def cutoff(now: dt.datetime, days: int) -> str:
    """The savedate before which messages are expired, as ISO 8601 UTC."""
    if now.tzinfo is None:
        raise ValueError("expire needs an aware datetime")
    return (now.astimezone(dt.UTC) - dt.timedelta(days=days)).isoformat()


async def due_mailboxes(db: aiosqlite.Connection) -> list[DueMailbox]:
    """Selectable mailboxes with a retention, by id."""
    rows = await db.execute_fetchall(
        "SELECT id, retention_days FROM mailboxes WHERE retention_days IS NOT NULL"
        " AND retention_days > 0 AND selectable = 1 ORDER BY id"
    )
    return [DueMailbox(int(r[0]), int(r[1])) for r in rows]
