"""Sans-IO LMTP server protocol (RFC 2033, on the SMTP grammar of RFC 5321): bytes in,
events out; answers in, bytes out.

Owns: the LMTP command grammar (LHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT; VRFY refused;
HELO/EHLO refused as RFC 2033 §4.1 asks), the transaction state, DATA framing (the final
``.`` line and dot-unstuffing, RFC 5321 §4.5.2), the limits and every reply text with its
enhanced status code (RFC 3463, ENHANCEDSTATUSCODES RFC 2034). It knows nothing of users or
the store: a RCPT becomes a `Recipient` event the driver answers with `accept_recipient` or
`refuse_recipient`. DATA streams: a `MessageStart`, then the content as it arrives in
`MessageData` events (dot-unstuffed, line ends made CRLF, each at most about `DATA_CHUNK`
octets), then a `Message` event answered, one reply per accepted RCPT in order (RFC 2033
§4.2), with `finish_message`. A message over ``max_message_size`` stops its `MessageData`
there and ends with a `Send` of one refusal per recipient instead of `Message`: the driver
drops what it kept of a message whenever DATA ends without `Message`. Must not import asyncio,
socket, ssl, store or notify (the same layering as imapd/protocol).

The driver (imapd/lmtp/server.py)::

    conn.receive_data(chunk)                     # b"" at EOF
    while (event := conn.next_event()) is not NEED_DATA:
        match event:
            case Send():            out += event.to_bytes()
            case Recipient():       out += conn.accept_recipient(user) / refuse_recipient(r)
            case MessageStart():    open a sink (memory, or a file past a threshold)
            case MessageData(data): write data to the sink
            case Message():         out += conn.finish_message(replies)   # deliver the sink
            case Close(reply):      write(reply); close()
            case ConnectionClosed(): close()

Replies are buffered by the driver and written when more input is needed, which is all
PIPELINING (RFC 2920) asks of a server.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Final, TypeAlias

#: RFC 5321 §4.5.3.1.4 allows 512 octets for a command line; addresses with parameters
#: from real MTAs stay well within 4 kB (Postfix's line_length_limit is 2048).
MAX_COMMAND_LINE: Final = 4096
#: RFC 5321 §4.5.3.1.8: at least 100 recipients must be accepted (Postfix: 1000).
MAX_RECIPIENTS: Final = 1000
#: Consecutive errors before the connection is closed with 421 (Postfix's smtpd_hard_error_limit
#: is 20), against a client speaking another protocol.
MAX_ERRORS: Final = 20
DEFAULT_MAX_MESSAGE_SIZE: Final = 64 * 1024 * 1024

#: DATA input transformed per `MessageData` event, so the cost of a message is paid in slices
#: between other clients' turns, whatever the client sends at once.
DATA_CHUNK: Final = 65536

#: The subaddress separator (``user+detail``), as Postfix's recipient_delimiter and Cyrus's
#: lmtp_downcase_rcpt / plus addressing.
DETAIL_SEPARATOR: Final = "+"


@dataclass(frozen=True, slots=True)
class LmtpLimits:
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    max_command_line: int = MAX_COMMAND_LINE
    max_recipients: int = MAX_RECIPIENTS
    max_errors: int = MAX_ERRORS


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply: ``code``, then its lines (the enhanced status code, when there is one,
    is part of each line's text, as RFC 2034 §3 writes it)."""

    code: int
    lines: tuple[str, ...]

    @classmethod
    def of(cls, code: int, text: str) -> Reply:
        return cls(code, (text,))

    @property
    def positive(self) -> bool:
        return 200 <= self.code < 300

    def to_bytes(self) -> bytes:
        out = []
        last = len(self.lines) - 1
        for i, line in enumerate(self.lines):
            clean = line.replace("\r", " ").replace("\n", " ")
            out.append(f"{self.code}{' ' if i == last else '-'}{clean}\r\n")
        return "".join(out).encode("utf-8", "replace")


# -- the reply catalogue (RFC 5321 §4.2, RFC 3463 enhanced codes) ------------------------------

OK = Reply.of(250, "2.0.0 OK")
SENDER_OK = Reply.of(250, "2.1.0 Sender OK")
RECIPIENT_OK = Reply.of(250, "2.1.5 Recipient OK")
START_DATA = Reply.of(354, "Start mail input; end with <CRLF>.<CRLF>")
UNKNOWN_COMMAND = Reply.of(500, "5.5.2 Command not recognized")
LINE_TOO_LONG = Reply.of(500, "5.5.2 Line too long")
USE_LHLO = Reply.of(500, "5.5.1 This is LMTP: use LHLO (RFC 2033 §4.1)")
NOT_IMPLEMENTED = Reply.of(502, "5.5.1 Command not implemented")
VRFY_DISABLED = Reply.of(502, "5.5.1 VRFY command is disabled")
NEED_LHLO = Reply.of(503, "5.5.1 Send LHLO first")
NESTED_MAIL = Reply.of(503, "5.5.1 Sender already given")
NEED_MAIL = Reply.of(503, "5.5.1 Need MAIL command")
NO_RECIPIENTS = Reply.of(503, "5.5.1 No valid recipients")  # RFC 2033 §4.2
TOO_MANY_RECIPIENTS = Reply.of(452, "4.5.3 Too many recipients")
NO_SUCH_USER = Reply.of(550, "5.1.1 No such user here")
TOO_BIG = Reply.of(552, "5.3.4 Message size exceeds fixed maximum message size")
TOO_MANY_ERRORS = Reply.of(421, "4.7.0 Too many errors, closing connection")
UNSUPPORTED_PARAMETER = Reply.of(555, "5.5.4 Unsupported MAIL/RCPT parameter")


def syntax_error(usage: str) -> Reply:
    return Reply.of(501, f"5.5.4 Syntax: {usage}")


class _Sentinel(Enum):
    NEED_DATA = auto()


#: Returned by `next_event` when more bytes are needed (h11's NEED_DATA).
NEED_DATA: Final = _Sentinel.NEED_DATA


class Send:
    """Write ``replies`` (usually one) and go on."""

    __slots__ = ("replies",)

    def __init__(self, *replies: Reply) -> None:
        self.replies = replies

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Send) and other.replies == self.replies

    def __hash__(self) -> int:
        return hash(self.replies)

    def __repr__(self) -> str:
        return f"Send{self.replies!r}"

    def to_bytes(self) -> bytes:
        return b"".join(r.to_bytes() for r in self.replies)


@dataclass(frozen=True, slots=True)
class Recipient:
    """A syntactically valid RCPT: look the user up among ``candidates`` (most specific
    first, see `recipient_candidates`), then call `accept_recipient` or `refuse_recipient`."""

    address: str
    candidates: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AcceptedRecipient:
    address: str
    user: str  # the store user the driver resolved the address to


@dataclass(frozen=True, slots=True)
class MessageStart:
    """DATA began (after its 354): `MessageData` events follow, then `Message`, or a `Send`
    of refusals (too big), or `ConnectionClosed`."""

    sender: str  # "" for the null reverse-path <>


@dataclass(frozen=True, slots=True)
class MessageData:
    """The next octets of the message (unstuffed, CRLF line ends), in order."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Message:
    """The end of DATA: deliver the octets of the `MessageData` events since `MessageStart`
    (``size`` in all) to each recipient, then call `finish_message` with one reply per
    recipient, in order."""

    sender: str  # "" for the null reverse-path <>
    recipients: tuple[AcceptedRecipient, ...]
    size: int


@dataclass(frozen=True, slots=True)
class Close:
    """Write ``reply``, then close (QUIT, too many errors)."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The client closed its side."""


Event: TypeAlias = (
    Send | Recipient | MessageStart | MessageData | Message | Close | ConnectionClosed
)


class ProtocolMisuse(RuntimeError):
    """The driver broke the call sequence (a bug in the driver, never a client error)."""


class _Mode(Enum):
    COMMAND = auto()
    DATA = auto()
    CLOSED = auto()


# -- addresses ---------------------------------------------------------------------------------

# RFC 5321 §4.1.2: Path = "<" [ A-d-l ":" ] Mailbox ">"; the source route is ignored
# (§4.1.1.3 says it SHOULD be). A quoted local part may contain ">" and spaces.
_PATH = re.compile(r'<(?:@[^:<>\s]*:)?((?:"(?:[^"\\]|\\.)*"|[^<>"\s])*)>')
_PARAM = re.compile(r"([A-Za-z0-9][A-Za-z0-9-]*)(?:=([\x21-\x3c\x3e-\x7e]+))?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _split_path(arg: str) -> tuple[str, list[str]] | None:
    """``<address> [params]`` -> (address, params), or None when malformed. A space after
    the colon is tolerated (``MAIL FROM: <a@b>``), as Postfix and Dovecot do."""
    arg = arg.lstrip(" ")
    m = _PATH.match(arg)
    if m is None:
        return None
    rest = arg[m.end() :]
    if rest and not rest.startswith(" "):
        return None
    return m.group(1), rest.split()


def local_part(address: str) -> str:
    """The local part of ``user@domain`` (a quoted local part unquoted)."""
    local, _, _ = address.rpartition("@") if "@" in address else (address, "", "")
    if len(local) >= 2 and local.startswith('"') and local.endswith('"'):
        local = re.sub(r"\\(.)", r"\1", local[1:-1])
    return local


def recipient_candidates(address: str) -> tuple[str, ...]:
    """User names an address may belong to, most specific first: the whole address (for
    stores whose user names are addresses), its local part, and the local part without a
    ``+detail`` (``alice+lists@example.org`` is delivered to alice's INBOX)."""
    out = [address]
    local = local_part(address)
    out.append(local)
    if DETAIL_SEPARATOR in local:
        base = local.split(DETAIL_SEPARATOR, 1)[0]
        if base:
            out.append(base)
    return tuple(dict.fromkeys(n for n in out if n))


def return_path(sender: str) -> bytes:
    """The ``Return-Path:`` header a final delivery agent prepends (RFC 5321 §4.4)."""
    clean = _CONTROL.sub("", sender)
    return f"Return-Path: <{clean}>\r\n".encode("utf-8", "surrogateescape")


# -- the connection ----------------------------------------------------------------------------

_TERMINATOR = re.compile(rb"\n\.\r?\n")  # the final "." line (bare LF tolerated)
_BARE_LF = re.compile(rb"(?<!\r)\n")


@dataclass(slots=True)
class _Transaction:
    sender: str | None = None
    recipients: list[AcceptedRecipient] = field(default_factory=list)
    body_8bit: bool = False


class LmtpConnection:
    """One LMTP server connection's protocol state. See the module docstring."""

    def __init__(self, hostname: str = "localhost", limits: LmtpLimits | None = None) -> None:
        self.hostname = hostname
        self.limits = limits or LmtpLimits()
        self._buf = bytearray()
        self._scan = 0  # where the LF search in _buf stopped (byte-at-a-time stays linear)
        self._eof = False
        self._mode = _Mode.COMMAND
        self._discarding = False  # inside an overlong command line
        self._greeted = False
        self._tx = _Transaction()
        self._pending: Recipient | Message | None = None
        self._errors = 0
        # DATA: the last raw octet already handed out (at first a sentinel LF, so the first
        # line is a line start like any other), then up to 3 octets held back because a
        # final "." line may be starting there. `_too_big` stops handing out octets but keeps
        # looking for the end.
        self._data = bytearray(b"\n")
        self._data_started = False
        self._data_size = 0
        self._too_big = False
        self._finished: Message | None = None

    # --- input ----------------------------------------------------------------------------
    def greeting(self) -> bytes:
        return Reply.of(220, f"{self.hostname} LMTP imapd ready").to_bytes()

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the client; ``b""`` means EOF."""
        if not data:
            self._eof = True
        else:
            self._buf += data

    def next_event(self) -> Event | _Sentinel:
        """The next event, or NEED_DATA. Raises ProtocolMisuse while a `Recipient` or
        `Message` is unanswered."""
        if self._pending is not None:
            raise ProtocolMisuse("answer the pending event first")
        while True:
            if self._mode is _Mode.CLOSED:
                return NEED_DATA
            if self._mode is _Mode.DATA:
                event = self._data_event()
            else:
                event = self._command_event()
            if event is NEED_DATA:
                if self._eof:
                    self._mode = _Mode.CLOSED
                    return ConnectionClosed()
                return NEED_DATA
            if event is not None:
                return event

    def _command_event(self) -> Event | _Sentinel | None:
        nl = self._buf.find(b"\n", self._scan)
        if nl < 0:
            if len(self._buf) > self.limits.max_command_line:
                self._discarding = True  # RFC 5321 §4.5.3.1.4: say so, keep the session
                self._buf.clear()
            self._scan = len(self._buf)
            return NEED_DATA
        raw = bytes(self._buf[:nl])
        del self._buf[: nl + 1]
        self._scan = 0
        if self._discarding or len(raw) > self.limits.max_command_line:
            self._discarding = False
            return self._error(LINE_TOO_LONG)
        line = raw[:-1] if raw.endswith(b"\r") else raw
        return self._command(line.decode("utf-8", "surrogateescape"))

    def _error(self, reply: Reply) -> Event:
        self._errors += 1
        if self._errors >= self.limits.max_errors:
            self._mode = _Mode.CLOSED
            return Close(TOO_MANY_ERRORS)
        return Send(reply)

    def _ok(self, reply: Reply) -> Event:
        self._errors = 0
        return Send(reply)

    # --- commands (RFC 5321 §4.1.1, RFC 2033 §4) -------------------------------------------
    def _command(self, line: str) -> Event | None:
        verb, _, arg = line.partition(" ")
        verb = verb.upper()
        if _CONTROL.search(line) or (not line.isascii() and verb not in ("MAIL", "RCPT")):
            return self._error(syntax_error("command lines are printable text"))
        match verb:
            case "LHLO":
                return self._lhlo(arg)
            case "HELO" | "EHLO":
                return self._error(USE_LHLO)
            case "MAIL":
                return self._mail(arg)
            case "RCPT":
                return self._rcpt(arg)
            case "DATA":
                return self._data_command(arg)
            case "RSET":
                if arg.strip():
                    return self._error(syntax_error("RSET"))
                self._tx = _Transaction()
                return self._ok(OK)
            case "NOOP":
                return self._ok(OK)  # RFC 5321 §4.1.1.9: a parameter is allowed, ignored
            case "QUIT":
                self._mode = _Mode.CLOSED
                return Close(Reply.of(221, f"2.0.0 {self.hostname} closing connection"))
            case "VRFY" | "EXPN":
                return self._error(VRFY_DISABLED)
            case "BDAT" | "STARTTLS" | "AUTH" | "HELP" | "TURN" | "ETRN":
                return self._error(NOT_IMPLEMENTED)
            case _:
                return self._error(UNKNOWN_COMMAND)

    def _lhlo(self, arg: str) -> Event:
        domain = arg.strip()
        if not domain or " " in domain:
            return self._error(syntax_error("LHLO hostname"))
        self._greeted = True
        self._tx = _Transaction()  # RFC 5321 §4.1.4: like RSET
        # RFC 2034 §3: the LHLO/EHLO lines carry no enhanced status codes.
        return self._ok(Reply(250, (
            self.hostname,
            "PIPELINING",
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
            f"SIZE {self.limits.max_message_size}",
        )))  # fmt: skip

    def _mail(self, arg: str) -> Event:
        if not self._greeted:
            return self._error(NEED_LHLO)
        if self._tx.sender is not None:
            return self._error(NESTED_MAIL)
        usage = "MAIL FROM:<address> [SIZE=n] [BODY=7BIT|8BITMIME]"
        if arg[:5].upper() != "FROM:":
            return self._error(syntax_error(usage))
        parsed = _split_path(arg[5:])
        if parsed is None:
            return self._error(syntax_error(usage))
        sender, params = parsed
        body_8bit = False
        for param in params:
            m = _PARAM.fullmatch(param)
            if m is None:
                return self._error(syntax_error(usage))
            key, value = m.group(1).upper(), m.group(2)
            if key == "SIZE":  # RFC 1870 §6
                if value is None or not value.isdigit() or len(value) > 20:
                    return self._error(syntax_error(usage))
                if int(value) > self.limits.max_message_size:
                    return self._error(TOO_BIG)
            elif key == "BODY":  # RFC 6152 §2
                if value is None or value.upper() not in ("7BIT", "8BITMIME"):
                    return self._error(syntax_error(usage))
                body_8bit = value.upper() == "8BITMIME"
            else:
                return self._error(UNSUPPORTED_PARAMETER)
        self._tx = _Transaction(sender=sender, body_8bit=body_8bit)
        return self._ok(SENDER_OK)

    def _rcpt(self, arg: str) -> Event:
        if self._tx.sender is None:
            return self._error(NEED_MAIL)
        usage = "RCPT TO:<address>"
        if arg[:3].upper() != "TO:":
            return self._error(syntax_error(usage))
        parsed = _split_path(arg[3:])
        if parsed is None:
            return self._error(syntax_error(usage))
        address, params = parsed
        if params:
            return self._error(UNSUPPORTED_PARAMETER)
        if not address:
            return self._error(Reply.of(501, "5.1.3 Bad recipient address syntax"))
        if len(self._tx.recipients) >= self.limits.max_recipients:
            return self._error(TOO_MANY_RECIPIENTS)
        event = Recipient(address, recipient_candidates(address))
        self._pending = event
        return event

    def _data_command(self, arg: str) -> Event:
        if arg.strip():
            return self._error(syntax_error("DATA"))
        if self._tx.sender is None:
            return self._error(NEED_MAIL)
        if not self._tx.recipients:
            return self._error(NO_RECIPIENTS)
        self._mode = _Mode.DATA
        self._data = bytearray(b"\n")
        self._data_started = False
        self._data_size = 0
        self._too_big = False
        return self._ok(START_DATA)

    # --- answers from the driver ------------------------------------------------------------
    def accept_recipient(self, user: str) -> bytes:
        """The pending RCPT's address belongs to ``user``: 250, and it joins the transaction."""
        pending = self._pending
        if not isinstance(pending, Recipient):
            raise ProtocolMisuse("no RCPT is pending")
        self._pending = None
        self._errors = 0
        self._tx.recipients.append(AcceptedRecipient(pending.address, user))
        return RECIPIENT_OK.to_bytes()

    def refuse_recipient(self, reply: Reply = NO_SUCH_USER) -> bytes:
        """Refuse the pending RCPT (default ``550 5.1.1``); the transaction goes on."""
        if not isinstance(self._pending, Recipient):
            raise ProtocolMisuse("no RCPT is pending")
        if reply.positive:
            raise ProtocolMisuse("a refusal must not be a positive reply")
        self._pending = None
        return reply.to_bytes()

    def finish_message(self, replies: Sequence[Reply]) -> bytes:
        """One reply per accepted RCPT, in RCPT order (RFC 2033 §4.2); ends the
        transaction."""
        pending = self._pending
        if not isinstance(pending, Message):
            raise ProtocolMisuse("no message is pending")
        if len(replies) != len(pending.recipients):
            raise ProtocolMisuse("one reply per recipient is required")
        self._pending = None
        return b"".join(r.to_bytes() for r in replies)

    # --- DATA (RFC 5321 §4.5.2) -----------------------------------------------------------------
    def _data_event(self) -> Event | _Sentinel | None:
        if not self._data_started:
            self._data_started = True
            return MessageStart(self._tx.sender or "")
        if self._finished is not None:
            event, self._finished = self._finished, None
            self._mode = _Mode.COMMAND
            self._pending = event
            return event
        if not self._buf:
            return NEED_DATA
        take = min(len(self._buf), DATA_CHUNK)
        window = self._data
        window += self._buf[:take]
        del self._buf[:take]
        m = _TERMINATOR.search(window)
        if m is None:
            # Hand out all but the last 3 octets ("\n", "\n." or "\n.\r" may be a final "."
            # line starting); keep the last one handed out as the next window's context.
            end = max(1, len(window) - 3)
            out = _unstuff(window[:end])
            del window[: end - 1]
            return self._data_out(out)
        # The final "." line: the content ends with the line end before it.
        out = _unstuff(window[: m.start() + 1])
        self._buf[:0] = window[m.end() :]  # pipelined commands after the final "."
        self._data = bytearray(b"\n")
        tx = self._tx
        self._tx = _Transaction()
        chunk = self._data_out(out)
        if self._too_big:
            self._too_big = False
            self._mode = _Mode.COMMAND
            return _refuse_all(tx, TOO_BIG)
        self._finished = Message(tx.sender or "", tuple(tx.recipients), self._data_size)
        return chunk

    def _data_out(self, out: bytes) -> MessageData | None:
        """``out`` as the next `MessageData`, unless the message is (now) too big."""
        self._data_size += len(out)
        if self._data_size > self.limits.max_message_size:
            self._too_big = True  # nothing more is handed out; the end is still looked for
        if self._too_big or not out:
            return None
        return MessageData(out)


def _unstuff(window: bytearray) -> bytes:
    """The content of ``window[1:]``, ``window[0]`` being the raw octet before it: every
    line that starts with "." was stuffed (RFC 5321 §4.5.2), drop one dot; a bare LF becomes
    CRLF (the store keeps CRLF, as IMAP sends). Both rules look one octet back only, so
    slices of the input transform independently given that octet."""
    if len(window) <= 1:
        return b""
    text = bytes(window).replace(b"\n.", b"\n")
    text = _BARE_LF.sub(b"\r\n", text)
    # window[0] is the first octet of ``text``: a LF (with nothing before it) became CRLF.
    return text[2:] if window[0] == 0x0A else text[1:]


def _refuse_all(tx: _Transaction, reply: Reply) -> Send:
    """A refusal of the whole message still answers once per recipient (RFC 2033 §4.2)."""
    return Send(*(reply for _ in tx.recipients))
