"""METADATA annotations (RFC 5464) in SQLite: the reads of GETMETADATA, the write of SETMETADATA.

Owns: the ``metadata`` table (store/sqlite/migrations/0004_metadata.sql) and entry lookup
with DEPTH; the limits and errors are store/metadata.py. `SqliteStore` runs these on its
own connections and transactions (its ``get_metadata`` / ``set_metadata`` / INBOX rename);
nothing here opens a transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiosqlite

from store.metadata import (
    SHARED,
    MetadataLimits,
    MetadataNoPrivate,
    MetadataTooBig,
    MetadataTooMany,
    is_private,
    owner_of,
)


async def _rows(db: aiosqlite.Connection, sql: str, params: Sequence[object]) -> list[Any]:
    return list(await db.execute_fetchall(sql, params))


async def read(
    db: aiosqlite.Connection,
    mailbox_id: int,
    user_id: int,
    entries: Sequence[str],
    depth: int | None,
) -> list[tuple[str, bytes | None]]:
    """Entries as ``user_id`` sees them on a mailbox (or the server, ``SERVER``).

    For each requested entry: its value, then its descendants down to ``depth`` (0, 1, None
    for infinity; RFC 5464 §4.2.2) in name order. Without DEPTH a requested entry that has
    no value comes back as None (the caller sends NIL, as Dovecot and Cyrus do); with DEPTH
    it is left out, as in the §4.2.2 example. A bare "/private" or "/shared" is never an
    entry itself. Each entry appears once."""
    out: dict[str, bytes | None] = {}
    for name in entries:
        # "/" is 0x2F and "0" 0x30: [name + "/", name + "0") is exactly name's subtree.
        rows = await _rows(
            db,
            "SELECT entry, value FROM metadata WHERE mailbox_id = ? AND user_id = ?"
            " AND (entry = ? OR (entry >= ? AND entry < ?)) ORDER BY entry",
            (mailbox_id, owner_of(name, user_id), name, name + "/", name + "0"),
        )
        found = {str(r[0]): bytes(r[1]) for r in rows}
        if name in found or (depth == 0 and name.count("/") >= 2 and name not in out):
            out[name] = found.get(name)
        base = name.count("/")
        for entry, value in found.items():
            if entry == name or entry in out:
                continue
            if depth is None or entry.count("/") - base <= depth:
                out[entry] = value
    return list(out.items())


async def write(
    db: aiosqlite.Connection,
    mailbox_id: int,
    user_id: int,
    items: Sequence[tuple[str, bytes | None]],
    limits: MetadataLimits,
) -> list[str]:
    """Apply one SETMETADATA inside the caller's write transaction; all or nothing is the
    caller's transaction. Returns the entries really changed, in command order.

    Raises MetadataNoPrivate, MetadataTooBig, MetadataTooMany (RFC 5464 §4.3)."""
    for entry, value in items:
        if is_private(entry) and not limits.private:
            raise MetadataNoPrivate("Private annotations are not supported")
        if value is not None and len(value) > limits.max_size:
            raise MetadataTooBig("Annotation value too large", limits.max_size)
    rows = await _rows(
        db,
        "SELECT entry, value FROM metadata WHERE mailbox_id = ? AND user_id IN (?, ?)",
        (mailbox_id, SHARED, user_id),
    )
    current = {str(r[0]): bytes(r[1]) for r in rows}
    added = sum(1 for e, v in items if v is not None and e not in current)
    removed = sum(1 for e, v in items if v is None and e in current)
    if added and len(current) + added - removed > limits.max_entries:
        raise MetadataTooMany("Too many annotations")
    changed: list[str] = []
    for entry, value in items:
        if value is None:
            if entry not in current:
                continue
            await db.execute(
                "DELETE FROM metadata WHERE mailbox_id = ? AND user_id = ? AND entry = ?",
                (mailbox_id, owner_of(entry, user_id), entry),
            )
        else:
            if current.get(entry) == value:
                continue
            await db.execute(
                "INSERT OR REPLACE INTO metadata (mailbox_id, user_id, entry, value)"
                " VALUES (?, ?, ?, ?)",
                (mailbox_id, owner_of(entry, user_id), entry, value),
            )
        changed.append(entry)
    return changed


async def copy_mailbox(db: aiosqlite.Connection, source_id: int, target_id: int) -> None:
    """RFC 5464 §4.1: renaming INBOX copies its annotations to the new mailbox and keeps
    them on INBOX."""
    await db.execute(
        "INSERT OR REPLACE INTO metadata (mailbox_id, user_id, entry, value)"
        " SELECT ?, user_id, entry, value FROM metadata WHERE mailbox_id = ?",
        (target_id, source_id),
    )
