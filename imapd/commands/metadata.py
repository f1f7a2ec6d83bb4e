"""GETMETADATA and SETMETADATA (RFC 5464): server ("") and mailbox annotations.

Mailbox entries need an existing mailbox (\\Noselect placeholders included, §4.1) with
the ``l`` right and one of ``r s w i p`` (RFC 5464 §3.3 with ACL). ``/private`` entries
belong to the user, ``/shared`` ones to the mailbox (or, for server entries, to every
user). Server entries: ``/shared/admin`` is read-only (§3.2.1.1) and other ``/shared``
server entries are set by administrators only (§3.3 lets servers restrict them: ``NO
[NOPERM]``); ``/private`` server entries by anyone. Limits come from the Config
(`MetadataLimits`); the store checks them in the SETMETADATA transaction, which also commits
its `MetadataChanged` change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imapd.commands.acl import lookup
from imapd.commands.base import Outcome, ok
from imapd.protocol import commands as c
from imapd.protocol.errors import CommandRefused
from imapd.protocol.responses import Atom, Literal8, MailboxName, Untagged, Value
from imapd.protocol.values import SpooledLiteral
from imapd.replies import entry_value
from store.metadata import MetadataLimits, MetadataTooBig, is_private

if TYPE_CHECKING:
    from imapd.commands.context import Context


def limits(session: Context) -> MetadataLimits:
    config = session.config
    return MetadataLimits(
        config.metadata_max_size, config.metadata_max_entries, config.metadata_private
    )


def metadata_value(value: bytes | None) -> Value:
    """value = nstring / literal8 (RFC 5464 §5): text as a string, other octets as a literal,
    octets with NUL as a literal8 (RFC 3516)."""
    if value is None:
        return None
    if b"\x00" in value:
        return Literal8(value)
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


def metadata_response(mailbox: str, pairs: list[tuple[str, Value]]) -> Untagged:
    """``* METADATA mailbox (entry value ...)`` (RFC 5464 §4.4.1)."""
    values: list[Value] = []
    for entry, value in pairs:
        values += [entry_value(entry), value]
    return Untagged((Atom("METADATA"), MailboxName(mailbox), tuple(values)))


async def _require_annotatable(session: Context, mailbox: str) -> None:
    """RFC 5464 §3.3 with ACL: ``l`` and one of ``r s w i p`` on the mailbox."""
    info = await lookup(session, mailbox, "l")
    if not any(r in info.rights for r in "rswip"):
        raise CommandRefused("Permission denied", "NOPERM")


async def handle_getmetadata(session: Context, cmd: c.GetMetadata) -> Outcome:
    """GETMETADATA [(MAXSIZE n DEPTH 0|1|infinity)] mailbox entries (RFC 5464 §4.2).

    ``C: a GETMETADATA "" /shared/comment`` -> ``* METADATA "" (/shared/comment "x")``. A
    requested entry without value comes back NIL (as Dovecot and Cyrus answer); values over
    MAXSIZE are left out and the largest one's size is given as ``[METADATA LONGENTRIES n]``
    (§4.2.1). Example transcripts: tests/transcripts/metadata_*.imap."""
    user = session.require_user()
    if cmd.mailbox:
        await _require_annotatable(session, cmd.mailbox)
    found = await session.store.get_metadata(
        user.id, cmd.mailbox or None, cmd.entries, depth=cmd.depth
    )
    pairs: list[tuple[str, Value]] = []
    longest = 0
    for entry, value in found:
        if value is not None and cmd.maxsize is not None and len(value) > cmd.maxsize:
            longest = max(longest, len(value))
            continue
        pairs.append((entry, metadata_value(value)))
    code = f"METADATA LONGENTRIES {longest}" if longest else None
    responses = [metadata_response(cmd.mailbox, pairs)] if pairs else []
    return ok("GETMETADATA completed", code, *responses)


def _unspooled(session: Context, value: bytes | SpooledLiteral | None) -> bytes | None:
    """A value the session spooled (a big literal): over the limit, MAXSIZE (RFC 5464 §4.3)
    without reading it; else its octets."""
    if not isinstance(value, SpooledLiteral):
        return value
    max_size = session.config.metadata_max_size
    if value.size > max_size:
        raise MetadataTooBig("Value too large", max_size)
    return session.spooled(value).read_bytes()


async def handle_setmetadata(session: Context, cmd: c.SetMetadata) -> Outcome:
    """SETMETADATA mailbox (entry value ...) (RFC 5464 §4.3); NIL removes an entry.

    All or nothing: ``NO [METADATA MAXSIZE n]``, ``[METADATA TOOMANY]``, ``[METADATA
    NOPRIVATE]`` set nothing. No METADATA response is sent (§4.3 SHOULD NOT)."""
    user = session.require_user()
    if cmd.mailbox:
        await _require_annotatable(session, cmd.mailbox)
    else:
        for entry, _ in cmd.entries:
            if entry == "/shared/admin":
                raise CommandRefused("/shared/admin is read-only", "NOPERM")
            if not is_private(entry) and not user.is_admin:
                raise CommandRefused("Shared server annotations are set by admins", "NOPERM")
    entries = [(entry, _unspooled(session, value)) for entry, value in cmd.entries]
    await session.store.set_metadata(
        user.id, cmd.mailbox or None, entries, session.origin, limits(session)
    )
    return ok("SETMETADATA completed")
