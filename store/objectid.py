"""RFC 8474 object ids from the store's own never-reused keys. Pure; backend-neutral.

- MAILBOXID ``F<id>-<uidvalidity>``: the mailbox row id with its UIDVALIDITY. RENAME keeps
  both (the row is renamed in place), so the id survives it (RFC 8474 §4); a ``\\Noselect``
  placeholder brought back to life keeps its row but gets a new UIDVALIDITY, hence a new
  MAILBOXID ("MUST NOT reuse ... for a mailbox that does not obey all the invariants").
  RENAME INBOX creates a new mailbox row (RFC 3501 §6.3.5): the new name gets a new id.
- EMAILID ``M<content id>``: the shared contents row. COPY and MOVE reuse the row, so the
  destination message has the source's EMAILID (RFC 8474 §5.1); ids of contents rows are
  never reused (AUTOINCREMENT in SQLite, a sequence in PostgreSQL).
- THREADID: not computed; always NIL, and SEARCH THREADID matches nothing (RFC 8474 §5.2:
  "it MUST return NIL to all FETCH responses ... and a SEARCH for THREADID MUST NOT match").

Every id starts with a letter and is not NIL (RFC 8474 §8.1). Row ids and UIDVALIDITY are
store-wide, so the ids are unique in the server, across users.
"""

from __future__ import annotations

import re

_EMAILID = re.compile(r"M([1-9][0-9]{0,17})")


def mailbox_id(row_id: int, uidvalidity: int) -> str:
    return f"F{row_id}-{uidvalidity}"


def email_id(content_id: int) -> str:
    return f"M{content_id}"


def content_of(emailid: str) -> int | None:
    """The contents row an EMAILID names, or None when no EMAILID of ours looks like it
    (such a SEARCH EMAILID matches nothing)."""
    found = _EMAILID.fullmatch(emailid)
    return int(found[1]) if found else None
