"""Listeners, one task per connection, the event loop choice and graceful shutdown.

Owns: wiring (store + bus + sessions), the capability list, accepting connections, and the
SIGTERM/SIGINT drain: stop accepting, let in-flight commands finish, BYE the rest, close the
store, cancel what remains after ``shutdown_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import TYPE_CHECKING

from imapd.config import Config
from notify.bus import EventBus
from store.sqlite import SqliteStore

if TYPE_CHECKING:
    from imapd.session import Session

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
    "UNSELECT",
    "CHILDREN",
    "UIDPLUS",
    "MOVE",
    "SPECIAL-USE",
    "CREATE-SPECIAL-USE",
    "MULTIAPPEND",
)


class Server:
    def __init__(self, config: Config, store: SqliteStore, bus: EventBus) -> None:
        self.config = config
        self.store = store
        self.bus = bus
        self.sessions: set[Session] = set()
        self.shutting_down = False
        self._servers: list[asyncio.base_events.Server] = []
        self._stopped = asyncio.Event()

    @classmethod
    async def create(cls, config: Config) -> Server:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        bus = EventBus()
        store = await SqliteStore.open(
            config.db_path,
            bus.publish,
            synchronous=config.sqlite_synchronous,
            scrypt_n=config.scrypt_n,
        )
        return cls(config, store, bus)

    def capabilities(self, session: Session) -> list[str]:
        caps = list(BASE_CAPABILITIES)
        if session.user is None:
            if session.plaintext_allowed:
                caps.append("AUTH=PLAIN")
            else:
                caps.append("LOGINDISABLED")
        return caps

    async def start(self) -> list[tuple[str, int]]:
        host, port = self.config.listen
        server = await asyncio.start_server(self._accept, host, port, limit=2**20)
        self._servers.append(server)
        addresses = [s.getsockname()[:2] for s in server.sockets]
        for addr in addresses:
            log.info("listening on %s:%s (imap)", addr[0], addr[1])
        return addresses

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from imapd.session import Session

        if self.shutting_down:
            writer.close()
            return
        session = Session(self, reader, writer)
        session.task = asyncio.current_task()
        self.sessions.add(session)
        await session.run()

    def forget(self, session: Session) -> None:
        self.sessions.discard(session)

    async def shutdown(self) -> None:
        """Stop accepting, let in-flight commands finish, BYE everyone, close the store."""
        if self.shutting_down:
            return
        self.shutting_down = True
        log.info("shutting down: %d sessions", len(self.sessions))
        for server in self._servers:
            server.close()
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
        await self.store.close()
        self._stopped.set()

    async def serve_forever(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(self.shutdown()))
        await self._stopped.wait()


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
