"""Listeners, one task per connection, the event loop choice and graceful shutdown.

Owns: wiring (store + bus + sessions), the capability list, accepting connections (plain on
``listen``, implicit TLS on ``listen_tls``), SIGHUP (reload the TLS certificate for new
connections), and the SIGTERM/SIGINT drain: stop accepting, let in-flight commands finish,
BYE the rest, close the store, cancel what remains after ``shutdown_timeout``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import functools
import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from imapd import rev2, spool, tls
from imapd.alarms import AlarmScheduler, ManualClock, SystemClock
from imapd.auth_guard import AuthGuard
from imapd.cluster.supervisor import in_worker, listen_on, shared_counts
from imapd.config import Config
from imapd.control import ControlServer
from imapd.control import socket_path as control_socket_path
from imapd.daemon import SESSION_ID
from imapd.fanout import Fanout
from imapd.fetch import prerender
from imapd.limits import (
    TLS_HANDSHAKE_TIMEOUT,
    Admission,
    address_key,
    connection_budget,
    raise_nofile_limit,
)
from imapd.lmtp.server import LmtpServer
from imapd.session import Session
from notify.bus import EventBus
from notify.cyrus import Format, Renderer
from notify.events import Policy
from notify.sink import NotifySink
from store import calendar
from store.api import Store
from store.authcache import AuthCache
from store.errors import Unavailable
from store.open import open_store, private_dir

if TYPE_CHECKING:
    from imapd.cluster import Cluster
    from notify.jetstream import JetStreamSink

log = logging.getLogger("imapd.server")

#: Extensions advertised before and after login (several clients decide from the greeting).
BASE_CAPABILITIES = (
    "IMAP4rev1",
    "LITERAL+",
    "SASL-IR",
    "ID",
    "ENABLE",
    "IDLE",
    "NAMESPACE",
    "ACL",  # RFC 4314 (imapd/commands/acl.py)
    "RIGHTS=texk",  # RFC 4314 §5.1.1: the rights beyond RFC 2086's
    "UNSELECT",
    "CHILDREN",
    "UIDPLUS",
    "MOVE",
    "REPLACE",  # RFC 8508 (imapd/commands/replace.py)
    "SPECIAL-USE",
    "CREATE-SPECIAL-USE",
    "MULTIAPPEND",
    "CATENATE",  # RFC 4469 (imapd/commands/catenate.py)
    "URLAUTH",  # RFC 4467 (imapd/commands/urlauth.py)
    "URLAUTH=BINARY",  # RFC 5524 (imapd/urlfetch_binary.py)
    "CONDSTORE",  # RFC 7162
    "QRESYNC",
    "ESEARCH",  # RFC 4731
    "SEARCHRES",  # RFC 5182
    "SAVEDATE",  # RFC 8514: the store keeps the date a message was added to its mailbox
    "WITHIN",  # RFC 5032: SEARCH OLDER / YOUNGER against INTERNALDATE
    "LIST-EXTENDED",  # RFC 5258
    "LIST-STATUS",  # RFC 5819
    "LIST-MYRIGHTS",  # RFC 8440: LIST ... RETURN (MYRIGHTS)
    "SORT",  # RFC 5256 (imapd/commands/sort.py, store/sortthread/)
    "SORT=DISPLAY",  # RFC 5957
    "ESORT",  # RFC 5267 §3
    "THREAD=ORDEREDSUBJECT",  # RFC 5256
    "THREAD=REFERENCES",
    "CONTEXT=SEARCH",  # RFC 5267 §4 (imapd/rfc5267.py, docs/context.md)
    "CONTEXT=SORT",
    "NOTIFY",  # RFC 5465 (imapd/commands/notify.py)
    "METADATA",  # RFC 5464: mailbox and server annotations
    "METADATA-SERVER",
    "COMPRESS=DEFLATE",  # RFC 4978
    "UTF8=ACCEPT",  # RFC 6855
    "STATUS=SIZE",  # RFC 8438
    "QUOTA",  # RFC 9208: one root per user (imapd/commands/quota.py)
    "QUOTA=RES-STORAGE",
    "QUOTA=RES-MESSAGE",
    "QUOTASET",
    "OBJECTID",  # RFC 8474: MAILBOXID, EMAILID, THREADID (NIL) (imapd/objectid.py)
    "BINARY",  # RFC 3516 (imapd/fetch_binary.py, store/mime/transfer.py)
    "PREVIEW",  # RFC 8970 (store/mime/preview.py; stored per contents row)
)


class PushBatch:
    """Unsolicited responses that sessions rendered in one turn of the event loop, written
    back to back at its end.

    One commit wakes every listener of a mailbox at once. Writing each session's bytes as
    soon as they are rendered interleaves a thousand socket writes with the rendering, and
    each write then wakes the reading side on its own: the same writes made together cost
    half as much (``scripts/bench notify``). A session's bytes stay in order: whatever it
    holds goes out before anything it writes directly (`Session._write`)."""

    def __init__(self) -> None:
        self._sessions: list[Session] = []

    def hold(self, session: Session) -> None:
        """``session`` has bytes held (`Session._push`): write them at the end of this turn."""
        if not self._sessions:
            asyncio.get_running_loop().call_soon(self._release)
        self._sessions.append(session)

    def _release(self) -> None:
        sessions, self._sessions = self._sessions, []
        for session in sessions:
            try:
                session.release_held()
            except Exception:  # one broken transport must not keep the others' bytes
                log.exception("session %s: pushed responses not written", session.id)


def _slim_stream(writer: asyncio.StreamWriter) -> None:
    """asyncio's stream protocol keeps its drain waiters (at most one per session: its
    writes are sequential) in a deque, 760 bytes each even when empty, per connection
    (issue 17, memory): a list (56) does the same there (append, remove, iterate)."""
    protocol = getattr(writer, "_protocol", None)
    waiters = getattr(protocol, "_drain_waiters", None)
    if isinstance(waiters, collections.deque) and not waiters:
        protocol._drain_waiters = []  # type: ignore[union-attr]


class Server:
    def __init__(self, config: Config, store: Store, bus: EventBus) -> None:
        self.config = config
        self.store = store
        self.bus = bus
        self.sessions: set[Session] = set()
        #: The same sessions by id (a change's ``Origin.session``).
        self.sessions_by_id: dict[str, Session] = {}
        #: Pushed responses of many sessions, written together at the end of a loop turn.
        self.push_batch = PushBatch()
        #: Listeners a commit rang, pushed in one loop (imapd/fanout.py, issue 17).
        self.fanout = Fanout()
        bus.add_listener(self.fanout.observe)
        self.shutting_down = False
        self._servers: list[asyncio.base_events.Server] = []
        self._stopped = asyncio.Event()
        self.lmtp: LmtpServer | None = None  # LMTP delivery when config.lmtp is set
        self._expiry: asyncio.Task[None] | None = None  # the expire_interval timer
        #: Calendar alarms (imapd/alarms.py): the clock (a ManualClock under
        #: calendar_test_clock), the scheduler and its task when the [calendar] extra is in.
        self.clock: SystemClock | ManualClock = SystemClock()
        self.alarms: AlarmScheduler | None = None
        self._alarm_task: asyncio.Task[None] | None = None
        self.sink: NotifySink | None = None  # event datagrams when notify_socket is set
        self.jetstream: JetStreamSink | None = None  # event_notifier = "jetstream"
        self.control: ControlServer | None = None  # DATA_DIR/control.sock (imapd/control/)
        #: Sessions log Login/Logout into the outbox only when someone will read them.
        self.session_events = False
        #: The certificate when tls_cert_file is set: STARTTLS, and ``listen_tls``.
        self.tls: tls.ServerTls | None = None
        self.tls_addresses: list[tuple[str, int]] = []
        #: Called when shutdown begins (the CLI sends systemd STOPPING=1).
        self.on_shutdown: list[Callable[[], object]] = []
        #: Connection limits (imapd/limits.py); max_connections is checked against the
        #: descriptor limit in `start`.
        self.admission = Admission(
            config.max_connections,
            config.max_connections_per_ip,
            config.max_connections_per_user_ip,
        )
        #: Every LOGIN/AUTHENTICATE verification (imapd/auth_guard.py).
        self.auth_guard = AuthGuard(config.auth_failure_delay, config.auth_failure_delay_max)
        #: The store's authentication cache (store/authcache.py), None when off.
        self.auth_cache: AuthCache | None = None
        #: Several processes on the store (imapd/cluster/, docs/workers.md), None when off.
        self.cluster: Cluster | None = None

    @classmethod
    async def create(cls, config: Config) -> Server:
        private_dir(config.data_dir)  # 0700 when new (store/open.py)
        bus = EventBus()
        clock: SystemClock | ManualClock = SystemClock()
        if config.calendar_test_clock is not None:  # tests only (imapd/config.py)
            clock = ManualClock(dt.datetime.fromisoformat(config.calendar_test_clock))
        auth_cache = AuthCache.configured(config.auth_cache_ttl, config.auth_cache_size)
        store = await open_store(
            config.db_path,
            bus.publish,
            synchronous=config.sqlite_synchronous,
            scrypt_n=config.scrypt_n,
            check=config.startup_check,
            clock=clock.now,
            auth_cache=auth_cache,
            prerender=prerender,  # issue 17: FETCH's ENVELOPE/BODYSTRUCTURE made at APPEND
        )
        server = cls(config, store, bus)
        server.clock = clock
        server.auth_cache = auth_cache  # its counters: the control socket's "stats"
        if config.tls_cert_file is not None:
            try:
                server.tls = tls.ServerTls.load(config.tls_cert_file, config.tls_key_file)
            except tls.TlsError:
                await store.close()
                raise
        return server

    def capabilities(self, session: Session, *, authenticated: bool | None = None) -> list[str]:
        """The CAPABILITY list for ``session``; ``authenticated``: as it is (None) or will
        be once logged in (True), for LOGIN's OK (RFC 3501 §7.1)."""
        caps = list(BASE_CAPABILITIES)
        caps[1:1] = rev2.capabilities()  # IMAP4rev2 (behind its flag), UIDONLY: imapd/rev2.py
        caps.append(f"APPENDLIMIT={self.config.limits.max_literal_size}")  # RFC 7889
        if authenticated is None:
            authenticated = session.user is not None
        if not authenticated:
            if self.tls is not None and not session.tls and not session.compressing:
                caps.append("STARTTLS")  # RFC 3501 §6.2.1; RFC 2595 §3.1: not after TLS
            if session.plaintext_allowed:
                caps.append("AUTH=PLAIN")
            else:
                caps.append("LOGINDISABLED")
        elif self.config.aps_topic:
            caps.append("XAPPLEPUSHSERVICE")  # as Cyrus: only with aps_topic, after login
        return caps

    async def start(self) -> list[tuple[str, int]]:
        # Commits of other processes (the CLI) are published too, in commit order; the
        # control socket is how the CLI says it committed, and serves who/kick.
        await self.store.follow_foreign_commits()
        self.admission.shared = shared_counts()  # --workers: limits over all workers
        self._fit_descriptor_limit()
        if not in_worker():  # --workers: the supervisor did, once (docs/workers.md)
            spool.prepare_dir(self.config.data_dir)  # big literals' files (imapd/spool.py)
        control = ControlServer(self, control_socket_path(self.config.data_dir))
        try:
            if await control.start():
                self.control = control
        except OSError as exc:
            log.warning("no control socket (imapd who/kick, prompt CLI changes): %s", exc)
        # --- cluster (docs/workers.md): sinks, alarms and expiry run under leases ---
        if cluster_mode(self.config):
            from imapd.cluster import Cluster

            self.cluster = Cluster(self, lease_time=self.config.cluster_lease_time)
            self.session_events = "access" in self.config.event_groups and bool(
                self.config.notify_socket or self.config.event_notifier == "jetstream"
            )
            await self.cluster.start()  # before accepting, as the sinks below
        # --- end cluster ---
        if self.config.notify_socket and self.cluster is None:  # first cursor: the log's end
            await self._start_sink(self.config.notify_socket)
        if self.config.event_notifier == "jetstream" and self.cluster is None:
            from imapd.jetstream import start_in_server

            self.jetstream = await start_in_server(self)
        host, port = self.config.listen
        where = listen_on("imap", host, port)  # --workers: the supervisor's socket
        server = await asyncio.start_server(self._accept, limit=2**20, **where)
        self._servers.append(server)
        addresses = [s.getsockname()[:2] for s in server.sockets]
        for addr in addresses:
            log.info("listening on %s:%s (imap)", addr[0], addr[1])
        if self.config.listen_tls is not None:
            await self._start_tls_listener(*self.config.listen_tls)
        if self.config.lmtp:
            self.lmtp = LmtpServer(self.config, self.store)
            await self.lmtp.start()
        if self.config.expire_interval > 0 and self.cluster is None:
            self._expiry = asyncio.create_task(self._expire_periodically(), name="expire")
        if calendar.available() and self.cluster is None:  # the [calendar] extra
            self.alarms = AlarmScheduler(
                self.store, self.clock, self.config.calendar_alarm_lookback
            )
            self.bus.add_listener(self.alarms.wake)
            self._alarm_task = asyncio.create_task(self.alarms.run(), name="calendar-alarms")
        return addresses

    def _fit_descriptor_limit(self) -> None:
        """Raise the soft descriptor limit, and keep max_connections below it: accept must
        never fail for want of a descriptor (imapd/limits.py `connection_budget`)."""
        soft, _ = raise_nofile_limit()
        if soft < 0:  # RLIM_INFINITY
            return
        wanted = self.config.max_connections
        budget = connection_budget(wanted, soft)
        if wanted == 0:
            log.info("max_connections: %d, what the descriptor limit (%d) allows", budget, soft)
        elif budget != wanted:
            log.warning(
                "max_connections %d lowered to %d: the descriptor limit is %d"
                " (raise it: LimitNOFILE=, ulimit -n)",
                wanted,
                budget,
                soft,
            )
        if self.admission.shared is not None:  # --workers: total is the whole server's
            self.admission.budget = budget
            return
        self.admission.total = budget

    async def _expire_periodically(self) -> None:
        """Message expiry on a timer (a run at start, then every ``expire_interval``)."""
        while True:
            try:
                count = await self.store.expire()
            except Unavailable as exc:  # a full disk: the store logged it; next run retries
                log.warning("message expiry skipped: %s", exc.text)
            except Exception:
                log.exception("message expiry failed")
            else:
                if count:
                    log.info("expired %d messages", count)
            await asyncio.sleep(self.config.expire_interval)

    async def _start_sink(self, path: str) -> None:
        config = self.config
        policy, fmt = event_format(config)
        self.sink = NotifySink(
            self.store,
            path,
            method=config.event_notifier,
            policy=policy,
            fmt=fmt,
            backlog_max=config.event_backlog_max,
        )
        await self.sink.start()
        self.bus.add_listener(self.sink.wake)
        self.session_events = "access" in config.event_groups
        log.info("events to %s (method %s)", path, config.event_notifier)

    async def _start_tls_listener(self, host: str, port: int) -> None:
        """Implicit TLS (RFC 8314 §3.3): the handshake first, then an ``imaps`` session.
        The listener's context hands each handshake the current one (`ServerTls`)."""
        assert self.tls is not None
        server = await asyncio.start_server(
            functools.partial(self._accept, service="imaps"),
            limit=2**20,
            **listen_on("imaps", host, port),  # --workers: the supervisor's socket
            ssl=self.tls.listener_context,
            # A handshake holds a descriptor before any limit counts it (imapd/limits.py).
            ssl_handshake_timeout=min(self.config.login_timeout, TLS_HANDSHAKE_TIMEOUT),
        )
        self._servers.append(server)
        self.tls_addresses = [s.getsockname()[:2] for s in server.sockets]
        for addr in self.tls_addresses:
            log.info("listening on %s:%s (imaps)", addr[0], addr[1])

    def reload_tls(self) -> None:
        """SIGHUP: read the certificate files again; new connections get them."""
        if self.tls is None:
            log.info("SIGHUP: no TLS certificate configured, nothing to reload")
            return
        self.tls.reload()

    async def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, service: str = "imap"
    ) -> None:
        if self.shutting_down:
            writer.close()
            return
        peer = writer.get_extra_info("peername")
        key = address_key(peer[0] if isinstance(peer, tuple) else str(peer))
        refusal = self.admission.connect(key)
        if refusal is not None:  # told, not dropped (RFC 5530 §3: UNAVAILABLE)
            writer.write(f"* BYE [UNAVAILABLE] {refusal}\r\n".encode())
            writer.close()
            return
        _slim_stream(writer)
        session = Session(self, reader, writer, service=service)
        SESSION_ID.set(session.id)  # this task's log records carry it (JSON logs)
        session.task = asyncio.current_task()
        self.sessions.add(session)
        self.sessions_by_id[session.id] = session
        try:
            await session.run()
        except Exception:
            # A bug escaped the session's own handling: log it where operators (and the
            # test fixtures) look, with the session id; the connection is already gone.
            log.exception("session %s: unhandled error", session.id)
        finally:
            self.admission.disconnect(key)
            if session.user is not None:
                self.admission.logout(session.user.name, key)

    def forget(self, session: Session) -> None:
        self.sessions.discard(session)
        self.sessions_by_id.pop(session.id, None)

    async def shutdown(self) -> None:
        """Stop accepting, let in-flight commands finish, BYE everyone, close the store."""
        if self.shutting_down:
            return
        self.shutting_down = True
        log.info("shutting down: %d sessions", len(self.sessions))
        for hook in self.on_shutdown:
            hook()
        for server in self._servers:
            server.close()
        if self._expiry is not None:
            self._expiry.cancel()
        if self._alarm_task is not None:
            self._alarm_task.cancel()
        lmtp = None
        if self.lmtp is not None:
            lmtp = asyncio.create_task(self.lmtp.close(self.config.shutdown_timeout))
        for session in list(self.sessions):
            if not session.busy and session.task is not None:
                session.task.cancel()
        tasks = {s.task for s in self.sessions if s.task is not None}
        if tasks:
            await asyncio.wait(tasks, timeout=self.config.shutdown_timeout)
        for session in list(self.sessions):
            if session.task is not None:
                session.task.cancel()
        for server in self._servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        if lmtp is not None:
            await lmtp
        if self._expiry is not None:
            await asyncio.wait({self._expiry}, timeout=1.0)
        if self._alarm_task is not None:
            await asyncio.wait({self._alarm_task}, timeout=1.0)
        if self.cluster is not None:  # its roles stop, its leases go to the others at once
            await self.cluster.close()
        if self.sink is not None:
            await self.sink.stop()
        if self.jetstream is not None:
            await self.jetstream.stop()
        if self.control is not None:
            await self.control.close()
        self.admission.episodes.close()
        await self.store.close()
        self._stopped.set()

    def handle_signals(self) -> None:
        """SIGTERM/SIGINT drain the server, SIGHUP reloads TLS (main thread only). Called
        before the server announces itself, so a signal sent as soon as it says it serves is
        a graceful stop, not the default action; `serve_forever` calls it too (idempotent)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(self.shutdown()))
        loop.add_signal_handler(signal.SIGHUP, self.reload_tls)

    async def serve_forever(self) -> None:
        loop = asyncio.get_running_loop()
        self.handle_signals()
        try:
            await self._stopped.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)


def event_format(config: Config) -> tuple[Policy, Format]:
    """The event filter and JSON shape the configuration asks for: the notification sink's,
    and ``imapd events tail``'s (imapd/cli/events.py)."""
    policy = Policy.build(
        config.event_groups, config.event_exclude_flags, config.event_exclude_specialuse
    )
    fmt = Format(
        servername=config.servername,
        extra_params=frozenset(config.event_extra_params),
        content_mode=config.event_content_inclusion_mode,
        content_size=config.event_content_size,
        renderer=_renderer(),
    )
    return policy, fmt


def _renderer() -> Renderer:
    """ENVELOPE and BODYSTRUCTURE text for the Cyrus events, as FETCH would send them."""
    from functools import lru_cache

    from imapd import fetch_wire
    from imapd.fetch import render_bodystructure, render_envelope
    from imapd.protocol.responses import Value
    from imapd.protocol.serializer import serialize_string, serialize_value
    from store.mime import structure_from_json

    parse = lru_cache(maxsize=8)(structure_from_json)  # envelope, then bodystructure

    def text(value: Value) -> str:
        """serialize_value as str, with fast paths for what ENVELOPE/BODYSTRUCTURE hold
        (events are formatted once per change, on the server's loop)."""
        if value is None:
            return "NIL"
        if isinstance(value, tuple | list):
            return "(" + " ".join(map(text, value)) + ")"
        if type(value) is str:  # quoted or literal: the serializer's one choice
            return serialize_string(value, utf8=True).decode("utf-8", "replace")
        return serialize_value(value, utf8=True).decode("utf-8", "replace")

    def envelope(structure: str) -> str | None:
        return text(render_envelope(parse(structure).envelope))

    def bodystructure(structure: str) -> str | None:
        return text(render_bodystructure(parse(structure), extensible=True))

    def from_wire(wire: bytes, item: str) -> str | None:
        """The pre-rendered answer (UTF8=ACCEPT's: raw UTF-8, as ``text`` makes it)."""
        return fetch_wire.piece(wire, item, utf8=True).decode("utf-8", "replace")

    return Renderer(envelope, bodystructure, from_wire)


def install_loop_policy() -> str:
    """uvloop when importable (uvicorn's auto loop), else asyncio's default."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


async def run(config: Config, ready: asyncio.Event | None = None) -> None:
    server = await Server.create(config)
    await server.start()
    if ready is not None:
        ready.set()
    await server.serve_forever()


# --- cluster (docs/workers.md, docs/postgresql.md) ---
def cluster_mode(config: Config) -> bool:
    """Cluster roles and the session registry: with ``--workers`` > 1, when ``cluster`` is
    set, and by default on a PostgreSQL store (several instances may share it: events once
    per store, ``who``/``kick`` across instances); ``cluster = false`` turns it off there."""
    from store.open import store_url

    if config.workers > 1 or config.cluster:
        return True
    return config.cluster is None and store_url() is not None


def unshared_sinks(config: Config) -> str | None:
    """Why ``serve`` refuses to start, or None: ``cluster = false`` on a PostgreSQL store
    with an event sink would send every event once per instance."""
    from store.open import store_url

    if config.cluster is not False or config.workers > 1 or store_url() is None:
        return None
    sinks = [
        n
        for n, on in (
            ("notify_socket", bool(config.notify_socket)),
            ("event_notifier = jetstream", config.event_notifier == "jetstream"),
        )
        if on
    ]
    if not sinks:
        return None
    return (
        f"cluster = false with a PostgreSQL store and {' and '.join(sinks)}: every instance"
        " on the store would send each event; leave cluster unset (on with PostgreSQL)"
    )
