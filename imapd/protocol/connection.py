"""The sans-IO server connection: bytes in, events out; responses in, bytes out.

Owns: `ServerConnection` (the h11 shape) tying framer -> parser -> state check and
the serializer, the event types, `Limits`, and the abuse rules: an unknown command
before authentication ends the connection (cross-protocol attacks), as do too many BADs in
a row. Errors are events in the stream, so pipelined replies keep their order. Must not
import asyncio, socket, ssl, store or notify.

The session drives it like this::

    conn.receive_data(chunk)                      # b"" at EOF
    while (event := conn.next_event()) is not NEED_DATA:
        match event:
            case ContinueRequest(): write(conn.send([Continuation(event.text)]))
            case Rejected(reply):   write(conn.send([reply]))
            case Fatal(reply):      write(conn.send([reply])); close(); break
            case ConnectionClosed(): close(); break
            case IdleDone() | SaslResponse(): ...   # only after an outcome's IDLE / SASL mode
            case LiteralChunk():    spool(event.data)         # a big literal's octets
            case _:                 write(conn.send(conn.finish(event, await handle(event))))

`finish(cmd, outcome)` is the one door for a command's effects on the connection (h11's
`send` -> `_process_event`): the new state (checked against TRANSITIONS), the input mode
(IDLE's DONE, a SASL response), UTF8=ACCEPT, and the order of the command's responses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum, auto
from typing import Final, Literal, Protocol, TypeAlias, assert_never

from imapd.protocol import commands as cmd
from imapd.protocol import framing, parser
from imapd.protocol.errors import BadCommand, CommandRefused
from imapd.protocol.framing import Mode
from imapd.protocol.responses import Continuation, Response, Tagged, Untagged, UntaggedStatus
from imapd.protocol.serializer import serialize_all, serialize_pieces
from imapd.protocol.state import ALLOWED, Logout, NotAuthenticated, State, check_transition
from imapd.protocol.values import Secret


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection input limits; tests use tiny values."""

    #: Bytes of one command excluding its literals: Dovecot's imap_max_line_length (64 kB).
    max_line_length: int = 65536
    #: Octets of one literal. A message is one literal, so this is also the APPEND size cap;
    #: 64 MiB is well above common provider attachment limits (Gmail: 25 MB).
    max_literal_size: int = 64 * 1024 * 1024
    #: The same before authentication: only LOGIN and ID take literals then, and a stranger
    #: should not make us buffer 64 MiB.
    max_literal_size_unauthenticated: int = 64 * 1024
    #: Octets of all literals of one command together: what one MULTIAPPEND may upload.
    max_literal_total: int = 256 * 1024 * 1024
    #: Literals of at least this many octets go to a spool file on disk (`LiteralChunk`
    #: events), not memory: ten stalled 30 MB uploads must not cost 300 MB of RAM.
    literal_spool_size: int = 1024 * 1024
    #: Parenthesis / NOT / OR nesting of a search program (nesting has a limit);
    #: far below Python's recursion limit.
    max_depth: int = 32
    #: Sequence-set ranges, search keys, fetch atts, flags... in one command.
    max_args: int = 10000
    #: Search keys in one SEARCH (every key, operators included), answered NO [LIMIT] past
    #: it: each key is evaluated per message, in SQL or Python (issue 14).
    max_search_keys: int = 1000
    #: RFC 5267 updating contexts (SEARCH/SORT RETURN (UPDATE)) one session keeps; past it
    #: ``* NO [NOUPDATE "tag"]`` (§4.3.1). Dovecot's CLIENT_MAX_SEARCH_UPDATES is 10.
    max_update_contexts: int = 10
    #: Keywords one mailbox may hold; a STORE or APPEND that would add more answers
    #: NO [LIMIT] (Cyrus: 128 user flags per mailbox; every SELECT lists them all).
    max_keywords: int = 256
    #: Octets of one mailbox name (UTF-8), and of one level of it; CREATE/RENAME past them
    #: answer NO [LIMIT], other commands NO [NONEXISTENT] (Dovecot: 255 per level).
    max_mailbox_name: int = 1024
    max_mailbox_level: int = 255
    #: COMPRESS=DEFLATE (RFC 4978): the session ends with BYE when what it inflated exceeds
    #: this many times what it received, plus 64 KiB (legitimate IMAP traffic deflates about
    #: 3-20 times; a bomb of NOOPs 1000 times). 0: no check.
    max_inflate_ratio: int = 100
    #: Consecutive BAD replies before BYE (pymap's `bad_command_limit`).
    max_bad_commands: int = 20
    #: Bytes skipped looking for the end of an overlong line before giving up with BYE.
    max_discard_length: int = 1024 * 1024
    #: Literals in one command (a MULTIAPPEND's messages among them): each costs framing
    #: work and a continuation, and a 64 kB line holds ~20,000 of ``{0}``.
    max_literals: int = 1000


class _Sentinel(Enum):
    NEED_DATA = auto()


#: Returned by `next_event` when more bytes are needed (h11's NEED_DATA).
NEED_DATA: Final = _Sentinel.NEED_DATA


@dataclass(frozen=True, slots=True)
class ContinueRequest:
    """Write ``+ text``: the client may now send the synchronizing literal."""

    text: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """Write ``reply`` (a tagged BAD or NO) and go on reading."""

    reply: Tagged


@dataclass(frozen=True, slots=True)
class Fatal:
    """Write ``reply`` (a BYE), then close the connection."""

    reply: UntaggedStatus


@dataclass(frozen=True, slots=True)
class IdleDone:
    """The client sent DONE (RFC 2177): finish the IDLE command with its tagged OK."""


@dataclass(frozen=True, slots=True)
class SaslResponse:
    """One SASL client response, base64-decoded; None when the client cancelled with "*".

    The octets are held losslessly as a str (see `parser.decode_base64`)."""

    data: Secret | None


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The client closed its side and every buffered event has been consumed."""


#: Octets of a literal to spool (`framing.LiteralChunk`): ``first`` opens a new spool file.
LiteralChunk = framing.LiteralChunk

Event: TypeAlias = (
    cmd.Command
    | LiteralChunk
    | ContinueRequest
    | Rejected
    | Fatal
    | IdleDone
    | SaslResponse
    | ConnectionClosed
    | Literal[_Sentinel.NEED_DATA]
)


class Finished(Protocol):
    """What `ServerConnection.finish` reads of a handler's outcome (imapd/commands/base.py
    `Outcome` is one): the tagged status, the untagged responses, and the effects on the
    connection. ``state``: the new state (None: unchanged); ``mode``: IDLE or SASL when the
    command goes on with a continuation request instead of its tagged reply; ``utf8``:
    UTF8=ACCEPT turned on (RFC 6855 §3) from this command's own responses on."""

    text: str
    status: str
    code: str | None
    responses: list[Response]
    state: State | None
    mode: Mode | None
    utf8: bool | None


#: The continuation request each input mode starts with (RFC 2177 §3; RFC 3501 §6.2.2: an
#: empty challenge, as PLAIN's first).
_MODE_PROMPTS: Final = {Mode.IDLE: "idling", Mode.SASL: ""}


class ServerConnection:
    """One IMAP server connection without I/O (the h11 shape)."""

    def __init__(self, limits: Limits = Limits()) -> None:
        self.limits = limits
        #: UTF8=ACCEPT is enabled (RFC 6855 §3): UTF-8 names and quoted strings, both ways.
        self.utf8 = False
        self._state: State = NotAuthenticated()
        self._framer = framing.Framer(
            max_line_length=limits.max_line_length,
            max_literal_size=min(limits.max_literal_size, limits.max_literal_size_unauthenticated),
            max_discard_length=limits.max_discard_length,
            max_literals=limits.max_literals,
            max_literal_total=limits.max_literal_total,
            spool_size=limits.literal_spool_size,
        )
        self._bad_count = 0
        self._dead = False

    # -- state -------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    def set_state(self, new: State) -> None:
        """Change state; raises `state.IllegalTransition` for a pair not in TRANSITIONS."""
        check_transition(self._state, new)
        self._state = new
        self._framer.max_literal_size = (
            min(self.limits.max_literal_size, self.limits.max_literal_size_unauthenticated)
            if isinstance(new, NotAuthenticated)
            else self.limits.max_literal_size
        )

    @property
    def mode(self) -> Mode:
        """The current input mode: COMMAND, IDLE or SASL."""
        return self._framer.mode

    def start_idle(self, tag: str) -> None:
        """Read the next line as IDLE's "DONE" (RFC 2177); call before writing ``+ idling``.

        The next event is `IdleDone`, or a `Rejected` BAD for ``tag`` (any other line, which
        also ends IDLE), then the mode is COMMAND again."""
        self._framer.set_mode(Mode.IDLE, tag)

    def start_sasl(self, tag: str) -> None:
        """Read the next line as a SASL response to AUTHENTICATE ``tag`` (RFC 3501 §6.2.2).

        Call before writing each ``+ challenge``. The next event is `SaslResponse`, or a
        `Rejected` BAD for ``tag`` (malformed base64: AUTHENTICATE is over); then the mode is
        COMMAND again."""
        self._framer.set_mode(Mode.SASL, tag)

    @property
    def in_literal(self) -> bool:
        """The client is in the middle of sending a literal (for a progress timeout)."""
        return self._framer.in_literal

    # -- input -------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Buffer ``data``; ``b""`` means the client closed its side (EOF)."""
        if self._framer.eof and data:
            raise RuntimeError("receive_data after EOF")
        self._framer.feed(data)

    def take_buffered_data(self) -> bytes:
        """Remove and return bytes not yet framed: for STARTTLS, where pipelined plaintext
        must never run as commands (RFC 3501 §6.2.1); hand them to the TLS layer instead."""
        return self._framer.take_buffered()

    def next_event(self) -> Event:
        """The next event, or `NEED_DATA`.

        Client errors are events (`Rejected`, `Fatal`), never exceptions: anything raised
        from here is a bug in this module. After `Fatal`, only `NEED_DATA` follows.
        """
        if self._dead:
            return NEED_DATA
        event = self._next()
        if isinstance(event, Fatal):
            self._dead = True
        return event

    def _next(self) -> Event:
        fe = self._framer.next_event()
        match fe:
            case framing.FRAME_NEED_DATA:
                return NEED_DATA
            case framing.FRAME_EOF:
                return ConnectionClosed()
            case framing.FrameFatal(text, code):
                return Fatal(UntaggedStatus("BYE", text, code))
            case framing.FrameRejected(tag, status, text, code):
                if status == "BAD":
                    return self._bad(tag, text)
                return Rejected(Tagged(tag or "*", status, text, code))
            case framing.SyncLiteral(text, tag, _size):
                refusal = self._precheck(text, tag)
                if refusal is not None:
                    self._framer.reject_command()
                    return refusal
                self._framer.accept_literal()
                return ContinueRequest("Ready for literal data")
            case framing.Frame():
                return self._command(fe)
            case framing.LiteralChunk():
                return fe
            case framing.ModeLine(mode, tag, line):
                return self._mode_line(mode, tag, line)
            case framing.ModeLineTooLong(_mode, tag):
                return self._bad(tag, "Line too long")
            case _:
                assert_never(fe)

    def _precheck(self, text: bytes, tag: str | None) -> Rejected | Fatal | None:
        """Refuse a synchronizing literal before the client sends it (RFC 3501 §7.5)."""
        try:
            _, kind = parser.peek_command(text)
        except parser.UnknownCommand as exc:
            return self._unknown(exc.tag or tag)
        except BadCommand as exc:
            return self._bad(exc.tag or tag, exc.text)
        if kind is not None and type(self._state) not in ALLOWED[kind]:
            return self._bad(tag, "Command not allowed in this state")
        if parser.literal8_misplaced(text):  # no "+" for what can only be BAD
            return self._bad(tag, "literal8 (~{n}) is only allowed as APPEND or SETMETADATA data")
        return None

    def _command(self, frame: framing.Frame) -> Event:
        try:
            command = parser.parse_command(
                frame.text,
                frame.literals,
                utf8=self.utf8,
                max_depth=self.limits.max_depth,
                max_args=self.limits.max_args,
                max_mailbox_name=self.limits.max_mailbox_name,
                max_mailbox_level=self.limits.max_mailbox_level,
            )
        except parser.UnknownCommand as exc:
            return self._unknown(exc.tag or frame.tag)
        except BadCommand as exc:
            return self._bad(exc.tag or frame.tag, exc.text)
        except CommandRefused as exc:
            return Rejected(Tagged(frame.tag or "*", "NO", exc.text, exc.code))
        if type(self._state) not in ALLOWED[type(command)]:
            return self._bad(command.tag, "Command not allowed in this state")
        self._bad_count = 0
        return command

    def _mode_line(self, mode: Mode, tag: str, line: bytes) -> Event:
        if mode is Mode.IDLE:
            if line.upper() == b"DONE":
                return IdleDone()
            return self._bad(tag, "Expected DONE")  # RFC 2177 §3; ends IDLE
        if line == b"*":  # RFC 3501 §6.2.2: the client cancels the exchange
            return SaslResponse(None)
        data = parser.decode_base64(line)
        if data is None:
            return self._bad(tag, "Malformed base64")
        return SaslResponse(Secret(data))

    def _unknown(self, tag: str | None) -> Rejected | Fatal:
        if isinstance(self._state, NotAuthenticated):
            # not an IMAP client (HTTP, SMTP...): cross-protocol attack defence.
            return Fatal(UntaggedStatus("BYE", "Unknown command"))
        return self._bad(tag, "Unknown command")

    def _bad(self, tag: str | None, text: str) -> Rejected | Fatal:
        self._bad_count += 1
        if self._bad_count > self.limits.max_bad_commands:
            return Fatal(UntaggedStatus("BYE", "Too many invalid commands"))
        return Rejected(Tagged(tag or "*", "BAD", text))

    # -- output ------------------------------------------------------------------------------

    def finish(
        self, command: cmd.Command, outcome: Finished, updates: Sequence[Response] = ()
    ) -> list[Response]:
        """Apply ``outcome``'s effects and return what goes out for ``command``, in order.

        The state change is checked against TRANSITIONS (`state.IllegalTransition`: a bug
        in the handler); UTF8=ACCEPT is applied before the responses are serialised. With an
        input mode the answer is the untagged responses and a continuation request (the
        tagged reply comes when the exchange ends); otherwise ``updates`` (the selected
        mailbox's, NOTIFY's) surround the command's responses: a FLAGS update first (a new
        keyword is announced before a response that uses it), the rest after, and nothing
        after LOGOUT's BYE (RFC 3501 §6.1.3, §7.1.5). Raises ValueError for a mode on a
        refusal, or a mode other than IDLE and SASL."""
        if outcome.mode is not None and (
            outcome.status != "OK" or outcome.mode not in _MODE_PROMPTS
        ):
            raise ValueError(f"{type(command).__name__}: mode {outcome.mode} with {outcome.status}")
        if outcome.state is not None:
            self.set_state(outcome.state)
        if outcome.utf8 is not None:
            self.utf8 = outcome.utf8
        if outcome.mode is not None:
            self._framer.set_mode(outcome.mode, command.tag)
            return [*outcome.responses, Continuation(_MODE_PROMPTS[outcome.mode])]
        first = [u for u in updates if _is_flags(u)]
        rest = [u for u in updates if not _is_flags(u)]
        if isinstance(self._state, Logout):
            first, rest = [*first, *rest], []
        tagged = Tagged(command.tag, outcome.status, _tagged_text(command, outcome), outcome.code)
        return [*first, *outcome.responses, *rest, tagged]

    def send(self, responses: Iterable[Response]) -> bytes:
        """Serialize ``responses`` in order with the current UTF8=ACCEPT setting."""
        return serialize_all(responses, utf8=self.utf8)

    def send_pieces(self, responses: Iterable[Response]) -> list[bytes]:
        """`send` in pieces that leave big literals uncopied (`serialize_pieces`)."""
        return serialize_pieces(responses, utf8=self.utf8)


def _is_flags(response: Response) -> bool:
    return isinstance(response, Untagged) and response.items[:1] == ("FLAGS",)


def _tagged_text(command: cmd.Command, outcome: Finished) -> str:
    if outcome.status != "OK" or outcome.text != "completed":
        return outcome.text
    return f"{type(command).__name__.upper()} completed"
