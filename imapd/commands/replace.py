"""REPLACE and UID REPLACE (RFC 8508): append a message to a mailbox and expunge one from the
selected mailbox as one action, in one store transaction (`Store.replace`).

Rights (RFC 8508 §4.1, RFC 4314 §4): ``t`` and ``e`` on the selected mailbox (STORE
\\Deleted + EXPUNGE), ``i`` on the target, checked again by the store inside its write
transaction. The APPENDUID goes in an untagged OK before the EXPUNGE (or VANISHED) the
session's own change brings (RFC 8508 §4.3); with CONDSTORE the tagged OK carries the
source's HIGHESTMODSEQ as UID EXPUNGE's does (RFC 8508 §4.5, RFC 7162 §3.2.9).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imapd.commands import catenate
from imapd.commands.acl import lookup
from imapd.commands.base import Outcome, ok
from imapd.commands.message import (
    _require_rights,
    _require_writable,
    _told_highestmodseq,
    check_keyword_limit,
)
from imapd.protocol import commands as c
from imapd.protocol.errors import BadCommand, CommandRefused
from imapd.protocol.responses import UntaggedStatus
from imapd.protocol.values import SequenceSet
from store.acl import settable
from store.api import NewMessage
from store.errors import MailboxNotFound
from store.newmessage import octets

if TYPE_CHECKING:
    from imapd.commands.context import Context


async def handle_replace(session: Context, cmd: c.Replace) -> Outcome:
    """[UID] REPLACE seq-number mailbox [flags] [date-time] literal (RFC 8508 §3)."""
    view = session.require_view()
    session.require_user()
    _require_writable(view)
    _require_rights(session, "te")  # RFC 8508 §4.1: UID STORE \Deleted + UID EXPUNGE
    uids = view.resolve(SequenceSet(((cmd.number, cmd.number),)), uid=cmd.uid)
    if not uids:  # a UID that names no message (a message number too big is BAD above)
        raise CommandRefused("No such message to replace", "NONEXISTENT")
    uid = uids[0]
    if view.is_gone(uid):  # RFC 8508 §3.4: NO, "can't remove specified message"
        raise CommandRefused("The message to replace has been expunged", "EXPUNGEISSUED")
    # CATENATE (RFC 8508 §4.2, imapd/commands/catenate.py): the message's octets first.
    async with catenate.assembled(session, (cmd.message,)) as (content,):
        return await _replace(session, cmd, uid, content)


async def _replace(session: Context, cmd: c.Replace, uid: int, content: bytes | Path) -> Outcome:
    view = session.require_view()
    user = session.require_user()
    m = cmd.message
    size = octets(content)
    if not size:
        raise BadCommand("Empty message")
    limit = session.config.limits.max_literal_size
    if size > limit:  # the framer refuses a synchronizing one first, as for APPEND
        raise CommandRefused(f"Message larger than APPENDLIMIT {limit}", "TOOBIG")
    target = await lookup(session, cmd.mailbox, "i", target=True)
    message = NewMessage(content, settable(m.flags, target.rights), m.date)
    added = [f for f in message.flags if not f.startswith("\\")]
    if added:
        known = (
            view.keywords
            if view.mailbox_id == target.id
            else await session.store.mailbox_keywords(target.id)
        )
        check_keyword_limit(session, known, added)
    try:
        result = await session.store.replace(
            view.mailbox_id, uid, user.id, target.id, message, session.origin, need="i"
        )
    except MailboxNotFound as exc:
        raise CommandRefused(exc.text, "TRYCREATE") from exc
    code = f"APPENDUID {result.mailbox.uidvalidity} {SequenceSet.from_values(result.uids)}"
    told = f"HIGHESTMODSEQ {_told_highestmodseq(session, view)}" if view.condstore else None
    return ok("REPLACE completed", told, UntaggedStatus("OK", "Replacement Message ready", code))
