"""One serving process's part in a cluster of processes on one store (docs/workers.md).

Owns: `Cluster`, started by `imapd.server.Server` when ``config.cluster`` is on (always under
``--workers N``): the heartbeat (store/cluster.py `cluster_beat`) that keeps this instance
alive, renews or takes the leases of the roles below and publishes the session registry;
the roles themselves (started when their lease is won, stopped when it is lost); kick
requests from any instance or the CLI; and, on SQLite, the wake channel
(imapd/cluster/wake.py) through which a commit by any process is published by all of them
at once.

Roles (each runs in exactly one instance of the store at a time):
- ``events-socket``: the notify socket sink (notify/sink.py), when ``notify_socket`` is set;
- ``events-jetstream``: the JetStream sink (imapd/jetstream.py), ``event_notifier = "jetstream"``;
- ``calendar-alarms``: the alarm scheduler (imapd/alarms.py; its firings are changes);
- ``expire``: the ``expire_interval`` timer.

Takeover: a holder that dies stops renewing; after at most the lease time plus one beat
another instance wins the lease and starts the role, which resumes from its persisted cursor
(event_cursors). What the dead holder sent after its last saved cursor is sent again: the
at-least-once window of each sink, now also across a takeover (JetStream drops those
repeats by Nats-Msg-Id). A holder that cannot renew (the store unavailable) stops its roles
at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imapd.cluster.wake import COMMITTED, KICK, Wake
from store.cluster import Beat, ClusterSession, KickRequest
from store.errors import StoreError

if TYPE_CHECKING:
    from imapd.server import Server
    from store.changes import Change

log = logging.getLogger("imapd.cluster")

#: Heartbeats per lease time: a holder renews three times before its lease could expire.
BEATS_PER_LEASE = 3


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    start: Callable[[], Awaitable[None]]
    stop: Callable[[], Awaitable[None]]
    #: event_cursors rows to create at the log's end before accepting (first start only).
    cursors: tuple[str, ...] = ()


def instance_id() -> str:
    """host/pid/random: unique among live processes, also across machines (PostgreSQL)."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(2)}"


class Cluster:
    def __init__(self, server: Server, *, lease_time: float) -> None:
        self.server = server
        self.store = server.store
        self.instance = instance_id()
        self.started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.lease_time = lease_time
        self.roles: dict[str, Role] = {r.name: r for r in _roles(server)}
        self.held: set[str] = set()
        #: session id -> (user, client) as registered
        self.registered: dict[str, tuple[str | None, str | None]] = {}
        self.kick_cursor = 0
        self.wake: Wake | None = None
        self._beat_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._catching_up: asyncio.Task[None] | None = None
        self._again = False
        self._closing = False
        self.beats = 0

    # --- life ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Before the listeners: cursors created, the wake channel open, the first beat
        (roles won start now), then a beat every lease_time / BEATS_PER_LEASE."""
        store = self.store
        head = await store.change_log_head()
        for role in self.roles.values():
            for name in role.cursors:
                if await store.event_cursor(name) is None:
                    await store.set_event_cursor(name, head)
        self.kick_cursor = await store.cluster_kick_head()
        if hasattr(store, "on_commit"):  # SQLite: the wake directory (PostgreSQL: LISTEN)
            self.wake = Wake(self.server.config.data_dir, self.instance, self._woken)
            self.wake.open()
            store.on_commit = self.wake.committed
        elif hasattr(store, "on_kick"):  # PostgreSQL: kick requests NOTIFY imapd_kicks
            store.on_kick = lambda: self._woken({KICK})
        # Whoever routes the bus's changes to a role started later (notify/bus.py has no
        # removal): forwarders that find the role's current object, or nothing.
        self.server.bus.add_listener(self._to_sinks)
        await self.beat()
        self._task = asyncio.create_task(self._run(), name="cluster-beat")
        log.info(
            "cluster instance %s: lease %.1f s, holding %s",
            self.instance,
            self.lease_time,
            ", ".join(sorted(self.held)) or "no role",
        )

    async def close(self) -> None:
        """Stop the roles, leave the cluster (others take the roles over at once)."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=1.0)
        for name in sorted(self.held):
            await self._stop(name)
        self.held.clear()
        if hasattr(self.store, "on_commit"):
            self.store.on_commit = None
        try:
            await self.store.cluster_leave(self.instance)
        except Exception as exc:  # noqa: BLE001 - the others see the heartbeat expire instead
            log.warning("cluster: leaving not recorded: %s", exc)
        if self.wake is not None:
            self.wake.send(COMMITTED)  # whatever the last commits were: the others read on
            self.wake.close()

    async def _run(self) -> None:
        period = self.lease_time / BEATS_PER_LEASE
        while True:
            await asyncio.sleep(period)
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Not renewed: our leases may pass to another instance, so stop our roles
                # now rather than risk running them twice; the next beat tries again.
                level = logging.WARNING if isinstance(exc, StoreError) else logging.ERROR
                log.log(level, "cluster heartbeat failed: %s", exc, exc_info=level > 30)
                for name in sorted(self.held):
                    await self._stop(name)
                self.held.clear()

    async def beat(self) -> None:
        async with self._beat_lock:
            if self._closing:
                return
            live = {s.id: s for s in self.server.sessions}
            adds = tuple(
                _registry_row(self.instance, s)
                for sid, s in live.items()
                if self.registered.get(sid) != (_user(s), _client(s))
            )
            drops = tuple(sid for sid in self.registered if sid not in live)
            result = await self.store.cluster_beat(
                Beat(
                    instance=self.instance,
                    pid=os.getpid(),
                    started=self.started,
                    ttl=self.lease_time,
                    want=tuple(self.roles),
                    add_sessions=adds,
                    drop_sessions=drops,
                    kicks_after=self.kick_cursor,
                )
            )
            self.beats += 1
            for sid in drops:
                self.registered.pop(sid, None)
            for row in adds:
                self.registered[row.session] = (row.user, row.client)
            if result.gone:
                log.info("cluster: instances gone (no heartbeat): %s", ", ".join(result.gone))
            if self.wake is not None:
                self.wake.refresh()
            won, lost = result.held - self.held, self.held - result.held
            for name in sorted(lost):
                log.warning("cluster: lease %s lost", name)
                self.held.discard(name)
                await self._stop(name)
            for name in sorted(won):
                self.held.add(name)
                log.info("cluster: lease %s taken by %s", name, self.instance)
                await self._start(name)
            self._apply_kicks(result.kicks, "at a beat")

    async def _start(self, name: str) -> None:
        try:
            await self.roles[name].start()
        except Exception:
            log.exception("cluster: role %s did not start; releasing it", name)
            self.held.discard(name)
            with contextlib.suppress(Exception):
                await self.store.cluster_beat(
                    Beat(self.instance, os.getpid(), self.started, self.lease_time, release=(name,))
                )

    async def _stop(self, name: str) -> None:
        try:
            await self.roles[name].stop()
        except Exception:
            log.exception("cluster: role %s did not stop cleanly", name)

    def _to_sinks(self, changes: Sequence[Change]) -> None:
        if self.server.sink is not None:
            self.server.sink.wake(changes)
        if self.server.jetstream is not None:
            self.server.jetstream.wake(changes)
        if self.server.alarms is not None and "calendar-alarms" in self.held:
            self.server.alarms.wake(changes)

    # --- the wake channel and kicks -------------------------------------------------------
    def _woken(self, kinds: set[bytes]) -> None:
        if COMMITTED in kinds:
            self._catch_up()
        if KICK in kinds:
            task = asyncio.ensure_future(self._read_kicks())
            task.add_done_callback(_log_failure)

    def _catch_up(self) -> None:
        """Publish what the others committed; one catch-up at a time, another right after
        if a wake-up came meanwhile (it reads to the end of the log, so one is enough)."""
        if self._catching_up is not None and not self._catching_up.done():
            self._again = True
            return
        self._catching_up = asyncio.ensure_future(self._publish_foreign())
        self._catching_up.add_done_callback(_log_failure)

    async def _publish_foreign(self) -> None:
        while True:
            self._again = False
            await self.store.publish_foreign()
            if not self._again:
                return

    async def _read_kicks(self) -> None:
        self._apply_kicks(tuple(await self.store.cluster_kicks(self.kick_cursor)), "woken")

    def _apply_kicks(self, kicks: Sequence[KickRequest], how: str) -> list[str]:
        """End the sessions ``kicks`` name; ``how`` the requests were read ("woken" by the
        wake channel or a NOTIFY, or "at a beat"), logged for operators and tests."""
        from imapd.control.wire import KICK_TEXT

        kicked: list[str] = []
        for req in kicks:
            if req.id <= self.kick_cursor:
                continue
            self.kick_cursor = req.id
            kicked += _kick_local(self.server, req.session, req.user, KICK_TEXT)
        if kicked:
            log.info("cluster: kicked %s (%s)", ", ".join(kicked), how)
            task = asyncio.ensure_future(self._after_kick(kicked))
            task.add_done_callback(_log_failure)
        return kicked

    async def _after_kick(self, kicked: list[str]) -> None:
        """Once the kicked sessions are gone, a beat: the registry says so at once (the
        instance that asked waits for that, `imapd.cluster.admin.wait_gone`)."""
        from imapd.control.wire import KICK_WAIT

        tasks = {s.task for s in self.server.sessions if s.id in kicked and s.task is not None}
        if tasks:
            await asyncio.wait(tasks, timeout=KICK_WAIT)
        await self.beat()

    # --- who and kick for the control socket ---------------------------------------------
    async def who(self, local: list[dict[str, object]]) -> list[dict[str, object]]:
        """This process's sessions as the control socket describes them, then the
        registry's sessions of the other instances (fewer details: id, user, peer,
        service, since, instance)."""
        out = [{**entry, "instance": self.instance} for entry in local]
        for row in await self.store.cluster_sessions():
            if row.instance != self.instance:
                out.append(registry_entry(row))
        return out

    async def request_kick(self, session: str | None, user: str | None) -> list[str]:
        """Ask the other instances to kick too; return the registry's matching sessions
        of other instances (those they will end)."""
        rows = [
            r
            for r in await self.store.cluster_sessions()
            if r.instance != self.instance
            and (r.session == session if session is not None else r.user == user)
        ]
        if not rows:
            return []
        await self.store.request_kick(session=session, user=user)
        if self.wake is not None:
            self.wake.send(KICK)
        return [r.session for r in rows]


def registry_entry(row: ClusterSession) -> dict[str, object]:
    """A registry row as ``who`` describes a session; what only the session's own process
    knows (mailbox, idle time, TLS) is null/false."""
    return {
        "id": row.session,
        "user": row.user,
        "peer": row.peer,
        "service": row.service,
        "mailbox": None,
        "since": row.started,
        "idle": None,
        "idling": False,
        "tls": False,
        "instance": row.instance,
        "client": row.client,
    }


def _user(session: object) -> str | None:
    user = getattr(session, "user", None)
    return None if user is None else str(user.name)


def _client(session: object) -> str | None:
    client = getattr(session, "client_id", None)
    return None if client is None else str(client)


def _registry_row(instance: str, session: object) -> ClusterSession:
    since: dt.datetime = getattr(session, "connected_at")  # noqa: B009 - duck-typed Session
    return ClusterSession(
        session=str(getattr(session, "id")),  # noqa: B009
        instance=instance,
        user=_user(session),
        peer=str(getattr(session, "peer")),  # noqa: B009
        service=str(getattr(session, "service")),  # noqa: B009
        started=since.isoformat(timespec="seconds"),
        client=_client(session),
    )


def _kick_local(server: Server, session: str | None, user: str | None, text: str) -> list[str]:
    chosen = [
        s for s in server.sessions if (s.id == session if session is not None else _user(s) == user)
    ]
    for s in chosen:
        s.kick(text)
    return [s.id for s in chosen]


def _log_failure(task: asyncio.Future[None]) -> None:
    if task.cancelled():
        return
    if (exc := task.exception()) is not None:
        log.warning("cluster: catching up failed: %s", exc)


def _roles(server: Server) -> list[Role]:
    from imapd.cluster.roles import roles

    return roles(server)
