"""One client connection's life: read bytes, feed the sans-IO core, dispatch, write.

Owns: the asyncio side of a session (reads with timeouts, writes with drain, IDLE waits on
client bytes or a change to report, shutdown), the dispatcher that turns exceptions into
tagged replies, and the session state handlers use (user, selected view, enabled
extensions). Parsing and serialising belong to `imapd.protocol`; store access to handlers.

Implementation notes:
- Commands run strictly one after another, in the order received (pipelining keeps order).
- Changes arrive from the bus into ``self.subscription`` at any await; they are applied to
  the SelectedView and flushed only between commands or while idling, per RFC 3501 §7.4.1.
- A session never writes to its socket while holding the store's writer lock: handlers
  return values; writes happen here, after the store call returned.
- Only `_dispatch` turns exceptions into replies; unexpected ones are logged with the
  session id and the client gets ``NO [SERVERBUG]``.
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
from typing import TYPE_CHECKING

from imapd import spool, tls
from imapd.commands import HANDLERS
from imapd.commands.base import Outcome
from imapd.commands.notify import new_message_fetches, notify_updates
from imapd.limits import TLS_HANDSHAKE_TIMEOUT, address_key
from imapd.notify_session import NotifyState
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
from imapd.protocol.responses import Continuation, Response, Tagged, Untagged, UntaggedStatus
from imapd.protocol.state import Authenticated, NotAuthenticated, Selected
from imapd.protocol.values import FetchAtt, SpooledLiteral
from imapd.selected import SelectedView
from notify.cyrus import new_session_id
from store.api import MailboxInfo, User
from store.changes import MessageFacts, MessagesAdded, Origin
from store.errors import StoreError

if TYPE_CHECKING:
    from imapd.server import Server

log = logging.getLogger("imapd.session")

READ_SIZE = 65536
#: A session whose pushed bytes pile up past this in the transport (a client that does not
#: read) waits for them to drain before it renders more (NOTIFY overflows before: RFC 5465 §5.8).
PUSH_DRAIN_AT = 256 * 1024
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
        self.user: User | None = None
        self.view: SelectedView | None = None
        self.mailbox: MailboxInfo | None = None
        self.enabled: set[str] = set()
        self.saved_search: list[int] = []
        self.idle_tag: str | None = None
        self.pending_auth: c.Authenticate | None = None
        self.closing = False
        self.busy = False
        self.task: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None  # `_read_idling`'s current wait
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

    def capabilities(self) -> list[str]:
        return self.server.capabilities(self)

    @property
    def compressing(self) -> bool:
        return self._deflate is not None

    def require_user(self) -> User:
        if self.user is None:
            raise ImapError("Not authenticated")
        return self.user

    def require_view(self) -> SelectedView:
        if self.view is None or self.mailbox is None:
            raise ImapError("No mailbox selected")
        return self.view

    def enter_selected(self, mailbox: MailboxInfo, view: SelectedView) -> None:
        user = self.require_user()
        self.mailbox = mailbox
        self.view = view
        self.conn.set_state(Selected(user.name, mailbox.name, view.readonly))

    def leave_selected(self) -> None:
        user = self.require_user()
        self.mailbox = None
        self.view = None
        self.saved_search = []
        self.subscription.watch(mailboxes=frozenset())
        self.subscription.drain()
        self.conn.set_state(Authenticated(user.name))

    def logged_in(self, user: User) -> None:
        self.user = user
        self.conn.set_state(Authenticated(user.name))
        log.info("session %s: login %s from %s", self.id, user.name, self.peer)

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
        log.info("session %s: connect from %s (%s)", self.id, self.peer,
                 f"{self.service} {how}" if how else self.service)
        try:
            caps = " ".join(self.capabilities())
            await self._write([UntaggedStatus("OK", "imapd ready", f"CAPABILITY {caps}")])
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
            return await self._read_idling(deadline, why_late)
        self.busy = False
        try:
            if (why := self.goodbye) is not None:
                await self._bye(why)
                return None
            async with asyncio.timeout_at(deadline):
                data = await self._recv()
        except TimeoutError:
            await self._bye(why_late)
            return None
        except asyncio.CancelledError:
            if (why := self.goodbye) is not None:
                await self._bye(why)
                return None
            raise
        finally:
            self.busy = True
        return data

    async def _read_idling(self, deadline: float, why_late: str) -> bytes | None:
        """IDLE (RFC 2177): whichever comes first, client bytes or a change to report.

        One read task and one timer for the whole wait; each wake-up is a single future,
        resolved by the read's completion, the timer, or a delivery to a subscription whose
        ``waker`` is set (`_ring`): no task per wake, whatever the number of listeners."""
        loop = asyncio.get_running_loop()
        timed_out = False

        def expire() -> None:
            nonlocal timed_out
            timed_out = True
            self._ring()

        read = asyncio.ensure_future(self._recv())
        read.add_done_callback(self._ring)
        timer = loop.call_at(deadline, expire)
        try:
            while True:
                await self._push_updates()
                if self.closing:
                    return None
                if (why := self.goodbye) is not None:  # kicked while flushing
                    await self._bye(why)
                    return None
                if not read.done() and not timed_out and not self._arm_bells():
                    wake: asyncio.Future[None] = loop.create_future()
                    self._wake = wake
                    self.busy = False
                    try:
                        await wake
                    except asyncio.CancelledError:
                        if (why := self.goodbye) is not None:
                            await self._bye(why)
                            return None
                        raise
                    finally:
                        self.busy = True
                        self._wake = None
                if read.done():
                    return read.result()
                if timed_out:
                    await self._bye(why_late)
                    return None
        finally:
            timer.cancel()
            self._disarm_bells()
            if not read.done():
                read.cancel()

    def _ring(self, *_: object) -> None:
        """Wake `_read_idling` (from a subscription's delivery, the read or the timer)."""
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _arm_bells(self) -> bool:
        """Point the subscriptions worth waking for at `_ring`: the selected mailbox's
        (plain IDLE, or a NOTIFY selected group) and the NOTIFY queue's. True when one of
        them already holds something (then there is no need to wait)."""
        ringing = False
        sub = self.subscription
        if (self.idle_tag is not None and not self.notify.active) or self.notify.selected_push:
            sub.waker = self._ring
            ringing = sub.ringing
        else:
            sub.waker = None
        nsub = self.notify.sub
        if nsub is not None:
            nsub.waker = self._ring
            ringing = ringing or nsub.ringing
        return ringing

    def _disarm_bells(self) -> None:
        self.subscription.waker = None
        if self.notify.sub is not None:
            self.notify.sub.waker = None

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
                log.warning("session %s: COMPRESS limit: %d octets inflated from %d (ratio"
                            " limit %d), disconnecting %s", self.id, self._inflated_in,
                            self._deflated_in, ratio, self.peer)
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
            log.warning("session %s: %d bytes pipelined after STARTTLS dropped (injection?)",
                        self.id, len(dropped))
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
            log.info("session %s: STARTTLS handshake failed: %s", self.id,
                     exc or type(exc).__name__)
            self.closing = True
            plain.transport.abort()
            return
        self._plain_writer = plain
        self.tls = True
        self.conn = ServerConnection(self.config.limits)
        self.enabled.clear()
        self.pending_auth = None
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
                    if self.pending_auth is not None and reply.tag == self.pending_auth.tag:
                        self.pending_auth = None
                    if reply.tag == self.idle_tag:
                        self.idle_tag = None
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
                        await self._write([Tagged(event.tag, "NO", "Cannot keep the message:"
                                                  f" {self._spool_error.strerror}",
                                                  "UNAVAILABLE")])
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
                self._spools.append(spool.Spool(self.config.data_dir / spool.SPOOL_DIR,
                                                chunk.size))
            self._spools[-1].write(chunk.data)
        except OSError as exc:
            log.warning("session %s: cannot spool a literal of %d octets: %s",
                        self.id, chunk.size, exc)
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
        try:
            outcome = await handler(self, cmd)
        except ConnectionFatal as exc:
            await self._bye(exc.text)
            return
        except ImapError as exc:
            outcome = Outcome(text=exc.text, status=exc.status, code=exc.code)
        except StoreError as exc:
            outcome = Outcome(text=exc.text, status="NO", code=exc.code)
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("session %s: internal error in %s", self.id, type(cmd).__name__)
            outcome = Outcome(text="Internal error", status="NO", code="SERVERBUG")
        if self.user is not None and not self.session_logged:
            await self._session_event("login")
        if isinstance(cmd, c.Idle) and outcome.status == "OK":
            self.idle_tag = cmd.tag
            self.conn.start_idle(cmd.tag)
            await self._write([*outcome.responses, Continuation("idling")])
            return
        if isinstance(cmd, c.Authenticate) and outcome.status == "OK" and self.user is None:
            # A SASL exchange goes on: the handler asked for the client's response.
            self.pending_auth = cmd
            self.conn.start_sasl(cmd.tag)
            await self._write([*outcome.responses, Continuation("")])
            return
        if outcome.stream is not None:
            await self._write(outcome.responses)
            async for batch in outcome.stream:
                await self._write(batch)
            outcome.responses = []
        allow_expunge = not (
            isinstance(cmd, c.Fetch | c.Store | c.Search) and not cmd.uid
        )
        updates = await self._collect_updates(allow_expunge=allow_expunge)
        # A new keyword's FLAGS goes before the command's own responses that use it.
        first = [u for u in updates if _is_flags(u)]
        rest = [u for u in updates if not _is_flags(u)]
        tagged = Tagged(cmd.tag, outcome.status, _tagged_text(cmd, outcome), outcome.code)
        if isinstance(cmd, c.Logout):  # nothing after its BYE (RFC 3501 §6.1.3, §7.1.5)
            first, rest = [*first, *rest], []
        await self._write([*first, *outcome.responses, *rest, tagged])
        if isinstance(cmd, c.Compress) and outcome.status == "OK":
            self.start_compression()
        if isinstance(cmd, c.StartTLS) and outcome.status == "OK":
            await self.start_tls()
        if isinstance(cmd, c.Logout) and outcome.status == "OK":
            self.closing = True

    async def _finish_idle(self) -> None:
        tag = self.idle_tag or "*"
        self.idle_tag = None
        updates = await self._collect_updates(allow_expunge=True)
        await self._write([*updates, Tagged(tag, "OK", "IDLE terminated")])

    async def _finish_sasl(self, data: object) -> None:
        from imapd.commands.auth import finish_authenticate

        cmd = self.pending_auth
        self.pending_auth = None
        if cmd is None:
            return
        try:
            outcome = await finish_authenticate(self, cmd, data)
        except ImapError as exc:
            outcome = Outcome(text=exc.text, status=exc.status, code=exc.code)
        except StoreError as exc:
            outcome = Outcome(text=exc.text, status="NO", code=exc.code)
        if self.user is not None and not self.session_logged:
            await self._session_event("login")
        await self._write(
            [*outcome.responses, Tagged(cmd.tag, outcome.status, outcome.text, outcome.code)]
        )

    # --- updates from other sessions -----------------------------------------------------
    async def _collect_updates(self, *, allow_expunge: bool) -> list[Response]:
        """What goes out before a tagged reply: the selected mailbox's updates, then the
        NOTIFY ones (RFC 5465 §3.1: at any time, so at the end of every command too)."""
        updates = await self._collect_selected(allow_expunge=allow_expunge)
        if self.notify.active and not self.closing:
            updates += await notify_updates(self)
        return updates

    async def _push_updates(self) -> None:
        """While waiting for client bytes (IDLE, or any time under NOTIFY): what may go out
        unasked. Under NOTIFY exactly the registered events (RFC 5465 §4): the selected
        mailbox's only as its selected group asks (no flag FETCH without FlagChange; no
        EXPUNGE outside IDLE for selected-delayed, §6.1.2), the rest from the NOTIFY queue."""
        reg = self.notify.registration
        updates: list[Response] = []
        if reg is None:
            if self.idle_tag is None:
                return
            updates = await self._collect_updates(allow_expunge=True)  # plain IDLE
        else:
            if reg.selected:
                updates += await self._collect_selected(
                    allow_expunge=self.idle_tag is not None or not reg.delayed,
                    allow_flags="FlagChange" in reg.selected,
                )
            updates += await notify_updates(self)
        if updates:
            self._push(updates)
            if self.writer.transport.get_write_buffer_size() > PUSH_DRAIN_AT:
                await self._drain()  # a client that does not read: wait, never grow

    async def _collect_selected(
        self, *, allow_expunge: bool, allow_flags: bool = True
    ) -> list[Response]:
        view = self.view
        changes = self.subscription.drain()
        if self.subscription.overflow and view is not None:
            await self._bye("Too many changes queued for this session")
            return []
        if view is None:
            return []
        fresh: list[int] = []
        claim: list[int] = []
        facts: dict[int, MessageFacts] = {}  # NOTIFY MessageNew's FETCH (RFC 5465 §5.2)
        for change in changes:
            own = change.origin.session == self.id
            view.apply(change, own=own)
            added = _added_uids(change, view.mailbox_id)
            if added:
                fresh += added
                if own or not self._origin_claims(change.origin.session, view.mailbox_id):
                    claim += added
            if self.notify_fetch_atts and not own and isinstance(change, MessagesAdded):
                facts.update((m.uid, m) for m in change.messages)  # not own: RFC 5465 §5.2
        if claim and not view.readonly:
            claimed = await self.store.claim_recent(view.mailbox_id, claim)
            view.recent.update(claimed)
        updates = view.flush_counts(allow_expunge=allow_expunge, allow_flags=allow_flags)
        new = [u for u in fresh if u in facts and view.seq_of(u) is not None]
        if new and self.notify.selected_push:
            first, last = await new_message_fetches(self, view, new, facts)
            return [*updates, *first, *view.flush_flags(allow_flags), *last]  # RFC 5465 §5.2
        return updates + view.flush_flags(allow_flags)

    def _origin_claims(self, origin: str | None, mailbox_id: int) -> bool:
        """\\Recent for messages another session added to the mailbox it has selected
        read-write is that session's (it reports them at the end of the very command that
        added them), however soon the listeners wake up."""
        other = self.server.sessions_by_id.get(origin) if origin else None
        view = other.view if other is not None else None
        return view is not None and view.mailbox_id == mailbox_id and not view.readonly

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
        log.warning("session %s: write timeout: client %s user %s read nothing of %d pending"
                    " octets for %g s; closing", self.id, self.peer, who, last, limit)
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
            log.info("session %s: upload of %d octets abandoned, spool removed", self.id,
                     sum(s.written for s in self._spools))
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


def _added_uids(change: object, mailbox_id: int) -> list[int]:
    if isinstance(change, MessagesAdded) and change.mailbox.id == mailbox_id:
        return [m.uid for m in change.messages]
    return []


def _is_flags(response: Response) -> bool:
    return isinstance(response, Untagged) and response.items[:1] == ("FLAGS",)


def _tagged_text(cmd: c.Command, outcome: Outcome) -> str:
    if outcome.status != "OK" or outcome.text != "completed":
        return outcome.text
    return f"{type(cmd).__name__.upper()} completed"


def _is_loopback(host: str) -> bool:
    return host.startswith(("127.", "::ffff:127.")) or host in {"::1", "localhost"}


__all__ = ["NotAuthenticated", "Session"]
