"""One client connection's life: read bytes, feed the sans-IO core, dispatch, write.

Owns: the asyncio side of a session (reads with timeouts, writes with drain, shutdown),
the dispatcher that turns exceptions into tagged replies, and the session state handlers use
through `Context` (user, selected view, enabled extensions). Parsing and serialising belong
to `imapd.protocol`; store access to handlers; waiting on client bytes or a change to report
(IDLE, NOTIFY) and collecting those changes to imapd/listening.py (``self.listening``).

Implementation notes:
- Commands run strictly one after another, in the order received (pipelining keeps order).
- Changes arrive from the bus into ``self.subscription`` at any await; they are applied to
  the SelectedView and flushed only between commands or while idling, per RFC 3501 §7.4.1.
- A session never writes to its socket while holding the store's writer lock: handlers
  return values; writes happen here, after the store call returned.
- Handlers see this session as a `Context` (imapd/commands/context.py) and return an
  `Outcome` carrying every effect on the connection; `_finish` applies it here (`_settle`)
  and in the core (``conn.finish``, the one door), and nothing special-cases a command.
- Only `_run` turns exceptions into replies (a SASL step's too); unexpected ones are logged
  with the session id and the client gets ``NO [SERVERBUG]``.
- Every wait on the socket's drain is bounded by ``write_timeout`` of no progress
  (`_drain`); big responses are written in drained slices, their literals uncopied.
- Literals of ``literal_spool_size`` octets and more reach the session as `LiteralChunk`
  events and go to a spool file (imapd/spool.py), removed once their command is over.
- COMPRESS=DEFLATE (RFC 4978) lives here, below the core: after the tagged OK every read
  goes through ``_inflate`` (bounded output per call, the rest kept in its unconsumed tail)
  and every write through ``_deflate`` with a Z_SYNC_FLUSH, so each response reaches the
  client whole. Bytes the client sent after COMPRESS but before our OK were already
  compressed: they are taken back from the core and inflated.
- STARTTLS (RFC 3501 §6.2.1) is a layer switch after the tagged OK (`start_tls`): bytes the
  client pipelined after the command are dropped, never run (the injection defence; the core
  gives them up with ``take_buffered_data``, and the plain StreamReader's buffer is
  abandoned with it, as `imapd.tls.upgrade` reads through new stream objects); then the
  session starts afresh in not-authenticated state with a new core. Implicit TLS sessions
  (``service`` "imaps") arrive already upgraded. COMPRESS sits above TLS in both cases.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import fcntl
import logging
import socket
import sys
import termios
import time
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from imapd import spool, tls
from imapd.auth_guard import AuthGuard
from imapd.commands import HANDLERS
from imapd.commands.base import After, Outcome, Resume, refusal
from imapd.commands.rev2 import uidonly_guard
from imapd.limits import TLS_HANDSHAKE_TIMEOUT, Admission, address_key
from imapd.listening import GONE, Gone, Listener
from imapd.protocol import commands as c
from imapd.protocol.connection import (
    NEED_DATA,
    ConnectionClosed,
    ContinueRequest,
    Fatal,
    IdleDone,
    LiteralChunk,
    Rejected,
    SaslResponse,
    ServerConnection,
)
from imapd.protocol.errors import ConnectionFatal, ImapError
from imapd.protocol.framing import Mode
from imapd.protocol.responses import Continuation, Response, Tagged, UntaggedStatus
from imapd.protocol.state import (
    Authenticated,
    Logout,
    NotAuthenticated,
    Selected,
    expunge_allowed_after,
)
from imapd.protocol.values import FetchAtt, Secret, SpooledLiteral
from imapd.rfc5267 import UpdateContexts
from imapd.rfc5465 import NotifyState
from imapd.selected import SelectedView
from notify.bus import Subscription
from notify.cyrus import new_session_id
from store.api import MailboxInfo, User
from store.changes import Origin
from store.errors import StoreError

if TYPE_CHECKING:
    from imapd.server import Server

log = logging.getLogger("imapd.session")
T = TypeVar("T")

READ_SIZE = 65536
#: Inflated octets allowed beyond ``limits.max_inflate_ratio`` times the deflated ones.
INFLATE_SLACK = 64 * 1024
#: Seconds of pipelined commands a session runs before it lets the loop turn (fairness:
#: a burst of 8,000 NOOPs in one read would otherwise hold every other session).
TIME_SLICE = 0.005


#: Linux's ioctl for the octets in a TCP socket's send queue (TIOCOUTQ), if there is one.
_SIOCOUTQ: int | None = getattr(termios, "TIOCOUTQ", None) if sys.platform == "linux" else None
#: Output bigger than this goes out in slices of it, each drained (`Session._write`).
WRITE_CHUNK = 256 * 1024


class WriteStalled(ConnectionError):
    """The client read none of its pending output for ``write_timeout`` seconds."""


class Session:
    #: One per connection, most of them idle: no instance dict (issue 17, memory).
    __slots__ = (
        "_deflate",
        "_deflated_in",
        "_held",
        "_inflate",
        "_inflated_in",
        "_last_command",
        "_login_deadline",
        "_plain_writer",
        "_resume",
        "_spool_error",
        "_spools",
        "address",
        "busy",
        "client_id",
        "closing",
        "config",
        "conn",
        "connected_at",
        "contexts",
        "enabled",
        "id",
        "kicked",
        "last_input",
        "listening",
        "loopback",
        "mailbox",
        "notify",
        "notify_fetch_atts",
        "peer",
        "reader",
        "saved_search",
        "server",
        "service",
        "session_logged",
        "store",
        "subscription",
        "task",
        "tls",
        "user",
        "view",
        "waiting",
        "writer",
    )

    def __init__(
        self,
        server: Server,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        service: str = "imap",
    ) -> None:
        self.server = server
        self.config = server.config
        self.store = server.store
        self.reader = reader
        self.writer = writer
        self.id = new_session_id(self.config.servername)  # Cyrus's vnd.cmu.sessionId
        self.session_logged = False  # a Login went to the outbox: a Logout will follow
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.loopback = isinstance(peer, tuple) and _is_loopback(peer[0])
        #: What per-address limits and login throttling count by (imapd/limits.py).
        self.address = address_key(peer[0] if isinstance(peer, tuple) else str(peer))
        self.service = service
        #: TLS is on: implicit TLS (``service`` "imaps") or after STARTTLS ("imap", as Cyrus).
        self.tls = writer.get_extra_info("ssl_object") is not None
        self._plain_writer: asyncio.StreamWriter | None = None  # kept alive after STARTTLS
        self.conn = ServerConnection(self.config.limits)
        self.subscription = server.bus.subscribe(self.config.max_pending_changes)
        #: NOTIFY (RFC 5465): the registration, its own subscription, MessageNew's FETCH.
        self.notify = NotifyState()
        self.notify_fetch_atts: tuple[FetchAtt, ...] = ()
        #: RFC 5267 updating contexts; they end when the mailbox is left (`_settle`).
        self.contexts = UpdateContexts(self.config.limits.max_update_contexts)
        self.user: User | None = None
        self.client_id: str | None = None  # RFC 2971 ID's name and version (imapd who)
        self.view: SelectedView | None = None
        self.mailbox: MailboxInfo | None = None
        self.enabled: set[str] = set()
        self.saved_search: list[int] = []
        #: IDLE waiting for DONE, or AUTHENTICATE for a SASL response (an Outcome's
        #: ``mode``), and what handles that response.
        self.waiting: c.Command | None = None
        self._resume: Resume | None = None
        self.closing = False
        self.busy = False
        self.task: asyncio.Task[None] | None = None
        #: IDLE and NOTIFY: waiting for input or a change, collecting updates.
        self.listening = Listener(self)
        self._inflate: zlib._Decompress | None = None  # COMPRESS=DEFLATE, RFC 4978
        self._deflate: zlib._Compress | None = None
        self._deflated_in = self._inflated_in = 0  # octets, for limits.max_inflate_ratio
        #: Pushed bytes waiting for the end of this loop turn (`imapd.server.PushBatch`).
        self._held: list[bytes] = []
        #: The current command's big literals on disk (imapd/spool.py), and why one could
        #: not be written (the command is then answered NO [UNAVAILABLE]).
        self._spools: list[spool.Spool] = []
        self._spool_error: OSError | None = None
        #: For `imapd who` and `imapd kick` (imapd/control/).
        self.connected_at = dt.datetime.now(dt.UTC)
        self.last_input = time.monotonic()
        self.kicked: str | None = None
        #: Timers (loop time): login_timeout runs from connect, whatever bytes trickle in;
        #: once authenticated, idle_timeout runs from the last complete command (RFC 3501
        #: §5.4), not the last byte: a byte now and then keeps no connection.
        now = asyncio.get_running_loop().time()
        self._login_deadline = now + self.config.login_timeout
        self._last_command = now

    # --- facts handlers use ------------------------------------------------------------
    @property
    def local_host(self) -> str | None:
        local = self.writer.get_extra_info("sockname")
        if not isinstance(local, tuple):
            return None
        host = str(local[0])
        return f"[{host}]" if ":" in host else host

    @property
    def origin(self) -> Origin:
        return Origin(
            session=self.id,
            user=self.user.name if self.user else None,
            service=self.service,
            client=self.peer,
        )

    @property
    def plaintext_allowed(self) -> bool:
        """LOGIN and AUTHENTICATE PLAIN may be used: over TLS always; without it per
        ``allow_plaintext_login`` (None: on loopback only). RFC 3501 §6.2.3, RFC 8314 §5."""
        if self.tls:
            return True
        allowed = self.config.allow_plaintext_login
        return self.loopback if allowed is None else allowed

    def capabilities(self, *, authenticated: bool | None = None) -> list[str]:
        return self.server.capabilities(self, authenticated=authenticated)

    @property
    def compressing(self) -> bool:
        return self._deflate is not None

    @property
    def tls_available(self) -> bool:
        return self.server.tls is not None

    @property
    def utf8(self) -> bool:
        return self.conn.utf8

    @property
    def auth_guard(self) -> AuthGuard:
        return self.server.auth_guard

    @property
    def admission(self) -> Admission:
        return self.server.admission

    def subscribe(self, limit: int) -> Subscription:
        return self.server.bus.subscribe(limit)

    def write_buffer_size(self) -> int:
        return self.writer.transport.get_write_buffer_size()

    @property
    def idle_tag(self) -> str | None:
        """The tag of the IDLE command waiting for DONE."""
        waiting = self.waiting
        return waiting.tag if waiting is not None and self.conn.mode is Mode.IDLE else None

    def require_user(self) -> User:
        if self.user is None:
            raise ImapError("Not authenticated")
        return self.user

    def require_view(self) -> SelectedView:
        if self.view is None or self.mailbox is None:
            raise ImapError("No mailbox selected")
        return self.view

    def _settle(self, outcome: Outcome) -> None:
        """This session's side of an Outcome's new state (the core's is `conn.finish`):
        the user who logged in, the mailbox selected, or the selected mailbox left (its
        saved search and subscription with it)."""
        match outcome.state:
            case Selected():
                assert outcome.selection is not None, "Selected without a selection"
                self.mailbox = outcome.selection.mailbox
                self.view = outcome.selection.view
                self.saved_search = []
                self.contexts.clear()  # RFC 5267 §4.3: updates cease with the mailbox
            case Authenticated() if outcome.user is not None:
                self.user = outcome.user
            case Authenticated():  # CLOSE, UNSELECT, a failed SELECT (RFC 3501 §6.3.1)
                self.subscription.watch(mailboxes=frozenset(), topics=frozenset())
                self.subscription.drain()
                self.mailbox = None
                self.view = None
                self.saved_search = []
                self.contexts.clear()

    async def _greet(self) -> None:
        """The greeting (its own frame: the capability string is not kept by `run`'s frame
        for the life of the connection)."""
        caps = " ".join(self.capabilities())
        await self._write([UntaggedStatus("OK", "imapd ready", f"CAPABILITY {caps}")])

    @property
    def goodbye(self) -> str | None:
        """The BYE text when the session must end at its next wait: an administrator's
        kick, or shutdown."""
        if self.kicked is not None:
            return self.kicked
        return "Server shutting down" if self.server.shutting_down else None

    def kick(self, text: str) -> None:
        """``imapd kick``: BYE with ``text`` and close, at once when the session waits
        for input, else once its command finished (as shutdown does)."""
        self.kicked = text
        if not self.busy and self.task is not None:
            self.task.cancel()

    # --- the loop ----------------------------------------------------------------------
    async def run(self) -> None:
        how = tls.describe(self.writer)
        log.info(
            "session %s: connect from %s (%s)",
            self.id,
            self.peer,
            f"{self.service} {how}" if how else self.service,
        )
        try:
            await self._greet()
            while not self.closing:
                data = await self._read()
                self.last_input = time.monotonic()
                if data is None:
                    break
                self.conn.receive_data(data)
                await self._process_events()
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            log.info("session %s: connection lost: %s", self.id, exc)
        finally:
            await self._close()

    def _deadline(self) -> tuple[float, str]:
        """When the session ends if no command completes before (loop time), and its BYE."""
        if self.user is None:
            return self._login_deadline, "Autologout; no login in time"
        return self._last_command + self.config.idle_timeout, "Autologout; idle for too long"

    async def _read(self) -> bytes | None:
        """Client bytes, or None when the session must end (EOF handled via the core)."""
        deadline, why_late = self._deadline()
        if self.conn.in_literal:  # a stalled upload ends sooner: it holds a spool file
            stalled = asyncio.get_running_loop().time() + self.config.literal_timeout
            if stalled < deadline:
                deadline, why_late = stalled, "Autologout; literal upload stalled"
        if self.idle_tag is not None or self.notify.active:  # RFC 5465 §3.1: at any time
            return await self.listening.wait(deadline, why_late)
        if (why := self.goodbye) is not None:
            await self._bye(why)
            return None
        try:
            async with asyncio.timeout_at(deadline):
                data = await self._idle(self._recv())
        except TimeoutError:
            await self._bye(why_late)
            return None
        return None if data is GONE else data

    async def _idle(self, waiting: Awaitable[T]) -> T | Literal[Gone.GONE]:
        """Await ``waiting`` with the session idle, so that `kick` and shutdown may cancel
        the wait: then BYE with their text and `GONE` (the one place a cancelled wait says
        goodbye). Other cancellations propagate."""
        self.busy = False
        try:
            return await waiting
        except asyncio.CancelledError:
            if (why := self.goodbye) is not None:
                await self._bye(why)
                return GONE
            raise
        finally:
            self.busy = True

    async def _recv(self) -> bytes:
        """The next client bytes, inflated once COMPRESS is on; ``b""`` at EOF.

        Inflating is bounded three ways (issue 14: 1.5 MB of deflated NOOPs burned 36 s of
        CPU): at most READ_SIZE octets per call, a turn of the event loop before each
        chunk taken from the unconsumed tail (other sessions run in between, as they do
        between socket reads), and ``limits.max_inflate_ratio``: past that many inflated
        octets per received one (plus 64 KiB), BYE."""
        inflate = self._inflate
        if inflate is None:
            return await self.reader.read(READ_SIZE)
        while True:
            if inflate.unconsumed_tail:
                await asyncio.sleep(0)
                data = inflate.unconsumed_tail
            else:
                data = await self.reader.read(READ_SIZE)
            if not data:
                return b""
            try:
                out = inflate.decompress(data, READ_SIZE)  # bounded: no inflation bomb
            except zlib.error as exc:
                raise ConnectionError(f"bad DEFLATE data: {exc}") from None
            self._deflated_in += len(data) - len(inflate.unconsumed_tail)  # consumed
            self._inflated_in += len(out)
            ratio = self.config.limits.max_inflate_ratio
            if ratio and self._inflated_in > ratio * self._deflated_in + INFLATE_SLACK:
                log.warning(
                    "session %s: COMPRESS limit: %d octets inflated from %d (ratio"
                    " limit %d), disconnecting %s",
                    self.id,
                    self._inflated_in,
                    self._deflated_in,
                    ratio,
                    self.peer,
                )
                await self._bye("Compression ratio limit exceeded")
                return b""
            if out:
                return out

    def start_compression(self) -> None:
        """RFC 4978 §3: deflate both ways from the octet after COMPRESS's tagged OK."""
        self._deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        self._inflate = zlib.decompressobj(-15)
        pending = self.conn.take_buffered_data()
        if pending:
            try:
                out = self._inflate.decompress(pending, READ_SIZE)
            except zlib.error as exc:
                raise ConnectionError(f"bad DEFLATE data: {exc}") from None
            self._deflated_in += len(pending) - len(self._inflate.unconsumed_tail)
            self._inflated_in += len(out)
            self.conn.receive_data(out)

    async def start_tls(self) -> None:
        """RFC 3501 §6.2.1: the handshake starts right after STARTTLS's tagged OK (written
        and drained). Pipelined plaintext is dropped; afterwards the state is fresh (a new
        core: not authenticated, no BAD count, no UTF8=ACCEPT) and CAPABILITY changes."""
        assert self.server.tls is not None
        dropped = self.conn.take_buffered_data()
        if dropped:
            log.warning(
                "session %s: %d bytes pipelined after STARTTLS dropped (injection?)",
                self.id,
                len(dropped),
            )
        # No await between the last drain and the handover below: plaintext that arrives
        # meanwhile stays in the old reader, which is never read again.
        plain = self.writer
        try:
            self.reader, self.writer = await tls.upgrade(
                plain.transport,
                self.server.tls.context,
                handshake_timeout=min(self.config.login_timeout, TLS_HANDSHAKE_TIMEOUT),
                limit=2**20,
            )
        except (OSError, TimeoutError) as exc:
            log.info(
                "session %s: STARTTLS handshake failed: %s", self.id, exc or type(exc).__name__
            )
            self.closing = True
            plain.transport.abort()
            return
        self._plain_writer = plain
        self.tls = True
        self.conn = ServerConnection(self.config.limits)
        self.enabled.clear()
        self.waiting = self._resume = None
        log.info("session %s: STARTTLS %s", self.id, tls.describe(self.writer))

    async def _process_events(self) -> None:
        slice_end = time.monotonic() + TIME_SLICE
        while not self.closing:
            if time.monotonic() > slice_end:
                await asyncio.sleep(0)  # let the other sessions run (see TIME_SLICE)
                slice_end = time.monotonic() + TIME_SLICE
            event = self.conn.next_event()
            if event is NEED_DATA:
                return
            match event:
                case ContinueRequest(text=text):
                    await self._write([Continuation(text)])
                    self._quick_ack()
                case Rejected(reply=reply):
                    await self._write([reply])
                    # A line other than DONE ends IDLE with a BAD for its tag (RFC 2177);
                    # a malformed SASL line ends the AUTHENTICATE exchange the same way.
                    if self.waiting is not None and reply.tag == self.waiting.tag:
                        self.waiting = self._resume = None
                case Fatal(reply=reply):
                    await self._write([reply])
                    self.closing = True
                case ConnectionClosed():
                    self.closing = True
                case IdleDone():
                    await self._finish_idle()
                    self._command_done()
                case SaslResponse(data=data):
                    await self._finish_sasl(data)
                    self._command_done()
                case LiteralChunk():
                    self._spool_chunk(event)
                    continue
                case _:
                    self._command_done()  # a command that runs long is no idleness
                    if self._spool_error is None:
                        await self._dispatch(event)
                    else:
                        await self._write(
                            [
                                Tagged(
                                    event.tag,
                                    "NO",
                                    f"Cannot keep the message: {self._spool_error.strerror}",
                                    "UNAVAILABLE",
                                )
                            ]
                        )
                    self._command_done()
            if not isinstance(event, ContinueRequest):
                self._drop_spools()  # the command they belonged to is over

    def _command_done(self) -> None:
        """A complete command arrived or finished: the idle timer restarts (RFC 3501 §5.4)."""
        self._last_command = asyncio.get_running_loop().time()

    # --- big literals: spool files ---------------------------------------------------------
    def _spool_chunk(self, chunk: LiteralChunk) -> None:
        """Write a big literal's octets to its spool file; a failure (disk full) is kept
        for the command's answer, and the rest of the literal is read and dropped."""
        if self._spool_error is not None:
            return
        try:
            if chunk.first:
                self._spools.append(spool.Spool(self.config.data_dir / spool.SPOOL_DIR, chunk.size))
            self._spools[-1].write(chunk.data)
        except OSError as exc:
            log.warning(
                "session %s: cannot spool a literal of %d octets: %s", self.id, chunk.size, exc
            )
            self._spool_error = exc

    def spooled(self, literal: SpooledLiteral) -> Path:
        """The file holding a big literal of the command being handled."""
        held = self._spools[literal.index]
        assert held.complete and held.size == literal.size
        return held.path

    def _drop_spools(self) -> None:
        spools, self._spools = self._spools, []
        self._spool_error = None
        for held in spools:
            held.remove()

    # --- dispatch ----------------------------------------------------------------------
    async def _dispatch(self, cmd: c.Command) -> None:
        handler: Callable[[Session, c.Command], Awaitable[Outcome]] = HANDLERS[type(cmd)]
        if "UIDONLY" in self.enabled:  # RFC 9586 §3: BAD [UIDREQUIRED] (commands/rev2.py)
            handler = uidonly_guard(handler)
        fanout = self.server.fanout
        fanout.commands += 1  # the fan-out leaves it room (imapd/fanout.py, "The writer first")
        try:
            outcome = await self._run(cmd, handler(self, cmd))
            if outcome is not None:
                await self._finish(cmd, outcome)
        finally:
            fanout.commands -= 1

    async def _run(self, cmd: c.Command, call: Awaitable[Outcome]) -> Outcome | None:
        """A handler's Outcome, or the refusal or ``NO [SERVERBUG]`` its exception means
        (the one place exceptions become replies); None after a BYE."""
        try:
            return await call
        except ConnectionFatal as exc:
            await self._bye(exc.text)
            return None
        except (ImapError, StoreError) as exc:
            return refusal(exc)
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("session %s: internal error in %s", self.id, type(cmd).__name__)
            return Outcome(text="Internal error", status="NO", code="SERVERBUG")

    async def _finish(self, cmd: c.Command, outcome: Outcome) -> None:
        """Apply ``outcome`` (here and through ``conn.finish``, the one door) and write
        the command's answer, with the updates owed before its tagged reply."""
        self._settle(outcome)
        if self.user is not None and not self.session_logged:
            await self._session_event("login")
        if outcome.mode is not None:  # IDLE, a SASL exchange: "+", then the client's line
            self.waiting = cmd
            self._resume = outcome.resume
            await self._write(self.conn.finish(cmd, outcome))
            return
        last: list[Response] = []  # a stream's last batch goes out with the tagged reply
        if (stream := outcome.stream) is not None:
            last = list(outcome.responses)
            async for batch in stream:
                await self._write(last)
                last = batch
            ending = stream.ending or outcome  # e.g. FETCH's NO [EXPUNGEISSUED]
            outcome = dataclasses.replace(
                outcome,
                text=ending.text,
                status=ending.status,
                code=ending.code,
                responses=[],
                stream=None,
            )
        updates = await self.listening.collect(allow_expunge=expunge_allowed_after(cmd))
        await self._write([*last, *self.conn.finish(cmd, outcome, updates)])
        match outcome.after:
            case After.COMPRESS if outcome.status == "OK":
                self.start_compression()
            case After.STARTTLS if outcome.status == "OK":
                await self.start_tls()
        if isinstance(self.conn.state, Logout):
            self.closing = True

    async def _finish_idle(self) -> None:
        cmd, self.waiting, self._resume = self.waiting, None, None
        if cmd is not None:
            await self._finish(cmd, Outcome(text="IDLE terminated"))

    async def _finish_sasl(self, data: Secret | None) -> None:
        cmd, resume = self.waiting, self._resume
        self.waiting = self._resume = None
        if cmd is None or resume is None:
            return
        outcome = await self._run(cmd, resume(self, data))
        if outcome is not None:
            await self._finish(cmd, outcome)

    def _quick_ack(self) -> None:
        """ACK the literal at once (Linux TCP_QUICKACK). Clients such as imaplib write a
        literal and its closing CRLF separately; with Nagle on their side and delayed ACK
        on ours, the CRLF would wait ~40 ms for every APPEND."""
        sock = self.writer.get_extra_info("socket")
        option = getattr(socket, "TCP_QUICKACK", None)
        if sock is not None and option is not None and sock.family != socket.AF_UNIX:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, option, 1)

    # --- output ------------------------------------------------------------------------
    def _encode(self, responses: list[Response]) -> bytes:
        data = self.conn.send(responses)
        if self._deflate is not None:
            data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        return data

    async def _write(self, responses: list[Response]) -> None:
        if not responses or self.writer.is_closing():
            return
        pieces = self.conn.send_pieces(responses)
        if len(pieces) == 1 and len(pieces[0]) <= WRITE_CHUNK:  # the common case
            data = pieces[0]
            if self._deflate is not None:
                data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
            if self._held:
                data = b"".join([*self._held, data])
                self._held.clear()
            self.writer.write(data)
            await self._drain()
            return
        # A big FETCH: its literals uncopied (`serialize_pieces`), written in slices, each
        # drained, so neither we nor the transport hold another copy of the rest.
        if self._held:
            self.writer.write(b"".join(self._held))
            self._held.clear()
        transport = self.writer.transport
        for piece in pieces:
            view = memoryview(piece)
            for start in range(0, len(view), WRITE_CHUNK):
                part = view[start : start + WRITE_CHUNK]
                self.writer.write(part if self._deflate is None else self._deflate.compress(part))
                if transport.get_write_buffer_size() > WRITE_CHUNK or transport.is_closing():
                    await self._drain()  # raises once the connection is lost
        if self._deflate is not None:
            self.writer.write(self._deflate.flush(zlib.Z_SYNC_FLUSH))
        await self._drain()

    async def _drain(self) -> None:
        """``writer.drain()``, bounded: a client that makes no progress reading what is
        pending for it (the transport's buffer does not shrink) for ``write_timeout``
        seconds is cut off, and what it held is freed. Raises `WriteStalled` then."""
        transport = self.writer.transport
        last = transport.get_write_buffer_size()
        if last <= transport.get_write_buffer_limits()[0]:
            # At or below the low-water mark the transport has resumed writing: drain does
            # not wait (the common case; a timer costs more than the rest of a small write).
            await self.writer.drain()
            return
        limit = self.config.write_timeout
        loop = asyncio.get_running_loop()
        since = loop.time()
        last = self._unsent()
        while True:
            try:
                async with asyncio.timeout(limit / 4):
                    await self.writer.drain()
                return
            except TimeoutError:
                size = self._unsent()
                if size < last:  # the client read some: progress
                    since = loop.time()
                last = size
                if loop.time() - since >= limit:
                    break
        who = self.user.name if self.user else "-"
        log.warning(
            "session %s: write timeout: client %s user %s read nothing of %d pending"
            " octets for %g s; closing",
            self.id,
            self.peer,
            who,
            last,
            limit,
        )
        self.closing = True
        transport.abort()
        raise WriteStalled(f"no progress writing for {limit:g} s")

    def _unsent(self) -> int:
        """Octets written and not yet taken by the client: the transport's buffer, and on
        Linux the kernel's send queue (SIOCOUTQ). The kernel wakes a writer only once much
        of a multi-megabyte send buffer is free, so the transport's buffer alone stands
        still for seconds while a slow client reads."""
        size = self.writer.transport.get_write_buffer_size()
        sock = self.writer.get_extra_info("socket")
        if sock is not None and _SIOCOUTQ is not None and sock.family != socket.AF_UNIX:
            try:
                out = fcntl.ioctl(sock.fileno(), _SIOCOUTQ, b"\0\0\0\0")
            except OSError as exc:  # a socket already closed: no queue to count
                log.debug("session %s: SIOCOUTQ: %s", self.id, exc)
            else:
                size += int.from_bytes(out, sys.byteorder, signed=True)
        return size

    def _push(self, responses: list[Response]) -> None:
        """Unsolicited responses, written with the other sessions' at the end of this turn
        of the event loop (`imapd.server.PushBatch`)."""
        if self.writer.is_closing():
            return
        if not self._held:
            self.server.push_batch.hold(self)
        self._held.append(self._encode(responses))

    def push_data(self, data: bytes) -> None:
        """`_push` for responses already serialized (imapd/pushshare.py: shared bytes),
        written at once: the fan-out's loop makes the writes back to back by itself."""
        transport = self.writer.transport
        if transport.is_closing():
            return
        if self._deflate is not None:
            data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        if self._held:  # after what this turn already holds for it
            self._held.append(data)
        else:
            transport.write(data)

    def release_held(self) -> None:
        """Write what `_push` held (`imapd.server.PushBatch`; or before closing)."""
        if self._held:
            data = b"".join(self._held)
            self._held.clear()
            if not self.writer.is_closing():
                self.writer.write(data)

    async def _bye(self, text: str) -> None:
        self.closing = True
        with contextlib.suppress(ConnectionError):
            await self._write([UntaggedStatus("BYE", text)])

    async def _close(self) -> None:
        self.closing = True
        if self._spools:  # a connection lost mid-upload
            log.info(
                "session %s: upload of %d octets abandoned, spool removed",
                self.id,
                sum(s.written for s in self._spools),
            )
            self._drop_spools()
        self.release_held()
        self.subscription.close()
        self.notify.stop()  # RFC 5465 §3.1: a registration ends with its connection
        self.server.forget(self)
        try:
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)
        except OSError as exc:  # ConnectionError, TimeoutError, ssl.SSLError
            log.debug("session %s: close: %s", self.id, exc)
            self.writer.transport.abort()  # e.g. a TLS peer that never sends close_notify
        if self.session_logged:
            await self._session_event("logout")
        who = self.user.name if self.user else "-"
        log.info("session %s: disconnect %s %s", self.id, who, self.peer)

    async def _session_event(self, kind: str) -> None:
        """Login/Logout into the outbox (RFC 5423 §4.4) before the tagged OK, when the
        server sends events; a Logout also when the client just goes away."""
        self.session_logged = kind == "login"
        if not self.server.session_events or self.user is None:
            return
        local = self.writer.get_extra_info("sockname")
        server = f"{local[0]}:{local[1]}" if isinstance(local, tuple) else None
        try:
            await self.store.record_session_event(self.user.name, kind, self.origin, server)
        except Exception as exc:  # noqa: BLE001 - the store closing under a late logout
            log.warning("session %s: %s event not recorded: %s", self.id, kind, exc)


def _is_loopback(host: str) -> bool:
    return host.startswith(("127.", "::ffff:127.")) or host in {"::1", "localhost"}


__all__ = ["NotAuthenticated", "Session"]
