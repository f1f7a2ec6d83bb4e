"""Message expiry in SQLite: which mailboxes are due and which of their messages expired.
The rules (retention range, cutoff) are store/expire.py; the transaction is
`SqliteStore.expire`.
"""

from __future__ import annotations

import aiosqlite

from store.expire import DueMailbox

#: Messages of mailbox ? saved before the ISO 8601 cutoff ?. julianday() reads the offset,
#: so the comparison holds whatever offset a savedate was written with.
EXPIRED_WHERE = "m.mailbox_id = ? AND julianday(m.savedate) < julianday(?)"


async def due_mailboxes(db: aiosqlite.Connection) -> list[DueMailbox]:
    """Selectable mailboxes with a retention, by id."""
    rows = await db.execute_fetchall(
        "SELECT id, retention_days FROM mailboxes WHERE retention_days IS NOT NULL"
        " AND retention_days > 0 AND selectable = 1 ORDER BY id"
    )
    return [DueMailbox(int(r[0]), int(r[1])) for r in rows]
