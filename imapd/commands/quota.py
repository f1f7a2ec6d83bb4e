"""GETQUOTA, GETQUOTAROOT and SETQUOTA (RFC 9208): the QUOTA, QUOTA=RES-STORAGE,
QUOTA=RES-MESSAGE and QUOTASET capabilities.

Every user has one quota root named by the user's name (``* QUOTAROOT INBOX alice``) that
covers all their mailboxes; its limits are STORAGE (KiB) and MESSAGE. A user reads their own
root; admins read and set any user's root (SETQUOTA by anyone else: ``NO [NOPERM]``). Another
user's root answers ``NO [NONEXISTENT]`` to a non-admin, exactly as a root that does not
exist, so GETQUOTA does not tell who has an account (RFC 9208 §6 counts usage as
confidential). The rules (usage, enforcement, events) live in store/quota.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imapd.commands.acl import lookup
from imapd.commands.base import Outcome, ok
from imapd.protocol import commands as c
from imapd.protocol.errors import CommandRefused
from imapd.protocol.responses import Atom, MailboxName, Untagged, Value
from store import namespace
from store.quota import Limits, QuotaInfo

if TYPE_CHECKING:
    from imapd.commands.context import Context

#: RFC 9208 §5: the resources we count and limit, in the order QUOTA responses list them.
RESOURCES = ("STORAGE", "MESSAGE")


def quota_response(info: QuotaInfo) -> Untagged:
    """``* QUOTA root (STORAGE used limit MESSAGE used limit)`` (RFC 9208 §4.2.1): only
    limited resources are listed, so a root without limits is ``()``."""
    items: list[Value] = []
    for name, used, limit in info.resources():
        items += [Atom(name), used, limit]
    return Untagged((Atom("QUOTA"), info.root.name, tuple(items)))


def _refuse_foreign(session: Context, info: QuotaInfo) -> None:
    user = session.require_user()
    if not user.is_admin and info.root.owner != user.name:
        raise CommandRefused("No such quota root", "NONEXISTENT")


async def handle_getquota(session: Context, cmd: c.GetQuota) -> Outcome:
    """GETQUOTA quota-root (RFC 9208 §4.1.1).

    ``C: a GETQUOTA alice`` -> ``* QUOTA "alice" (STORAGE 10 512)``. Example transcripts:
    tests/transcripts/quota_*.imap."""
    session.require_user()
    info = await session.store.get_quota(cmd.root)
    _refuse_foreign(session, info)
    return ok("GETQUOTA completed", None, quota_response(info))


async def handle_getquotaroot(session: Context, cmd: c.GetQuotaRoot) -> Outcome:
    """GETQUOTAROOT mailbox (RFC 9208 §4.1.2); the mailbox need not exist.

    ``C: a GETQUOTAROOT INBOX`` -> ``* QUOTAROOT INBOX "alice"``, ``* QUOTA "alice" (...)``.
    Another user's or a shared mailbox (store/namespace.py names) is in its owner's root,
    shown to whoever has the "r" right on that mailbox."""
    user = session.require_user()
    where = namespace.resolve(user.name, cmd.mailbox)
    if where is None:  # a namespace root is no mailbox and has no quota root
        return ok(
            "GETQUOTAROOT completed", None, Untagged((Atom("QUOTAROOT"), MailboxName(cmd.mailbox)))
        )
    if where.owner == user.name:
        owner = user
    else:
        # RFC 9208 §4.1.2: another user's or a shared mailbox's root is shown to whoever
        # may read the mailbox; without l or r the answer is that of a missing mailbox.
        if not user.is_admin:
            await lookup(session, cmd.mailbox, "r")
        owner = await session.store.get_user(where.owner)
    info = await session.store.get_quota_root(owner.id, where.name)
    return ok(
        "GETQUOTAROOT completed",
        None,
        Untagged((Atom("QUOTAROOT"), MailboxName(cmd.mailbox), info.root.name)),
        quota_response(info),
    )


async def handle_setquota(session: Context, cmd: c.SetQuota) -> Outcome:
    """SETQUOTA quota-root (resource limit ...) (RFC 9208 §4.1.3): admins only.

    ``C: a SETQUOTA alice (STORAGE 512)`` -> ``* QUOTA "alice" (STORAGE 10 512)``; a
    resource not named loses its limit (``()`` removes both). MAILBOX and
    ANNOTATION-STORAGE are not supported: ``NO [CANNOT]``, nothing changed."""
    user = session.require_user()
    if not user.is_admin:
        raise CommandRefused("Only administrators may set quotas", "NOPERM")
    given = dict(cmd.limits)
    for name in given:
        if name not in RESOURCES:
            raise CommandRefused(f"Resource {name} cannot be limited here", "CANNOT")
    limits = Limits(storage=given.get("STORAGE"), messages=given.get("MESSAGE"))
    info = await session.store.set_quota(cmd.root, limits, session.origin)
    return ok("SETQUOTA completed", None, quota_response(info))
