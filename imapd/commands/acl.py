"""Access control (RFC 4314): SETACL, DELETEACL, GETACL, LISTRIGHTS, MYRIGHTS, and the
rights checks every other handler makes through `require` and `lookup`.

The rule that keeps names secret (RFC 4314 §4 and §6): a user who lacks the right a command
needs gets ``NO [NOPERM]`` only when the mailbox is visible to them (they have ``l`` or
``r`` on it); otherwise the very answer a missing mailbox gets (``NO [NONEXISTENT] Mailbox
does not exist``, ``[TRYCREATE]`` as an APPEND/COPY/MOVE target). The rights model itself
(letters, modifiers, effective rights) is store/acl.py; the namespaces store/namespace.py.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from imapd.commands.base import Outcome, ok
from imapd.protocol import commands as c
from imapd.protocol.errors import BadCommand, CommandRefused
from imapd.protocol.responses import Atom, MailboxName, Untagged, Value
from store import acl
from store.api import DELIMITER, MailboxInfo
from store.errors import MailboxNotFound
from store.namespace import OTHER_USERS, SHARED, SHARED_OWNER, resolve

if TYPE_CHECKING:
    from imapd.commands.context import Context

NOT_FOUND = "Mailbox does not exist"  # the store's text: a hidden mailbox answers the same


def hidden(rights: str) -> bool:
    """A mailbox the user may not know of: neither ``l`` nor ``r`` (RFC 4314 §4)."""
    return "l" not in rights and "r" not in rights


def require(info: MailboxInfo, needed: str, *, target: bool = False) -> None:
    """Refuse unless the user has every right in ``needed`` on ``info``: NOPERM when the
    mailbox is visible to them, else exactly what a missing mailbox gets."""
    if all(r in info.rights for r in needed):
        return
    if hidden(info.rights):
        if target:
            raise CommandRefused(NOT_FOUND, "TRYCREATE")
        raise MailboxNotFound(NOT_FOUND)
    raise CommandRefused("Permission denied", "NOPERM")


async def lookup(session: Context, name: str, needed: str, *, target: bool = False) -> MailboxInfo:
    """The mailbox ``name`` as the session's user sees it, once `require` passed.
    ``target``: an APPEND/COPY/MOVE destination, whose absence says [TRYCREATE]."""
    user = session.require_user()
    try:
        info = await session.store.get_mailbox(user.id, name)
    except MailboxNotFound as exc:
        if target:
            raise CommandRefused(exc.text, "TRYCREATE") from exc
        raise
    require(info, needed, target=target)
    return info


async def require_parent(session: Context, name: str, needed: str) -> None:
    """RFC 4314 §4 CREATE / RENAME target: ``needed`` (``k``) on the nearest existing
    parent of ``name``. At the top of a namespace: the user's own namespace is theirs;
    ``Shared/`` belongs to admins; nobody creates at the top of another user's namespace.
    Every refusal is NOPERM, whether the parent exists or not, so nothing is learnt."""
    user = session.require_user()
    levels = name.rstrip(DELIMITER).split(DELIMITER)
    for i in range(len(levels) - 1, 0, -1):
        parent = DELIMITER.join(levels[:i])
        if resolve(user.name, parent) is None:
            break  # a namespace root: no mailbox above
        try:
            info = await session.store.get_mailbox(user.id, parent)
        except MailboxNotFound:
            continue
        if not all(r in info.rights for r in needed):
            raise CommandRefused("Permission denied", "NOPERM")
        return
    where = resolve(user.name, name)
    if where is None:
        raise CommandRefused("A namespace prefix is not a mailbox", "CANNOT")
    if where.owner == user.name:
        return
    # Read afresh: `imapd user admin` applies to sessions already logged in.
    if where.owner == SHARED_OWNER and (await session.store.get_user(user.name)).is_admin:
        return
    raise CommandRefused("Permission denied", "NOPERM")


def listable(mailboxes: list[MailboxInfo]) -> list[MailboxInfo]:
    """What LIST and LSUB may show (RFC 4314 §4): the mailboxes with ``l``, and, as
    \\Noselect placeholders, the namespace roots above those of other namespaces."""
    shown = [m for m in mailboxes if "l" in m.rights]
    return shown + [
        MailboxInfo(
            id=0,
            owner_id=0,
            owner="",
            name=root,
            uidvalidity=0,
            uidnext=0,
            highestmodseq=0,
            messages=0,
            unseen=0,
            recent=0,
            size=0,
            selectable=False,
            rights="",
        )
        for root in roots([m.name for m in shown])
    ]


def roots(names: list[str]) -> list[str]:
    """The namespace roots above visible names of other namespaces (``Other Users``,
    ``Other Users/alice``, ``Shared``), for LIST to show as \\Noselect: only the roots of
    mailboxes the user may list, so they reveal nothing else."""
    out: set[str] = set()
    for name in names:
        head, _, rest = name.partition(DELIMITER)
        if head == SHARED:
            out.add(SHARED)
        elif head == OTHER_USERS:
            out.update({OTHER_USERS, OTHER_USERS + DELIMITER + rest.partition(DELIMITER)[0]})
    return sorted(out)


_ATOM = re.compile(r'[^\x00-\x20\x7f-\uffff(){%*"\\\]]+')


def word(text: str) -> Value:
    """An identifier or rights string: an atom when it can be one (as the RFC 4314
    examples write them: ``* ACL INBOX Fred rwipslxetad``), else a string."""
    return Atom(text) if _ATOM.fullmatch(text) else text


def _check_identifier(identifier: str) -> None:
    if not acl.is_valid_identifier(identifier):
        raise BadCommand("Invalid identifier")  # RFC 4314 §3: BAD


# --- SETACL / DELETEACL ---------------------------------------------------------------------
async def handle_setacl(session: Context, cmd: c.SetAcl) -> Outcome:
    """SETACL mailbox identifier [+|-]rights (RFC 4314 §3.1): needs ``a``. An unknown right
    is BAD (``SETACL f bob lrQ`` -> BAD); ``c`` and ``d`` stand for ``kx`` and ``et``. The
    owner's rights are fixed: ``NO [CANNOT]``. Commits an AclChanged (event AclChange with
    ``aclRights`` as given, modifier kept). Example: RFC 4314 §3.1; acl_*.imap."""
    user = session.require_user()
    _check_identifier(cmd.identifier)
    try:
        change = acl.parse_modification(cmd.rights)
    except acl.InvalidRights as exc:
        raise BadCommand(str(exc)) from None
    await lookup(session, cmd.mailbox, "a")
    await session.store.set_acl(user.id, cmd.mailbox, cmd.identifier, change, session.origin)
    return ok("SETACL completed")


async def handle_deleteacl(session: Context, cmd: c.DeleteAcl) -> Outcome:
    """DELETEACL mailbox identifier (RFC 4314 §3.2): needs ``a``; removes the entry (a
    ``-id`` entry is another one). The AclChange event has no ``aclRights``."""
    user = session.require_user()
    _check_identifier(cmd.identifier)
    await lookup(session, cmd.mailbox, "a")
    await session.store.set_acl(user.id, cmd.mailbox, cmd.identifier, None, session.origin)
    return ok("DELETEACL completed")


# --- GETACL / LISTRIGHTS / MYRIGHTS ----------------------------------------------------------
async def handle_getacl(session: Context, cmd: c.GetAcl) -> Outcome:
    """GETACL mailbox (RFC 4314 §3.3): needs ``a``. ``* ACL INBOX alice lrswipkxteacd bob
    lr``: the owner's implicit entry first (shared mailboxes have none), then the stored
    ones by identifier; ``c``/``d`` added where their members are (§2.1.1)."""
    info = await lookup(session, cmd.mailbox, "a")
    pairs: list[Value] = []
    if info.owner != SHARED_OWNER:
        pairs += [word(info.owner), word(acl.with_virtual(acl.ALL))]
    for identifier, rights in await session.store.acl_entries(info.id):
        pairs += [word(identifier), word(acl.with_virtual(rights))]
    return ok("GETACL completed", None, Untagged((Atom("ACL"), MailboxName(info.name), *pairs)))


async def handle_listrights(session: Context, cmd: c.ListRights) -> Outcome:
    """LISTRIGHTS mailbox identifier (RFC 4314 §3.4): needs ``a``. Nothing is tied: the
    owner always has everything (``* LISTRIGHTS INBOX alice lrswipkxteacd``), anyone else
    nothing for sure and each right alone (``"" l r s w i p k x t e a c d``)."""
    _check_identifier(cmd.identifier)
    info = await lookup(session, cmd.mailbox, "a")
    required, optional = acl.listrights(cmd.identifier, info.owner)
    return ok(
        "LISTRIGHTS completed",
        None,
        Untagged(
            (
                Atom("LISTRIGHTS"),
                MailboxName(info.name),
                word(cmd.identifier),
                word(required),
                *(Atom(r) for r in optional),
            )
        ),
    )


async def handle_myrights(session: Context, cmd: c.MyRights) -> Outcome:
    """MYRIGHTS mailbox (RFC 4314 §3.5): any of ``l r i k x a`` is enough to ask
    (§4); without one the mailbox does not exist for the user."""
    user = session.require_user()
    info = await session.store.get_mailbox(user.id, cmd.mailbox)
    if not any(r in info.rights for r in "lrikxa"):
        raise MailboxNotFound(NOT_FOUND)
    return ok("MYRIGHTS completed", None, myrights_response(info))


def myrights_response(info: MailboxInfo) -> Untagged:
    """``* MYRIGHTS name rights`` (RFC 4314 §3.8), for MYRIGHTS and LIST RETURN (MYRIGHTS)
    (RFC 8440 §3)."""
    return Untagged((Atom("MYRIGHTS"), MailboxName(info.name), word(acl.with_virtual(info.rights))))
