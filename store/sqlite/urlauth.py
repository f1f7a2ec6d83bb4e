"""URLAUTH mailbox access keys on SQLite (the ``urlauth_keys`` table; RFC 4467 §2.2).

Owns: reading, creating and resetting a user's keys. No Change is published: a key is
nothing a client sees, and it must never reach the change_log. Imports nothing of imapd or
notify.
"""

from __future__ import annotations

from store.sqlite.base import SqliteBase, _one, _Tx
from store.urlauth import new_key


class SqliteUrlAuth(SqliteBase):
    async def urlauth_key(self, user_id: int, mailbox_id: int, *, create: bool) -> bytes | None:
        """The user's access key for the mailbox; with ``create``, one is made when missing
        (RFC 4467 §7: GENURLAUTH needs no RESETKEY first). None: no key (yet)."""
        row = await _one(
            self._reader,
            "SELECT key FROM urlauth_keys WHERE user_id = ? AND mailbox_id = ?",
            (user_id, mailbox_id),
        )
        if row is not None or not create:
            return bytes(row[0]) if row is not None else None

        async def body(tx: _Tx) -> bytes | None:
            await tx.run(
                "INSERT INTO urlauth_keys (user_id, mailbox_id, key)"
                " SELECT ?, id, ? FROM mailboxes WHERE id = ?"
                " ON CONFLICT (user_id, mailbox_id) DO NOTHING",
                (user_id, new_key(), mailbox_id),
            )
            got = await tx.one(
                "SELECT key FROM urlauth_keys WHERE user_id = ? AND mailbox_id = ?",
                (user_id, mailbox_id),
            )
            return bytes(got[0]) if got is not None else None

        return await self._write(body)

    async def reset_urlauth_keys(self, user_id: int, mailbox_id: int | None) -> None:
        """RESETKEY (RFC 4467 §7): a new key for ``mailbox_id``, revoking every URL made with
        the old one; None removes all of the user's keys."""

        async def body(tx: _Tx) -> None:
            if mailbox_id is None:
                await tx.run("DELETE FROM urlauth_keys WHERE user_id = ?", (user_id,))
                return
            await tx.run(
                "INSERT INTO urlauth_keys (user_id, mailbox_id, key)"
                " SELECT ?, id, ? FROM mailboxes WHERE id = ?"
                " ON CONFLICT (user_id, mailbox_id) DO UPDATE SET key = excluded.key",
                (user_id, new_key(), mailbox_id),
            )

        await self._write(body)
