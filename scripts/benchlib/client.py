"""A small, fast raw-socket asyncio IMAP client for benchmarks (the same one for every server).

It sends one tagged command at a time per connection, reads response lines (following
literals ``{N}`` inside them) until the tagged status line, and returns the untagged
responses. It does not parse responses beyond that; the benchmark reads what it needs.
LITERAL+ / LITERAL- (RFC 7888) is used for APPEND when the server advertises it, else the
client waits for the ``+`` continuation as RFC 3501 requires.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

_LITERAL_AT_END = re.compile(rb"\{(\d+)\}\r\n\Z")
_READ_LIMIT = 64 * 1024 * 1024


class ImapError(Exception):
    """A NO/BAD tagged reply, an unexpected BYE, or a malformed exchange."""


@dataclass(slots=True)
class Untagged:
    """One server response: its text with literals replaced by ``{N}``, and the literals."""

    line: bytes
    literals: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class Reply:
    status: bytes  # b"OK", b"NO" or b"BAD"
    text: bytes  # the tagged line after the status
    untagged: list[Untagged]

    def search_numbers(self) -> list[int]:
        """Numbers from ``* SEARCH`` (or ``* ESEARCH ... ALL``-less plain SEARCH) responses."""
        out: list[int] = []
        for u in self.untagged:
            if u.line.startswith(b"* SEARCH"):
                out.extend(int(x) for x in u.line[8:].split())
        return out


class ImapClient:
    def __init__(self, host: str, port: int, *, timeout: float = 120.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.greeting = b""
        self.capabilities: set[str] = set()
        self._tag = 0

    # -- connection -------------------------------------------------------------------------

    async def connect(self) -> bytes:
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, limit=_READ_LIMIT), self.timeout
        )
        self.greeting = await asyncio.wait_for(self.reader.readuntil(b"\r\n"), self.timeout)
        if not self.greeting.startswith(b"* OK"):
            raise ImapError(f"unexpected greeting {self.greeting!r}")
        return self.greeting

    async def login(self, user: str, password: str) -> None:
        await self.command(f"LOGIN {quote(user)} {quote(password)}")
        reply = await self.command("CAPABILITY")
        for u in reply.untagged:
            if u.line.upper().startswith(b"* CAPABILITY "):
                self.capabilities |= set(u.line[13:].decode("ascii", "replace").upper().split())

    @property
    def literal_plus(self) -> bool:
        return "LITERAL+" in self.capabilities

    @property
    def literal_minus(self) -> bool:
        return "LITERAL-" in self.capabilities

    async def logout(self) -> None:
        if self.writer is None:
            return
        try:
            await asyncio.wait_for(self.command("LOGOUT", allow_bye=True), min(self.timeout, 10))
        except (ImapError, OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        await self.close()

    async def close(self) -> None:
        if self.writer is None:
            return
        writer, self.writer = self.writer, None
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 5)
        except (OSError, TimeoutError):
            pass

    # -- commands ---------------------------------------------------------------------------

    def _next_tag(self) -> bytes:
        self._tag += 1
        return b"T%05d" % self._tag

    async def command(
        self,
        text: str | bytes,
        *,
        literal: bytes | None = None,
        suffix: bytes = b"",
        allow_no: bool = False,
        allow_bye: bool = False,
        timeout: float | None = None,
    ) -> Reply:
        """Send ``TAG text`` (+ one trailing literal and ``suffix``); wait for the tagged reply.

        NO/BAD raise ImapError unless ``allow_no``. Every wait is bounded by ``timeout``.
        """
        return await asyncio.wait_for(
            self._command(text, literal, suffix, allow_no, allow_bye),
            self.timeout if timeout is None else timeout,
        )

    async def append(
        self, mailbox: str, message: bytes, flags: str = "", date: str | None = None
    ) -> Reply:
        head = f"APPEND {quote(mailbox)}"
        if flags:
            head += f" ({flags})"
        if date:
            head += f' "{date}"'
        return await self.command(head, literal=message)

    async def _command(
        self,
        text: str | bytes,
        literal: bytes | None,
        suffix: bytes,
        allow_no: bool,
        allow_bye: bool,
    ) -> Reply:
        assert self.writer is not None and self.reader is not None, "not connected"
        tag = self._next_tag()
        line = text.encode() if isinstance(text, str) else text
        untagged: list[Untagged] = []
        if literal is None:
            self.writer.write(tag + b" " + line + suffix + b"\r\n")
        else:
            non_sync = self.literal_plus or (self.literal_minus and len(literal) <= 4096)
            if non_sync:
                self.writer.write(
                    b"%s %s {%d+}\r\n" % (tag, line, len(literal)) + literal + suffix + b"\r\n"
                )
            else:
                self.writer.write(b"%s %s {%d}\r\n" % (tag, line, len(literal)))
                while True:
                    resp = await self._read_response()
                    if resp.line.startswith(b"+"):
                        break
                    if resp.line.startswith(tag + b" "):
                        raise ImapError(f"literal refused: {resp.line!r}")
                    self._check_bye(resp, allow_bye)
                    untagged.append(resp)
                self.writer.write(literal + suffix + b"\r\n")
        prefix = tag + b" "
        while True:
            resp = await self._read_response()
            if resp.line.startswith(prefix):
                rest = resp.line[len(prefix) :].rstrip(b"\r\n")
                status, _, rtext = rest.partition(b" ")
                status = status.upper()
                if status != b"OK" and not allow_no:
                    raise ImapError(f"{line[:60]!r} -> {resp.line.strip()!r}")
                return Reply(status, rtext, untagged)
            self._check_bye(resp, allow_bye)
            untagged.append(resp)

    @staticmethod
    def _check_bye(resp: Untagged, allow_bye: bool) -> None:
        if not allow_bye and resp.line[:6].upper() == b"* BYE ":
            raise ImapError(f"server said {resp.line.strip()!r}")

    async def _read_response(self) -> Untagged:
        reader = self.reader
        assert reader is not None
        line = await reader.readuntil(b"\r\n")
        if not line.endswith(b"}\r\n"):
            return Untagged(line)
        parts = [line]
        literals: list[bytes] = []
        while True:
            m = _LITERAL_AT_END.search(line)
            if m is None:
                break
            literals.append(await reader.readexactly(int(m.group(1))))
            line = await reader.readuntil(b"\r\n")
            parts.append(line)
        return Untagged(b"".join(parts), literals)


def quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
