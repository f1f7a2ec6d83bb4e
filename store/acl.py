"""Access control lists (RFC 4314): the rights model, pure.

Owns: the rights letters, parsing a SETACL rights argument with its ``+``/``-`` modifier,
applying it to an ACL entry, the obsolete ``c``/``d`` rights (RFC 4314 §2.1.1), and a user's
effective rights on a mailbox. No SQL (store/sqlite/store.py keeps the ``acl`` table), no IMAP.
Imports nothing of imapd or notify.

Rules chosen here (RFC 4314 §2 leaves them to the implementation):
- Rights are independent (none tied); ``c`` means ``kx`` and ``d`` means ``et`` (the
  first reading of §2.1.1, that of its SETACL example), and responses add ``c``/``d``
  whenever one of their members is present.
- The owner of a mailbox always has every right (`ALL`), whatever its ACL says, and the
  owner's entry cannot be changed. Shared mailboxes (owner `namespace.SHARED_OWNER`) belong
  to the admins: an admin has every right on them. On any other mailbox an admin has the
  ``a`` right (to administer its ACL), as Cyrus's admins do.
- Everyone else: the union of the rights of the user's identifier and of ``anyone``, minus
  the union of the negative rights of ``-user`` and ``-anyone`` (§2: negative rights).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from store.errors import MailboxNotFound, NoPermission
from store.namespace import SHARED_OWNER

#: RFC 4314 §2.1, in the order responses list them.
RIGHTS = "lrswipkxtea"
ALL = RIGHTS
#: The obsolete virtual rights (RFC 4314 §2.1.1) and what they stand for.
VIRTUAL: dict[str, str] = {"c": "kx", "d": "et"}
ANYONE = "anyone"
#: RIGHTS= capability (§5.1.1): the rights beyond RFC 2086's.
CAPABILITY_RIGHTS = "texk"


class InvalidRights(ValueError):
    """A rights string with a letter we do not know (RFC 4314 §3.1: BAD)."""


@dataclass(frozen=True, slots=True)
class Modification:
    """A SETACL rights argument: ``mode`` "+" (add), "-" (remove) or "" (replace), and the
    rights, canonical (virtual rights expanded)."""

    mode: str
    rights: str

    def __str__(self) -> str:
        return self.mode + self.rights


def canonical(letters: str) -> str:
    """Known rights in `RIGHTS` order, each once; ``c``/``d`` expanded. Raises
    InvalidRights for any other character (uppercase and digits included)."""
    wanted: set[str] = set()
    for ch in letters:
        if ch in VIRTUAL:
            wanted.update(VIRTUAL[ch])
        elif ch in RIGHTS:
            wanted.add(ch)
        else:
            raise InvalidRights(f"The {ch!r} right is not supported")
    return "".join(r for r in RIGHTS if r in wanted)


def parse_modification(text: str) -> Modification:
    """``[+|-]rights`` (RFC 4314 §3.1). Raises InvalidRights."""
    mode = text[:1] if text[:1] in {"+", "-"} else ""
    return Modification(mode, canonical(text[len(mode) :]))


def apply(old: str, change: Modification) -> str:
    """The entry's rights after ``change``."""
    if change.mode == "+":
        return canonical(old + change.rights)
    if change.mode == "-":
        return "".join(r for r in old if r not in change.rights)
    return change.rights


def with_virtual(rights: str) -> str:
    """Rights as ACL, MYRIGHTS and LISTRIGHTS responses give them: ``c`` when ``k`` or
    ``x`` is there, ``d`` when ``e`` or ``t`` is (RFC 4314 §2.1.1 MUST)."""
    out = rights
    for virtual, members in VIRTUAL.items():
        if any(m in rights for m in members):
            out += virtual
    return out


def is_valid_identifier(identifier: str) -> bool:
    """Non-empty, not just a dash, no control characters (RFC 4314 §3: else BAD)."""
    bare = identifier.removeprefix("-")
    return bool(bare) and all(ch.isprintable() for ch in identifier)


def effective(user: str, owner: str, entries: Mapping[str, str], *, is_admin: bool = False) -> str:
    """``user``'s rights on a mailbox of ``owner`` whose ACL is ``entries`` (identifier ->
    rights; ``-id`` entries are negative rights). See the module docstring for the rules."""
    if user == owner or (is_admin and owner == SHARED_OWNER):
        return ALL
    granted = entries.get(user, "") + entries.get(ANYONE, "")
    denied = entries.get("-" + user, "") + entries.get("-" + ANYONE, "")
    rights = {r for r in granted if r not in denied}
    if is_admin:
        rights.add("a")
    return "".join(r for r in RIGHTS if r in rights)


def require(rights: str, need: str) -> None:
    """Refuse unless ``rights`` hold every right in ``need`` (RFC 4314 §4): NoPermission
    when the mailbox is visible (``l`` or ``r``), else MailboxNotFound with the text a
    missing mailbox gets, so that the refusal confirms no name (§6)."""
    if all(r in rights for r in need):
        return
    if "l" not in rights and "r" not in rights:
        raise MailboxNotFound("Mailbox does not exist")
    raise NoPermission("Permission denied")


def flag_right(flag: str) -> str:
    """The right a flag needs (RFC 4314 §4): ``s`` for \\Seen, ``t`` for \\Deleted, ``w``
    for every other flag and keyword."""
    low = flag.lower()
    if low == "\\seen":
        return "s"
    if low == "\\deleted":
        return "t"
    return "w"


def settable(flags: Iterable[str], rights: str) -> tuple[str, ...]:
    """The flags among ``flags`` that ``rights`` let a user set or clear."""
    return tuple(f for f in flags if flag_right(f) in rights)


def listrights(identifier: str, owner: str) -> tuple[str, tuple[str, ...]]:
    """LISTRIGHTS (RFC 4314 §3.7): the rights always granted to ``identifier`` and those
    that may be granted, each alone (nothing is tied; ``c`` and ``d`` listed alone too)."""
    if identifier == owner:
        return with_virtual(ALL), ()
    return "", (*RIGHTS, *VIRTUAL)
