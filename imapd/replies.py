"""Untagged responses that commands and the session's NOTIFY delivery both send.

A neutral home: the handlers (imapd/commands/) and the listening side of the session
(imapd/listening.py, imapd/rfc5465.py) import these builders from here, so the session
never imports a handler module for a response's shape. Pure: values in, `Untagged` out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from imapd.protocol.responses import Atom, MailboxName, Untagged, Value
from store.api import DELIMITER

# ATOM-CHAR (RFC 3501 §9): metadata entry names made of these go out as atoms, as in
# RFC 5464's examples; any other (already validated) name as a string.
_ATOM = re.compile(r'[^\x00-\x20\x7f-\uffff(){%*"\\\]]+')


def list_response(
    attrs: Iterable[str],
    name: str,
    extended: Sequence[tuple[str, Value]] = (),
    *,
    kind: str = "LIST",
) -> Untagged:
    """One ``* LIST (attrs) "/" name [(tag value ...)]`` response (RFC 5258 §6 mailbox-list):
    ``extended`` holds the extended data items as (tag, value) pairs, e.g. ``("CHILDINFO",
    ("SUBSCRIBED",))``; tags go out quoted, as the RFC examples write them. NOTIFY renders
    its MailboxName events with it (RFC 5465 §5.4). ``kind`` "LSUB" for LSUB."""
    items: tuple[Value, ...] = (
        Atom(kind), tuple(Atom(a) for a in attrs), DELIMITER, MailboxName(name),
    )  # fmt: skip
    if extended:
        data: list[Value] = []
        for tag, value in extended:
            data += [tag, value]
        items = (*items, tuple(data))
    return Untagged(items)


def oldname_response(new: str, old: str, attrs: Iterable[str] = ()) -> Untagged:
    """The LIST response announcing a RENAME (RFC 5465 §5.4, OLDNAME extended item):
    ``* LIST () "/" "NewMailbox" ("OLDNAME" ("OldMailbox"))``."""
    return list_response(attrs, new, (("OLDNAME", (MailboxName(old),)),))


def entry_value(entry: str) -> Value:
    """A metadata entry name (RFC 5464 §5): an atom when it can be one, else a string."""
    return Atom(entry) if _ATOM.fullmatch(entry) else entry
