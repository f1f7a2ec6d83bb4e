"""Namespaces (RFC 2342): which owner and which owner-relative name a client's mailbox name
means, and back.

Owns: the three namespaces and their prefixes. A user sees

- personal names as they are (``INBOX``, ``Archive/2024``): the user's own mailboxes;
- ``Other Users/<owner>/<name>``: mailbox ``<name>`` of user ``<owner>`` (the owner's inbox
  is ``Other Users/alice/INBOX``), visible only where the ACL allows (store/acl.py);
- ``Shared/<name>``: mailboxes owned by the pseudo-user `SHARED_OWNER`, a ``users`` row with
  the empty name that cannot log in (store/sqlite/migrations/0007_acl.sql). Its mailboxes are
  administered by the server's admins.

The namespace roots themselves (``Other Users``, ``Other Users/alice``, ``Shared``) are not
mailboxes, and a personal mailbox can never be named under them. Pure: no SQL, no IMAP.
Imports nothing of imapd or notify.
"""

from __future__ import annotations

from dataclasses import dataclass

from store.api import DELIMITER
from store.names import canonical

OTHER_USERS = "Other Users"
SHARED = "Shared"
#: The owner name of shared mailboxes: a pseudo-user, so every mailbox has an owner row
#: and UNIQUE (owner_id, name), the joins and the events need no special case. Cyrus
#: writes shared mailboxes' URLs without a user part, which the empty name gives for free.
SHARED_OWNER = ""
#: NAMESPACE (RFC 2342 §5): personal, other users', shared; one prefix each.
PREFIXES: tuple[tuple[str, str], ...] = (
    ("", DELIMITER),
    (OTHER_USERS + DELIMITER, DELIMITER),
    (SHARED + DELIMITER, DELIMITER),
)


@dataclass(frozen=True, slots=True)
class Location:
    """Where a client's name points: ``owner`` (a user name, `SHARED_OWNER` for shared
    mailboxes) and the owner-relative ``name`` (canonical: INBOX upper-cased)."""

    owner: str
    name: str


def resolve(viewer: str, name: str) -> Location | None:
    """The mailbox a client name means for ``viewer``; None when the name is a namespace
    root (or the empty name), which is never a mailbox."""
    name = canonical(name)
    head, sep, rest = name.partition(DELIMITER)
    if head == OTHER_USERS:
        owner, sep2, local = rest.partition(DELIMITER)
        if not sep or not owner or not sep2 or not local:
            return None
        return Location(owner, canonical(local))
    if head == SHARED:
        if not sep or not rest:
            return None
        return Location(SHARED_OWNER, canonical(rest))
    if not name:
        return None
    return Location(viewer, name)


def is_personal(name: str) -> bool:
    """Whether ``name`` is in the personal namespace (no other namespace's prefix)."""
    head = canonical(name).partition(DELIMITER)[0]
    return head not in {OTHER_USERS, SHARED}


def visible_name(viewer: str, owner: str, name: str) -> str:
    """The name ``viewer`` uses for mailbox ``name`` of ``owner`` (inverse of `resolve`)."""
    if owner == viewer:
        return name
    if owner == SHARED_OWNER:
        return SHARED + DELIMITER + name
    return OTHER_USERS + DELIMITER + owner + DELIMITER + name


def roots(viewer: str, owner: str) -> tuple[str, ...]:
    """The namespace roots above ``owner``'s mailboxes as ``viewer`` sees them, outermost
    first: none for the viewer's own, ``("Shared",)``, ``("Other Users", "Other
    Users/alice")``."""
    if owner == viewer:
        return ()
    if owner == SHARED_OWNER:
        return (SHARED,)
    return (OTHER_USERS, OTHER_USERS + DELIMITER + owner)
