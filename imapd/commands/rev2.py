"""The handler side of IMAP4rev2 (RFC 9051) and UIDONLY (RFC 9586); what they advertise is
in imapd/rev2.py, the pure rules in imapd/protocol/uidonly.py.

- `rev2_list_response`: the untagged LIST that SELECT/EXAMINE owe an IMAP4rev2 client
  (RFC 9051 §6.3.2: "The server MUST return a LIST response with the mailbox name. The
  list of mailbox attributes MUST be accurate.").
- `uidonly_guard`: the ``BAD [UIDREQUIRED]`` of RFC 9586 §3, before the handler runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from imapd.commands.acl import listable
from imapd.commands.mailbox import mailbox_attributes
from imapd.protocol.errors import BadCommand
from imapd.protocol.uidonly import UIDREQUIRED, message_numbers
from imapd.replies import list_response
from store.api import DELIMITER, MailboxInfo

if TYPE_CHECKING:
    from imapd.commands.base import Outcome
    from imapd.commands.context import Context
    from imapd.protocol.responses import Untagged

S = TypeVar("S")


async def rev2_list_response(session: Context, info: MailboxInfo) -> Untagged:
    """``* LIST (attrs) "/" name`` for the mailbox being selected, with the attributes a
    plain LIST gives it here: its special uses (RFC 9051 §7.3.1) and \\HasChildren or
    \\HasNoChildren (§6.3.9.5), counting only children the user may see (RFC 4314 §4)."""
    prefix = info.name + DELIMITER
    mailboxes = listable(await session.store.list_mailboxes(session.require_user().id))
    children = any(m.name.startswith(prefix) for m in mailboxes)
    return list_response(mailbox_attributes(info, children=children), info.name)


def uidonly_guard(
    handler: Callable[[S, Any], Awaitable[Outcome]],
) -> Callable[[S, Any], Awaitable[Outcome]]:
    """``handler``, refusing first what names messages by number (RFC 9586 §3: "the
    server MUST return a tagged BAD response if the client uses message sequence numbers.
    The server MUST include the UIDREQUIRED response code in such BAD responses")."""

    async def guarded(session: S, cmd: Any) -> Outcome:
        why = message_numbers(cmd)
        if why is not None:
            raise BadCommand(why, UIDREQUIRED)
        return await handler(session, cmd)

    return guarded
