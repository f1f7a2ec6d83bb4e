"""METADATA annotations (RFC 5464) in SQLite: the reads of GETMETADATA, the write of SETMETADATA.

Owns: the ``metadata`` table (store/migrations/0004_metadata.sql), entry lookup with DEPTH,
the limits of a SETMETADATA (value size, entry count, private support) checked inside its
transaction, the `MetadataChanged` values it commits, and the errors carrying the METADATA
response codes. `SqliteStore` runs these on its own connections and transactions (its
``get_metadata`` / ``set_metadata`` / INBOX rename); nothing here opens a transaction.
Imports nothing of imapd or notify.

Rows: ``mailbox_id`` 0 for server entries, ``user_id`` 0 for ``/shared`` entries and the
owning user's id for ``/private`` ones; entry names lower-cased (RFC 5464 §3.2: entry names
are case-insensitive; the parser lower-cases them). Triggers in the migration remove a
mailbox's entries when it is deleted (or left as a \\Noselect placeholder) and a user's
private entries with the user.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from store.changes import MailboxRef, MetadataChanged, Origin
from store.errors import StoreError

SERVER = 0  # mailbox_id of server entries
SHARED = 0  # user_id of /shared entries


@dataclass(frozen=True, slots=True)
class MetadataLimits:
    """What one SETMETADATA may do; the server passes its configuration in (STYLE §5)."""

    #: Octets of one value. RFC 5464 §4.1: a server MUST accept at least 1024.
    max_size: int = 64 * 1024
    #: Entries of one mailbox (or of the server) as one user sees them, /shared and their
    #: /private together. RFC 5464 §4.1: at least 10.
    max_entries: int = 256
    #: /private entries supported (RFC 5464 §3.3 makes them optional).
    private: bool = True


class MetadataTooBig(StoreError):
    """RFC 5464 §4.3: ``NO [METADATA MAXSIZE n]``, n the largest value accepted."""

    def __init__(self, text: str, max_size: int) -> None:
        super().__init__(text)
        self.code = f"METADATA MAXSIZE {max_size}"


class MetadataTooMany(StoreError):
    """RFC 5464 §4.3: ``NO [METADATA TOOMANY]``."""

    code = "METADATA TOOMANY"


class MetadataNoPrivate(StoreError):
    """RFC 5464 §4.3: ``NO [METADATA NOPRIVATE]``."""

    code = "METADATA NOPRIVATE"


def is_private(entry: str) -> bool:
    return entry == "/private" or entry.startswith("/private/")


def owner_of(entry: str, user_id: int) -> int:
    """The ``user_id`` column of ``entry`` for ``user_id``: theirs if private, else shared."""
    return user_id if is_private(entry) else SHARED


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


def changes(
    at: dt.datetime,
    origin: Origin,
    owner: str,
    mailbox: MailboxRef | None,
    changed: Sequence[str],
) -> list[tuple[MetadataChanged, str | None]]:
    """The MetadataChanged values of one SETMETADATA with their change_log ``user``.

    Mailbox entries: one change, ``user`` the mailbox owner. Server entries: one for the
    user's /private entries (``user`` = owner) and one for /shared ones (``user`` = "",
    change_log user NULL: every user may read them)."""
    if not changed:
        return []
    if mailbox is not None:
        return [(MetadataChanged(0, at, origin, owner, mailbox, tuple(changed)), owner)]
    out: list[tuple[MetadataChanged, str | None]] = []
    private = tuple(e for e in changed if is_private(e))
    shared = tuple(e for e in changed if not is_private(e))
    if private:
        out.append((MetadataChanged(0, at, origin, owner, None, private), owner))
    if shared:
        out.append((MetadataChanged(0, at, origin, "", None, shared), None))
    return out


async def copy_mailbox(db: aiosqlite.Connection, source_id: int, target_id: int) -> None:
    """RFC 5464 §4.1: renaming INBOX copies its annotations to the new mailbox and keeps
    them on INBOX."""
    await db.execute(
        "INSERT OR REPLACE INTO metadata (mailbox_id, user_id, entry, value)"
        " SELECT ?, user_id, entry, value FROM metadata WHERE mailbox_id = ?",
        (target_id, source_id),
    )
