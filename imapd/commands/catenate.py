"""CATENATE (RFC 4469): APPEND and REPLACE messages made of TEXT literals and IMAP URLs.

Owns: `assembled`, which turns each message of an APPEND (with MULTIAPPEND) or REPLACE
(RFC 8508 §4.2) into octets the store takes: a plain message as it came (its spooled literal's
file), a CATENATE message built part by part. Built octets stay in memory until they reach
``literal_spool_size``, then go to a file in the spool directory (imapd/spool.py), removed
when the command is over, whatever became of it. A message built past APPENDLIMIT is
refused with ``NO [TOOBIG]`` as soon as it gets there (RFC 4469 §4.2); the octets read from
the store to build one command are bounded by ``max_literal_total`` (``NO [LIMIT]``), so a
thousand URLs into one big message cannot cost a thousand reads of it.

URLs (RFC 4469 §3, RFC 5092): relative to ``imap://user@servername/`` (or, in the selected
state, to the selected mailbox), read with the user's current rights (``r``); an absolute URL
naming this server and user is the same; one carrying a URLAUTH (RFC 4467) is verified as
URLFETCH verifies it and read with its owner's rights. Any URL that names nothing we can
read fails the whole command with ``NO [BADURL url]`` naming the first such URL (RFC 4469
§4.1). The octets are copied unchanged and \\Seen is not set (RFC 4469 §3). TEXT parts
follow ``literal``: no NUL unless sent as a literal8 (RFC 3516's ``~{n}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from imapd import spool
from imapd.commands.urlauth import authorized, names_this_server
from imapd.commands.urlparts import readable_mailbox, record_part
from imapd.protocol import commands as c
from imapd.protocol import imapurl
from imapd.protocol.errors import BadCommand, CommandRefused
from imapd.protocol.values import SpooledLiteral

if TYPE_CHECKING:
    from imapd.commands.context import Context
    from store.api import MailboxInfo, MessageRecord, User

_CHUNK = 64 * 1024
#: URL parts at least this big are written to the message from a worker thread.
_OFF_LOOP = 1 << 20
#: url-resp-text = 1*(%x01-09 / %x0B-0C / %x0E-5B / %x5D-FE)  ; TEXT-CHAR except "]"
_NOT_RESP_TEXT = re.compile(r"[^\x01-\x09\x0b\x0c\x0e-\x5c\x5e-\x7e]")


def badurl(text: str) -> CommandRefused:
    """``NO [BADURL url]`` (RFC 4469 §4.1); what url-resp-text cannot hold is %-escaped."""
    shown = _NOT_RESP_TEXT.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), text)
    return CommandRefused("CATENATE cannot use this URL", f"BADURL {shown}")


class _Builder:
    """One message's octets, in memory, then in a spool file past ``spool_at``."""

    def __init__(self, session: Context, files: list[tuple[Path, BinaryIO]]) -> None:
        limits = session.config.limits
        self.limit = limits.max_literal_size
        self.spool_at = limits.literal_spool_size
        self.directory = session.config.data_dir / spool.SPOOL_DIR
        self.files = files
        self.memory = bytearray()
        self.file: BinaryIO | None = None
        self.path: Path | None = None
        self.size = 0

    def add(self, data: bytes | memoryview) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise CommandRefused(f"Message larger than APPENDLIMIT {self.limit}", "TOOBIG")
        if self.file is None and self.size >= self.spool_at:
            self.path, self.file = spool.create_file(self.directory)
            self.files.append((self.path, self.file))
            self.file.write(self.memory)
            self.memory = bytearray()
        if self.file is not None:
            self.file.write(data)
        else:
            self.memory += data

    def result(self) -> bytes | Path:
        if self.file is not None and self.path is not None:
            self.file.close()  # flushed: the store reads it by path
            return self.path
        return bytes(self.memory)


class _Reader:
    """The URL parts of one command: the last message read is kept (the RFC's examples take
    HEADER, 1.MIME and 1 of one message in a row) and reads are counted against a budget."""

    def __init__(self, session: Context, user: User) -> None:
        self.session = session
        self.user = user
        self.host = session.config.servername.lower()
        self.budget = session.config.limits.max_literal_total
        self.last: tuple[tuple[int, int], MessageRecord] | None = None
        self.mailboxes: dict[tuple[int, str | None], MailboxInfo | None] = {}

    async def part(self, text: str) -> bytes:
        session, user = self.session, self.user
        selected = session.mailbox.name if session.mailbox is not None else None
        try:
            url = imapurl.resolve(text, user.name, self.host, selected)
        except imapurl.BadUrl:
            raise badurl(text) from None
        owner: User | None = user
        if url.urlauth is not None:  # RFC 4467: verified, then read as the URL's owner
            owner = await authorized(session, text, url)
        elif (
            url.user != user.name
            or not names_this_server(session, url.host)
            or url.auth not in (None, "*")
        ):
            owner = None  # RFC 4469 §3: only this session's user on this server
        if owner is None or not url.is_message:
            raise badurl(text)
        record = await self._record(url, owner)
        data = None if record is None else record_part(url, record)
        if data is None:
            raise badurl(text)
        return data

    async def _record(self, url: imapurl.ImapUrl, owner: User) -> MessageRecord | None:
        # Rights are read once per mailbox and command: a thousand URLs into one mailbox
        # cost one lookup (and UIDVALIDITY is compared for each URL).
        where = (owner.id, url.mailbox)
        if where not in self.mailboxes:
            self.mailboxes[where] = await readable_mailbox(
                self.session, dataclasses.replace(url, uidvalidity=None), owner
            )
        info = self.mailboxes[where]
        if info is None or url.uid is None:
            return None
        if url.uidvalidity is not None and url.uidvalidity != info.uidvalidity:
            return None
        key = (info.id, url.uid)
        if self.last is not None and self.last[0] == key:
            return self.last[1]
        self.last = None
        records = await self.session.store.fetch(info.id, [url.uid], content=True, structure=True)
        if not records or records[0].content is None:
            return None
        self.budget -= records[0].size
        if self.budget < 0:
            raise CommandRefused("CATENATE reads too much at once", "LIMIT")
        self.last = (key, records[0])
        return records[0]


def _copy_spooled(path: Path, binary: bool, builder: _Builder) -> None:
    """A spooled TEXT literal into the message, in chunks (run in a worker thread)."""
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            if not binary and b"\x00" in chunk:  # CHAR8 = %x01-ff
                raise BadCommand("A TEXT literal holds NUL (send it as a literal8)")
            builder.add(chunk)


async def _build(
    session: Context, parts: Sequence[c.CatText | c.CatUrl], reader: _Reader, builder: _Builder
) -> bytes | Path:
    """The message of one CATENATE; big copies (a spooled literal, a large URL part going to
    the spool file) run in a worker thread, so the loop never waits on them."""
    for part in parts:
        if isinstance(part, c.CatUrl):
            data = await reader.part(part.url)
            if len(data) >= _OFF_LOOP:
                await asyncio.to_thread(builder.add, data)
            else:
                builder.add(data)
        elif isinstance(part.data, SpooledLiteral):
            await asyncio.to_thread(_copy_spooled, session.spooled(part.data), part.binary, builder)
        else:
            builder.add(part.data)
    return builder.result()


@contextlib.asynccontextmanager
async def assembled(
    session: Context, messages: Sequence[c.AppendMessage]
) -> AsyncIterator[list[bytes | Path]]:
    """Each message's octets: bytes, or a file the store reads (a spooled literal's, or one
    built here and removed on leaving)."""
    files: list[tuple[Path, BinaryIO]] = []
    try:
        out: list[bytes | Path] = []
        reader: _Reader | None = None
        for m in messages:
            content = m.content
            if isinstance(content, c.Catenation):
                reader = reader or _Reader(session, session.require_user())
                out.append(await _build(session, content.parts, reader, _Builder(session, files)))
            elif isinstance(content, SpooledLiteral):
                out.append(session.spooled(content))
            else:
                out.append(content)
        yield out
    finally:
        for path, file in files:
            file.close()
            path.unlink(missing_ok=True)
