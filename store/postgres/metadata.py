"""METADATA annotations (RFC 5464) in PostgreSQL: store/sqlite/metadata.py's reads and
writes (same contract); limits and errors are store/metadata.py."""

from __future__ import annotations

from collections.abc import Sequence

from store.metadata import (
    SHARED,
    MetadataLimits,
    MetadataNoPrivate,
    MetadataTooBig,
    MetadataTooMany,
    is_private,
    owner_of,
)
from store.postgres.base import Db


async def read(
    db: Db, mailbox_id: int, user_id: int, entries: Sequence[str], depth: int | None
) -> list[tuple[str, bytes | None]]:
    out: dict[str, bytes | None] = {}
    for name in entries:
        rows = await db.fetch(
            "SELECT entry, value FROM metadata WHERE mailbox_id = $1 AND user_id = $2"
            " AND (entry = $3 OR (entry >= $4 AND entry < $5)) ORDER BY entry",
            mailbox_id,
            owner_of(name, user_id),
            name,
            name + "/",
            name + "0",
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
    db: Db,
    mailbox_id: int,
    user_id: int,
    items: Sequence[tuple[str, bytes | None]],
    limits: MetadataLimits,
) -> list[str]:
    for entry, value in items:
        if is_private(entry) and not limits.private:
            raise MetadataNoPrivate("Private annotations are not supported")
        if value is not None and len(value) > limits.max_size:
            raise MetadataTooBig("Annotation value too large", limits.max_size)
    rows = await db.fetch(
        "SELECT entry, value FROM metadata WHERE mailbox_id = $1 AND user_id IN ($2, $3)"
        " FOR UPDATE",
        mailbox_id,
        SHARED,
        user_id,
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
                "DELETE FROM metadata WHERE mailbox_id = $1 AND user_id = $2 AND entry = $3",
                mailbox_id,
                owner_of(entry, user_id),
                entry,
            )
        else:
            if current.get(entry) == value:
                continue
            await db.execute(
                "INSERT INTO metadata (mailbox_id, user_id, entry, value) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (mailbox_id, user_id, entry) DO UPDATE SET value = excluded.value",
                mailbox_id,
                owner_of(entry, user_id),
                entry,
                value,
            )
        changed.append(entry)
    return changed


async def copy_mailbox(db: Db, source_id: int, target_id: int) -> None:
    await db.execute(
        "INSERT INTO metadata (mailbox_id, user_id, entry, value)"
        " SELECT $1, user_id, entry, value FROM metadata WHERE mailbox_id = $2"
        " ON CONFLICT (mailbox_id, user_id, entry) DO UPDATE SET value = excluded.value",
        target_id,
        source_id,
    )


async def forget_mailbox(db: Db, mailbox_id: int) -> None:
    """RFC 5464 §4.1: annotations go with their mailbox (also to a \\Noselect placeholder)."""
    await db.execute("DELETE FROM metadata WHERE mailbox_id = $1", mailbox_id)
