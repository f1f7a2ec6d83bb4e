"""What an IMAP URL names, read as a given user may read it now (RFC 4469 §3, RFC 4467 §7).

Owns: `url_part`, shared by CATENATE (imapd/commands/catenate.py) and URLFETCH
(imapd/commands/urlauth.py): the octets of a message or message part, "as if the literal
returned in a FETCH BODY response" (RFC 4469 §3), with the user's current rights (``r`` on
the mailbox, RFC 4314 §4), never setting \\Seen. None for anything that names no such data:
no message URL, no such mailbox or message, UIDVALIDITY changed, no such part, no right.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imapd.protocol.imapurl import ImapUrl
from store.errors import MailboxInvalid, MailboxNotFound
from store.mime import section_bytes

if TYPE_CHECKING:
    from imapd.commands.context import Context
    from store.api import MailboxInfo, MessageRecord, User


async def readable_mailbox(session: Context, url: ImapUrl, owner: User) -> MailboxInfo | None:
    """The mailbox of message URL ``url`` if ``owner`` may read it now (``r``) and its
    UIDVALIDITY, when given, still holds; None otherwise."""
    if not url.is_message or url.mailbox is None:
        return None
    try:
        info = await session.store.get_mailbox(owner.id, url.mailbox)
    except (MailboxNotFound, MailboxInvalid):
        return None
    if "r" not in info.rights or not info.selectable:
        return None
    if url.uidvalidity is not None and url.uidvalidity != info.uidvalidity:
        return None
    return info


async def url_message(
    session: Context, url: ImapUrl, owner: User
) -> tuple[MailboxInfo, MessageRecord] | None:
    """The mailbox and message (content and structure) ``url`` names, if ``owner`` may read
    it; None otherwise."""
    info = await readable_mailbox(session, url, owner)
    if info is None or url.uid is None:
        return None
    records = await session.store.fetch(info.id, [url.uid], content=True, structure=True)
    if not records or records[0].content is None:
        return None
    return info, records[0]


def record_part(url: ImapUrl, record: MessageRecord) -> bytes | None:
    """``url``'s section and partial of ``record`` (BODY[section]<partial>)."""
    assert record.content is not None
    spec = url.section_spec
    if not spec.part and spec.text is None:
        data: bytes | None = record.content
    else:
        assert record.structure is not None
        data = section_bytes(record.content, record.structure, spec.part, spec.text, spec.fields)
    if data is None:
        return None
    if url.partial is not None:
        origin, length = url.partial
        data = data[origin:] if length is None else data[origin : origin + length]
    return data


async def url_part(session: Context, url: ImapUrl, owner: User) -> bytes | None:
    """The octets ``url`` names as ``owner`` may read them now, or None."""
    found = await url_message(session, url, owner)
    return None if found is None else record_part(url, found[1])
