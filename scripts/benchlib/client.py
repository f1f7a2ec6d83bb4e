"""A small, fast raw-socket asyncio IMAP client for benchmarks (the same one for every server).

It sends one tagged command at a time per connection, reads response lines (following
literals ``{N}`` inside them) until the tagged status line, and returns the untagged
responses. It does not parse responses beyond that; the benchmark reads what it needs.
LITERAL+ / LITERAL- (RFC 7888) is used for APPEND when the server advertises it, else the
client waits for the ``+`` continuation as RFC 3501 requires.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field

_LITERAL_AT_END = re.compile(rb"\{(\d+)\}\r\n\Z")


class ImapError(Exception):
    """A NO/BAD tagged reply, an unexpected BYE, or a malformed exchange."""


@dataclass(slots=True)
class Untagged:
    """One server response: its text (no final CRLF) with literals left out, and the literals."""

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
        self.bytes_in = 0  # bytes received from the server (greeting included)
        self._buf = b""
        self._pos = 0

    # -- connection -------------------------------------------------------------------------

    async def connect(self) -> bytes:
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.timeout
        )
        self.greeting = await asyncio.wait_for(self._readline(), self.timeout)
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
        with contextlib.suppress(ImapError, OSError, TimeoutError, asyncio.IncompleteReadError):
            await self.command("LOGOUT", allow_bye=True, timeout=min(self.timeout, 10))
        await self.close()

    async def close(self) -> None:
        if self.writer is None:
            return
        writer, self.writer = self.writer, None
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 5)

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
        timeout: float | None = None,  # noqa: ASYNC109 - bounds the whole exchange
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
        prefix = tag + b" "
        line = text.encode() if isinstance(text, str) else text
        untagged: list[Untagged] = []
        if literal is None:
            self.writer.write(prefix + line + suffix + b"\r\n")
        else:
            non_sync = self.literal_plus or (self.literal_minus and len(literal) <= 4096)
            if non_sync:
                self.writer.write(
                    b"%s%s {%d+}\r\n" % (prefix, line, len(literal)) + literal + suffix + b"\r\n"
                )
            else:
                self.writer.write(b"%s%s {%d}\r\n" % (prefix, line, len(literal)))
                resp = await self._collect(prefix, untagged, allow_bye, stop_at_plus=True)
                if not resp.line.startswith(b"+"):
                    raise ImapError(f"literal refused: {resp.line!r}")
                self.writer.write(literal + suffix + b"\r\n")
        resp = await self._collect(prefix, untagged, allow_bye)
        rest = resp.line[len(prefix) :]
        status, _, rtext = rest.partition(b" ")
        status = status.upper()
        if status != b"OK" and not allow_no:
            raise ImapError(f"{line[:60]!r} -> {resp.line.strip()!r}")
        return Reply(status, rtext, untagged)

    async def _collect(
        self, prefix: bytes, untagged: list[Untagged], allow_bye: bool, stop_at_plus: bool = False
    ) -> Untagged:
        """Append responses to ``untagged`` until the tagged one (or ``+``), which is returned.

        Fast path: the complete lines in the buffer before any line carrying a literal are split
        in one C call, so a 10,000-line FETCH FLAGS answer costs little client CPU.
        """
        while True:
            buf, pos = self._buf, self._pos
            last = buf.rfind(b"\r\n", pos)
            if last < 0:
                await self._fill()
                continue
            lit = buf.find(b"}\r\n", pos, last + 2)
            end = last + 2 if lit < 0 else buf.rfind(b"\r\n", pos, lit) + 2
            if end > pos:
                chunk = buf[pos:end]
                lines = chunk.split(b"\r\n")
                lines.pop()
                check_bye = not allow_bye and b"* BYE " in chunk.upper()
                for k, ln in enumerate(lines):
                    if ln.startswith(prefix) or (stop_at_plus and ln.startswith(b"+")):
                        self._pos = pos + len(b"\r\n".join(lines[: k + 1])) + 2
                        return Untagged(ln)
                    u = Untagged(ln)
                    if check_bye:
                        self._check_bye(u, allow_bye)
                    untagged.append(u)
                self._pos = end
            if lit < 0:
                await self._fill()
                continue
            resp = await self._read_response()  # the line with a literal (and what follows)
            if resp.line.startswith(prefix) or (stop_at_plus and resp.line.startswith(b"+")):
                return resp
            self._check_bye(resp, allow_bye)
            untagged.append(resp)

    @staticmethod
    def _check_bye(resp: Untagged, allow_bye: bool) -> None:
        if not allow_bye and resp.line[:6].upper() == b"* BYE ":
            raise ImapError(f"server said {resp.line.strip()!r}")

    # -- reading: our own buffer, so that most lines cost no await ---------------------------

    async def _fill(self) -> None:
        assert self.reader is not None
        data = await self.reader.read(1 << 18)
        if not data:
            raise asyncio.IncompleteReadError(self._buf[self._pos :], None)
        self.bytes_in += len(data)
        self._buf = self._buf[self._pos :] + data if self._pos < len(self._buf) else data
        self._pos = 0

    async def _read_response(self) -> Untagged:
        while True:
            i = self._buf.find(b"\r\n", self._pos)
            if i >= 0:
                line = self._buf[self._pos : i + 2]
                self._pos = i + 2
                if line.endswith(b"}\r\n"):
                    return await self._with_literals(line)
                return Untagged(line[:-2])
            await self._fill()

    async def _readline(self) -> bytes:
        while True:
            i = self._buf.find(b"\r\n", self._pos)
            if i >= 0:
                line = self._buf[self._pos : i + 2]
                self._pos = i + 2
                return line
            await self._fill()

    async def _readexactly(self, n: int) -> bytes:
        avail = len(self._buf) - self._pos
        if avail >= n:
            out = self._buf[self._pos : self._pos + n]
            self._pos += n
            return out
        parts = [self._buf[self._pos :]]
        self._buf, self._pos = b"", 0
        need = n - avail
        assert self.reader is not None
        while need > 0:
            data = await self.reader.read(max(need, 1 << 18))
            if not data:
                raise asyncio.IncompleteReadError(b"".join(parts), n)
            self.bytes_in += len(data)
            if len(data) > need:
                parts.append(data[:need])
                self._buf = data[need:]
                need = 0
            else:
                parts.append(data)
                need -= len(data)
        return b"".join(parts)

    async def _with_literals(self, line: bytes) -> Untagged:
        parts = [line]
        literals: list[bytes] = []
        while True:
            m = _LITERAL_AT_END.search(line)
            if m is None:
                break
            literals.append(await self._readexactly(int(m.group(1))))
            line = await self._readline()
            parts.append(line)
        return Untagged(b"".join(parts)[:-2], literals)


def quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
