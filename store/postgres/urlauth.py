"""URLAUTH mailbox access keys on PostgreSQL (the ``urlauth_keys`` table; RFC 4467 §2.2).

The same operations as store/sqlite/urlauth.py: reading, creating and resetting a user's
keys; a key never reaches the change_log, a reset logs a `UrlKeysReset` (user and mailbox
only). Imports nothing of imapd or notify.
"""

from __future__ import annotations

from store.changes import Origin, UrlKeysReset
from store.postgres.base import PostgresBase, Tx, fetch_one
from store.urlauth import new_key


class PostgresUrlAuth(PostgresBase):
    async def urlauth_key(self, user_id: int, mailbox_id: int, *, create: bool) -> bytes | None:
        """The user's access key for the mailbox; with ``create``, one is made when missing
        (RFC 4467 §7: GENURLAUTH needs no RESETKEY first). None: no key (yet)."""
        row = await fetch_one(
            self._pool,
            "SELECT key FROM urlauth_keys WHERE user_id = $1 AND mailbox_id = $2",
            user_id,
            mailbox_id,
        )
        if row is not None or not create:
            return bytes(row[0]) if row is not None else None

        async def body(tx: Tx) -> bytes | None:
            await tx.run(
                "INSERT INTO urlauth_keys (user_id, mailbox_id, key)"
                " SELECT $1, id, $2 FROM mailboxes WHERE id = $3"
                " ON CONFLICT (user_id, mailbox_id) DO NOTHING",
                user_id,
                new_key(),
                mailbox_id,
            )
            got = await tx.one(
                "SELECT key FROM urlauth_keys WHERE user_id = $1 AND mailbox_id = $2",
                user_id,
                mailbox_id,
            )
            return bytes(got[0]) if got is not None else None

        return await self._write(body)

    async def reset_urlauth_keys(
        self, user_id: int, mailbox_id: int | None, origin: Origin
    ) -> None:
        """RESETKEY (RFC 4467 §7): a new key for ``mailbox_id``, revoking every URL made with
        the old one; None removes all of the user's keys. The same transaction logs a
        `UrlKeysReset` (no key in it) for the user's sessions that have the mailbox
        selected; none when the mailbox is gone."""

        async def body(tx: Tx) -> None:
            user = await self._owner(tx.db, user_id)
            if mailbox_id is None:
                await tx.run("DELETE FROM urlauth_keys WHERE user_id = $1", user_id)
            elif (
                await tx.one(
                    "INSERT INTO urlauth_keys (user_id, mailbox_id, key)"
                    " SELECT $1, id, $2 FROM mailboxes WHERE id = $3"
                    " ON CONFLICT (user_id, mailbox_id) DO UPDATE SET key = excluded.key"
                    " RETURNING mailbox_id",
                    user_id,
                    new_key(),
                    mailbox_id,
                )
                is None
            ):
                return
            tx.emit(UrlKeysReset(0, tx.at, origin, user, mailbox_id), user)

        await self._write(body)
