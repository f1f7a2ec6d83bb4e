"""Mailbox name rules: validation and canonical form.

Owns: what a valid mailbox name is. Names are Unicode with ``/`` as the hierarchy delimiter
(store.api.DELIMITER); ``INBOX`` is matched case-insensitively as the first level (RFC 3501
§5.1) and always stored as ``INBOX``, so ``inbox/x`` and ``INBOX/x`` are the same name.
Imports nothing of imapd or notify.
"""

from __future__ import annotations

import unicodedata

from store.api import DELIMITER
from store.errors import MailboxInvalid

INBOX = "INBOX"
# Control characters cannot travel in a quoted string, and the LIST wildcards would make
# a name that no pattern can select alone (mox refuses the same set).
_FORBIDDEN = frozenset(chr(c) for c in range(0x20)) | {"\x7f", "%", "*"}
# Net-Unicode (RFC 5198 §2), which RFC 9051 §5.1 asks of every created name ("Server
# implementations MUST prohibit the creation of 8-bit mailbox names that do not comply
# with Net-Unicode"): no C1 controls, and Normalization Form C.
_C1 = frozenset(chr(c) for c in range(0x80, 0xA0))


def canonical(name: str) -> str:
    """The lookup form: one trailing delimiter dropped, INBOX upper-cased. Never raises; an
    invalid name simply does not exist."""
    if name.endswith(DELIMITER):
        name = name[:-1]
    first, sep, rest = name.partition(DELIMITER)
    if first.upper() == INBOX:
        return INBOX + sep + rest
    return name


def validate(name: str) -> str:
    """The canonical form of a name to be created. Raises MailboxInvalid for an empty name,
    an empty level (``a//b``, ``/a``) or a forbidden character."""
    name = canonical(name)
    if not name:
        raise MailboxInvalid("Mailbox name is empty")
    if any(not level for level in name.split(DELIMITER)):
        raise MailboxInvalid("Mailbox name has an empty hierarchy level")
    if any(c in _FORBIDDEN or c in _C1 for c in name):
        raise MailboxInvalid("Mailbox name contains a forbidden character")
    if not unicodedata.is_normalized("NFC", name):
        raise MailboxInvalid("Mailbox name is not in Unicode Normalization Form C")
    return name


def parents(name: str) -> list[str]:
    """Superior names, outermost first: ``a/b/c`` -> ``["a", "a/b"]``."""
    levels = name.split(DELIMITER)
    return [DELIMITER.join(levels[:i]) for i in range(1, len(levels))]


def child_range(name: str) -> tuple[str, str]:
    """(low, high) so that ``low <= n < high`` selects exactly the inferiors of ``name`` by
    the UNIQUE(owner_id, name) index: ``"/"`` is U+002F and ``"0"`` the next code point."""
    return name + DELIMITER, name + "0"
