"""Bytes -> whole commands: lines and literals cut before any grammar is applied.

Owns: the incremental framer ("framing before grammar"; the module docs of
imap-codec's fragmentizer). It finds line ends, recognises a literal announcement ``{n}``,
``{n+}`` (RFC 7888) or ``~{n}`` (RFC 3516) at the end of a line, reads literal octets by
count, and decides every literal *before* the parser sees the command, so literal bytes are
never read as a command and limits hold for garbage. It also reads the single lines of the
IDLE (``DONE``) and SASL input modes. It knows nothing of states or command semantics: the
connection decides whether a synchronizing literal gets its ``+``.

A literal of at least ``spool_size`` octets is not kept: its octets leave as `LiteralChunk`
events as they arrive (the session spools them to a file) and the frame holds a
`SpooledLiteral` in its place, so a 60 MB upload costs the core no more than one read.

The CRLF search resumes where it stopped, so byte-at-a-time input stays linear
(h11's `_receivebuffer.py`). A bare LF also ends a line (lenient, as Dovecot is).
Must not import asyncio, socket, ssl, store or notify.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum, auto
from typing import Final, TypeAlias

from imapd.protocol.values import SpooledLiteral


class Mode(Enum):
    """What the next line is (the reader table of h11's `_readers.py`, in miniature)."""

    COMMAND = auto()
    IDLE = auto()  # RFC 2177: a line "DONE"
    SASL = auto()  # RFC 3501 §6.2.2: one line of base64, or "*"


@dataclass(frozen=True, slots=True)
class Frame:
    """A complete command: its lines joined without line ends, literals out of band.

    ``literals`` pairs each literal's octets with the offset in ``text`` just after the
    ``}`` that announced it (the parser checks it is at that offset). ``tag`` is the
    command's tag if the line starts with a syntactically valid one.
    """

    text: bytes
    literals: tuple[tuple[int, bytes | SpooledLiteral], ...]
    tag: str | None


@dataclass(frozen=True, slots=True)
class LiteralChunk:
    """Octets of a literal being spooled, in order; ``first`` starts a new literal of
    ``size`` octets (the current command's next `SpooledLiteral`)."""

    data: bytes
    first: bool
    size: int


@dataclass(frozen=True, slots=True)
class SyncLiteral:
    """A synchronizing literal within limits was announced: ``text`` is the command so far.

    The caller must answer with `Framer.accept_literal` (then write ``+``) or
    `Framer.reject_command` (then write a tagged BAD or NO; the client won't send it).
    """

    text: bytes
    tag: str | None
    size: int


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """The command was dropped by the framer; answer ``tag status [code] text``."""

    tag: str | None
    status: str
    text: str
    code: str | None = None


@dataclass(frozen=True, slots=True)
class FrameFatal:
    """The stream cannot be kept in sync: write ``* BYE [code] text`` and close."""

    text: str
    code: str | None = None


@dataclass(frozen=True, slots=True)
class ModeLine:
    """One line read in IDLE or SASL mode (the mode has already gone back to COMMAND)."""

    mode: Mode
    tag: str
    line: bytes


@dataclass(frozen=True, slots=True)
class ModeLineTooLong:
    """An IDLE or SASL line over the limit was discarded (the mode is COMMAND again)."""

    mode: Mode
    tag: str


class _Signal(Enum):
    NEED_DATA = auto()
    EOF = auto()


FRAME_NEED_DATA: Final = _Signal.NEED_DATA
FRAME_EOF: Final = _Signal.EOF

FrameEvent: TypeAlias = (
    Frame
    | SyncLiteral
    | FrameRejected
    | FrameFatal
    | ModeLine
    | ModeLineTooLong
    | LiteralChunk
    | _Signal
)

# literal = "{" number ["+"] "}" CRLF *CHAR8  (RFC 3501 §9, RFC 7888 §8); literal8 with "~"
_LITERAL_AT_END = re.compile(rb"~?\{([0-9]{1,20})(\+?)\}\Z")
# tag = 1*<any ASTRING-CHAR except "+">  (RFC 3501 §9)
_TAG_CHARS = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\+]+")


def read_tag(line: bytes) -> str | None:
    """The tag at the start of ``line``, if it is a valid tag followed by SP or the end."""
    m = _TAG_CHARS.match(line)
    if m is None:
        return None
    end = m.end()
    if end < len(line) and line[end] != 0x20:
        return None
    return m.group().decode("ascii")


class Framer:
    """Incremental framer; `feed` bytes, then call `next_event` until `FRAME_NEED_DATA`.

    ``max_line_length`` bounds a command's bytes excluding literals; an overlong command is
    discarded up to its end and rejected with BAD, unless more than ``max_discard_length``
    bytes go by without a line end (then fatal). ``max_literal_size`` bounds each literal:
    synchronizing ones over it are rejected with ``NO [TOOBIG]`` before the client sends them,
    non-synchronizing ones are fatal (RFC 7888 §4). ``max_literal_total`` bounds the sum of
    one command's literals (a MULTIAPPEND) the same way. ``max_literals`` bounds the literals
    of one command: the one past it ends the command with BAD (a synchronizing one gets no
    ``+``; the octets of a non-synchronizing one are skipped with the rest of the command).
    Literals of at least ``spool_size`` octets are handed out in `LiteralChunk` events
    instead of being kept.
    """

    def __init__(
        self,
        *,
        max_line_length: int,
        max_literal_size: int,
        max_discard_length: int,
        max_literals: int = 1000,
        max_literal_total: int | None = None,
        spool_size: int | None = None,
    ) -> None:
        self._max_line = max_line_length
        self._max_literals = max_literals
        #: Settable: the connection lowers it before authentication.
        self.max_literal_size = max_literal_size
        self._max_total = max_literal_total
        self._spool_size = spool_size
        self._max_discard = max_discard_length
        self._buf = bytearray()
        self._scan = 0  # where the line-end search resumes in _buf
        self._eof = False
        self.mode = Mode.COMMAND
        self.mode_tag = ""
        self._reset_command()

    def _reset_command(self) -> None:
        self._text = bytearray()
        self._literals: list[tuple[int, bytes | SpooledLiteral]] = []
        self._tag: str | None = None
        self._first_line = True
        self._literal_left: int | None = None  # octets of the current literal still to read
        self._literal_buf = bytearray()
        self._literal_total = 0  # octets of this command's literals so far
        self._spooled = 0  # SpooledLiterals in this command
        self._spooling: int | None = None  # the size of the literal being spooled
        self._spool_first = False
        self._awaiting_decision = False
        # When set, the current command is being skipped: this is its eventual reply.
        self._discard: FrameRejected | None = None
        self._discarded = 0  # bytes skipped in the current line while discarding

    # -- input -------------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if data:
            self._buf += data
        else:
            self._eof = True

    @property
    def eof(self) -> bool:
        return self._eof

    def take_buffered(self) -> bytes:
        """Remove and return every unframed byte (for the STARTTLS handover)."""
        data = bytes(self._buf)
        self._buf.clear()
        self._scan = 0
        return data

    @property
    def in_literal(self) -> bool:
        """Octets of an announced literal are still to come."""
        return self._literal_left is not None

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def set_mode(self, mode: Mode, tag: str) -> None:
        if self._text or self._literal_left is not None or self._awaiting_decision:
            raise RuntimeError("mode change in the middle of a command")
        self.mode = mode
        self.mode_tag = tag

    # -- sync literal decision ---------------------------------------------------------------

    def accept_literal(self) -> None:
        """The caller sent ``+``: the next octets are the announced literal."""
        if not self._awaiting_decision:
            raise RuntimeError("no synchronizing literal is pending")
        self._awaiting_decision = False

    def reject_command(self) -> None:
        """The caller rejected the command at its literal: the client sends nothing more."""
        if not self._awaiting_decision:
            raise RuntimeError("no synchronizing literal is pending")
        self._reset_command()

    # -- output ------------------------------------------------------------------------------

    def next_event(self) -> FrameEvent:
        if self._awaiting_decision:
            raise RuntimeError("accept_literal() or reject_command() must be called first")
        while True:
            if self._literal_left is not None:
                if self._literal_left and not self._buf:
                    return self._starved()
                take = min(self._literal_left, len(self._buf))
                if self._spooling is not None:
                    return self._spool_chunk(take)
                if self._discard is None:
                    self._literal_buf += self._buf[:take]
                del self._buf[:take]
                self._literal_left -= take
                if self._literal_left:
                    return self._starved()
                if self._discard is None:
                    self._literals.append((len(self._text), bytes(self._literal_buf)))
                self._literal_buf = bytearray()
                self._literal_left = None
                continue
            line = self._read_line()
            if line is None:
                if self._discard is not None and self._discarded > self._max_discard:
                    self._reset_command()
                    return FrameFatal("Line too long")
                return self._starved()
            if self.mode is not Mode.COMMAND:
                return self._mode_line(line)
            event = self._command_line(line)
            if event is not None:
                return event

    def _spool_chunk(self, take: int) -> LiteralChunk:
        assert self._spooling is not None and self._literal_left is not None
        chunk = LiteralChunk(bytes(self._buf[:take]), self._spool_first, self._spooling)
        del self._buf[:take]
        self._spool_first = False
        self._literal_left -= take
        if not self._literal_left:
            self._literals.append((len(self._text), SpooledLiteral(self._spooled, self._spooling)))
            self._spooled += 1
            self._literal_left = None
            self._spooling = None
        return chunk

    def _starved(self) -> _Signal:
        return FRAME_EOF if self._eof else FRAME_NEED_DATA

    def _read_line(self) -> bytes | None:
        """The next line without its line end, or None; discards an overlong partial line."""
        idx = self._buf.find(b"\n", self._scan)
        if idx < 0:
            self._scan = len(self._buf)
            if self.mode is Mode.COMMAND and self._discard is None:
                if len(self._text) + len(self._buf) > self._max_line:
                    self._discard = FrameRejected(self._tag_guess(), "BAD", "Line too long")
            elif self.mode is not Mode.COMMAND and len(self._buf) > self._max_line:
                self._discard = FrameRejected(self.mode_tag, "BAD", "Line too long")
            if self._discard is not None and self._buf:
                # Keep a trailing "}" context: a literal marker may end the discarded line.
                keep = min(len(self._buf), 32)
                self._discarded += len(self._buf) - keep
                del self._buf[: len(self._buf) - keep]
                self._scan = len(self._buf)
            return None
        end = idx - 1 if idx > 0 and self._buf[idx - 1] == 0x0D else idx
        line = bytes(self._buf[:end])
        del self._buf[: idx + 1]
        self._scan = 0
        return line

    def _tag_guess(self) -> str | None:
        if self._tag is None and self._first_line:
            return read_tag(bytes(self._text or self._buf[:200]))
        return self._tag

    def _mode_line(self, line: bytes) -> FrameEvent:
        mode, tag = self.mode, self.mode_tag
        self.mode, self.mode_tag = Mode.COMMAND, ""
        if self._discard is not None or len(line) > self._max_line:
            self._reset_command()
            return ModeLineTooLong(mode, tag)
        return ModeLine(mode, tag, line)

    def _command_line(self, line: bytes) -> FrameEvent | None:
        """Handle one line of a command; None means "keep reading"."""
        if self._first_line:
            self._first_line = False
            if self._discard is None:
                self._tag = read_tag(line)
        m = _LITERAL_AT_END.search(line)
        if self._discard is None:
            self._text += line
            if len(self._text) > self._max_line:
                self._discard = FrameRejected(self._tag, "BAD", "Line too long")
        self._discarded = 0
        if m is None:
            event: FrameEvent = self._discard or Frame(
                bytes(self._text), tuple(self._literals), self._tag
            )
            self._reset_command()
            return event
        size = int(m.group(1))
        sync = not m.group(2)
        if self._discard is None and len(self._literals) >= self._max_literals:
            self._discard = FrameRejected(self._tag, "BAD", "Too many literals")
        self._literal_total += size
        over_total = self._max_total is not None and self._literal_total > self._max_total
        if size > self.max_literal_size or over_total:
            if sync:
                tag = self._discard.tag if self._discard else self._tag
                self._reset_command()
                return FrameRejected(tag, "NO", "Literal too big", "TOOBIG")
            self._reset_command()
            return FrameFatal("Literal too big", "TOOBIG")
        if sync:
            if self._discard is not None:
                event = self._discard  # no "+": the client will not send the literal
                self._reset_command()
                return event
            self._start_literal(size)
            self._awaiting_decision = True
            return SyncLiteral(bytes(self._text), self._tag, size)
        self._start_literal(size)
        return None

    def _start_literal(self, size: int) -> None:
        self._literal_left = size
        if self._discard is None and self._spool_size is not None and size >= self._spool_size:
            self._spooling = size
            self._spool_first = True
