"""The roles a cluster runs once per store (imapd/cluster/node.py), built from what the
configuration turns on: each a start and a stop over the `Server`'s own attributes, so the
rest of the server (shutdown, ``stats``) finds the sink where it always did. The bus routes
changes to whichever sink is running through `Cluster._to_sinks`, not through listeners added
here (the bus has no removal)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from imapd.cluster.node import Role
from store import calendar

if TYPE_CHECKING:
    from imapd.server import Server

Step = Callable[[], Awaitable[None]]

log = logging.getLogger("imapd.cluster")


def roles(server: Server) -> list[Role]:
    config = server.config
    out: list[Role] = []
    if config.notify_socket:
        out.append(
            Role("events-socket", _socket_start(server), _socket_stop(server), ("notifysocket",))
        )
    if config.event_notifier == "jetstream":
        out.append(
            Role(
                "events-jetstream",
                _jetstream_start(server),
                _jetstream_stop(server),
                ("jetstream",),
            )
        )
    if config.expire_interval > 0:
        out.append(Role("expire", _expire_start(server), _expire_stop(server)))
    if calendar.available():
        out.append(Role("calendar-alarms", _alarms_start(server), _alarms_stop(server)))
    return out


def _socket_start(server: Server) -> Step:
    async def start() -> None:
        from imapd.server import event_format
        from notify.sink import NotifySink

        config = server.config
        assert config.notify_socket is not None
        policy, fmt = event_format(config)
        sink = NotifySink(
            server.store,
            config.notify_socket,
            method=config.event_notifier,
            policy=policy,
            fmt=fmt,
            backlog_max=config.event_backlog_max,
        )
        await sink.start()
        server.sink = sink
        log.info("events to %s (method %s)", config.notify_socket, config.event_notifier)

    return start


def _socket_stop(server: Server) -> Step:
    async def stop() -> None:
        sink, server.sink = server.sink, None
        if sink is not None:
            await sink.stop()

    return stop


def _jetstream_start(server: Server) -> Step:
    async def start() -> None:
        from imapd.jetstream import start_in_server

        server.jetstream = await start_in_server(server, listen=False)

    return start


def _jetstream_stop(server: Server) -> Step:
    async def stop() -> None:
        sink, server.jetstream = server.jetstream, None
        if sink is not None:
            await sink.stop()

    return stop


def _expire_start(server: Server) -> Step:
    async def start() -> None:
        server._expiry = asyncio.create_task(server._expire_periodically(), name="expire")

    return start


def _expire_stop(server: Server) -> Step:
    async def stop() -> None:
        task, server._expiry = server._expiry, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)

    return stop


def _alarms_start(server: Server) -> Step:
    async def start() -> None:
        from imapd.alarms import AlarmScheduler

        server.alarms = AlarmScheduler(
            server.store, server.clock, server.config.calendar_alarm_lookback
        )
        server._alarm_task = asyncio.create_task(server.alarms.run(), name="calendar-alarms")

    return start


def _alarms_stop(server: Server) -> Step:
    async def stop() -> None:
        task, server._alarm_task = server._alarm_task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)

    return stop
