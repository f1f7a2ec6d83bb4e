"""XAPPLEPUSHSERVICE device registrations (the ``aps_devices`` table, migration 0005).

Owns: the SQL of registering a device for some of a user's mailboxes and listing the
registrations. The transaction, with its ApplePushRegistered change, is
`SqliteStore.register_push`; sending pushes is the job of whatever consumes that change
(Cyrus also only emits the ApplePushService event). Imports nothing of imapd or notify.
"""

from __future__ import annotations

import datetime as dt
import json

import aiosqlite

from store.api import PushDevice


async def existing_mailboxes(
    db: aiosqlite.Connection, user_id: int, wanted: tuple[str, ...]
) -> tuple[str, ...]:
    """The selectable mailboxes among ``wanted`` (canonical names), in the given order."""
    rows = await db.execute_fetchall(
        "SELECT name FROM mailboxes WHERE owner_id = ? AND selectable = 1 AND name IN"
        " (SELECT value FROM json_each(?))",
        (user_id, json.dumps(list(wanted))),
    )
    present = {r[0] for r in rows}
    return tuple(n for n in wanted if n in present)


async def upsert(
    db: aiosqlite.Connection,
    user_id: int,
    aps_version: int,
    account_id: str,
    device_token: str,
    subtopic: str,
    mailboxes: tuple[str, ...],
    at: str,
) -> None:
    await db.execute(
        "INSERT INTO aps_devices (user_id, account_id, device_token, subtopic, aps_version,"
        " mailboxes, registered) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id, account_id, device_token, subtopic) DO UPDATE SET"
        " aps_version = excluded.aps_version, mailboxes = excluded.mailboxes,"
        " registered = excluded.registered",
        (user_id, account_id, device_token, subtopic, aps_version, json.dumps(list(mailboxes)), at),
    )


async def devices(db: aiosqlite.Connection, user_id: int | None) -> list[PushDevice]:
    """Registrations of one user (or everyone), by user name then registration."""
    rows = await db.execute_fetchall(
        "SELECT u.name, d.aps_version, d.account_id, d.device_token, d.subtopic, d.mailboxes,"
        " d.registered FROM aps_devices d JOIN users u ON u.id = d.user_id"
        " WHERE ? IS NULL OR d.user_id = ? ORDER BY u.name, d.registered, d.device_token",
        (user_id, user_id),
    )
    return [
        PushDevice(
            r[0],
            int(r[1]),
            r[2],
            r[3],
            r[4],
            tuple(json.loads(r[5])),
            dt.datetime.fromisoformat(r[6]),
        )
        for r in rows
    ]
