"""METADATA annotations (RFC 5464): the rules, pure.

Owns: the limits of a SETMETADATA (value size, entry count, private support), which entries
are private, the `MetadataChanged` values a SETMETADATA commits, and the errors carrying the
METADATA response codes. The SQL (entry lookup with DEPTH, the write checked against these
limits inside its transaction) is store/sqlite/metadata.py. Imports nothing of imapd or
notify.

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

from store.changes import MailboxRef, MetadataChanged, Origin
from store.errors import StoreError

SERVER = 0  # mailbox_id of server entries
SHARED = 0  # user_id of /shared entries


@dataclass(frozen=True, slots=True)
class MetadataLimits:
    """What one SETMETADATA may do; the server passes its configuration in."""

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
