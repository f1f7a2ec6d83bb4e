"""Retention and expiry in the PostgreSQL store (store/expire.py has the rules):
`PostgresExpire`, the mixin of `PostgresStore` that sets a mailbox's retention and removes
messages past it, one transaction per mailbox with its MessagesExpunged ("expire") and quota
accounting. The PostgreSQL twin of the expiry part of store/sqlite/messages.py. Must not
import imapd or notify.
"""

from __future__ import annotations

import datetime as dt

from store import expire, names
from store.changes import MessagesExpunged, Origin
from store.errors import MailboxNotFound
from store.postgres.base import FACTS, Tx, facts
from store.postgres.messages import PostgresMessages


class PostgresExpire(PostgresMessages):
    """Retention (``set_retention``) and expiry (``expire``)."""

    # --- expiry (store/expire.py) -----------------------------------------------------------
    async def set_retention(self, user_id: int, name: str, days: int | None) -> None:
        value = expire.check_days(days)
        name = names.canonical(name)

        async def body(tx: Tx) -> None:
            if (
                await tx.one(
                    "UPDATE mailboxes SET retention_days = $1 WHERE owner_id = $2"
                    " AND name = $3 RETURNING id",
                    value,
                    user_id,
                    name,
                )
                is None
            ):
                raise MailboxNotFound("Mailbox does not exist")

        await self._write(body)

    async def expire(self, now: dt.datetime | None = None) -> int:
        if now is not None and now.tzinfo is None:
            raise ValueError("expire needs an aware datetime")
        when = self._now() if now is None else now
        origin = Origin(service="expire")
        total = 0
        due = [
            expire.DueMailbox(int(r[0]), int(r[1]))
            for r in await self._pool.fetch(
                "SELECT id, retention_days FROM mailboxes WHERE retention_days > 0 AND selectable"
                " ORDER BY id"
            )
        ]
        for mailbox in due:
            before = expire.cutoff(when, mailbox.retention_days)

            async def body(tx: Tx, due: expire.DueMailbox = mailbox, before: str = before) -> int:
                row = await tx.one(
                    "SELECT retention_days, selectable FROM mailboxes WHERE id = $1 FOR UPDATE",
                    due.id,
                )
                if row is None or row[0] != due.retention_days or not row[1]:
                    return 0
                mbox = await self._by_id(tx.db, due.id)
                rows = await tx.rows(
                    "SELECT " + FACTS + ", m.content_id FROM messages AS m JOIN contents AS c"
                    " ON c.id = m.content_id WHERE m.mailbox_id = $1"
                    " AND m.savedate::timestamptz < $2::text::timestamptz ORDER BY m.uid",
                    due.id,
                    before,
                )
                if not rows:
                    return 0
                counts, modseq = await self._remove(tx, due.id, rows)
                gone = tuple(facts(r, content_id=r[8]) for r in rows)
                tx.emit(
                    MessagesExpunged(0, tx.at, origin, mbox.ref, counts, gone, modseq, "expire"),
                    mbox.owner,
                )
                await self._quota(
                    tx, {due.id: (-len(rows), -sum(r[3] for r in rows))}, origin, applied=True
                )
                return len(rows)

            total += await self._write(body)
        return total
