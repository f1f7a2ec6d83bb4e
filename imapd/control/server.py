"""The control socket's server side: `ControlServer`, started by `imapd.server.Server`.

Must not import imapd.session or the command handlers: it sees sessions only through the
attributes `who` reports. The protocol is described in imapd/control/wire.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imapd.control.unix import bind, open_unix
from imapd.control.wire import (
    KICK_TEXT,
    KICK_WAIT,
    MAX_LINE,
    Changed,
    Kick,
    ProtocolError,
    Stats,
    Subscribe,
    Who,
    encode,
    error,
    parse_request,
)

if TYPE_CHECKING:
    from imapd.server import Server
    from store.changes import Change

log = logging.getLogger("imapd.control")


def session_info(session: Any, now: float | None = None) -> dict[str, object]:
    """What ``who`` reports of a session (imapd.session.Session, duck-typed)."""
    now = time.monotonic() if now is None else now
    user = session.user.name if session.user is not None else None
    mailbox = session.mailbox.name if session.mailbox is not None else None
    since: dt.datetime = session.connected_at
    return {
        "id": session.id,
        "user": user,
        "peer": session.peer,
        "service": session.service,
        "mailbox": mailbox,
        "since": since.isoformat(timespec="seconds"),
        "idle": round(max(0.0, now - session.last_input), 1),
        "idling": session.idle_tag is not None,
        "tls": session.tls,
        "client": session.client_id,  # RFC 2971 ID's name and version, None if not sent
    }


class ControlServer:
    """Serves the control socket of one `Server`: ``changed``, ``who``, ``kick`` and the
    publish notices of ``subscribe``."""

    def __init__(self, server: Server, path: Path) -> None:
        self.server = server
        self.path = path
        self._listener: asyncio.base_events.Server | None = None
        self._inode: int | None = None
        self._seq = 0  # the last seq published (as the bus reported it)
        self._subscribers: set[asyncio.Event] = set()
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self) -> bool:
        """Listen at ``path``; False (and a warning) when another live server has it."""
        from imapd.cluster.supervisor import in_worker, inherited  # docs/workers.md

        if (sock := inherited("control")) is not None:  # the supervisor's; it unlinks it
            self._listener = await asyncio.start_unix_server(
                self._client, sock=sock, limit=MAX_LINE
            )
            self._seq = await self.server.store.change_log_head()
            self.server.bus.add_listener(self.published)
            return True
        if in_worker():  # another server had the path when the supervisor started
            return False
        if self.path.exists() or self.path.is_symlink():
            try:
                _, writer = await open_unix(self.path)
            except OSError:
                pass  # stale: a server that was killed; replaced atomically below
            else:
                writer.close()
                log.warning(
                    "control socket %s belongs to another running server: no admin"
                    " socket for this one (imapd who/kick, prompt CLI changes)",
                    self.path,
                )
                return False
        sock = bind(self.path)
        self._inode = os.stat(self.path).st_ino
        self._listener = await asyncio.start_unix_server(self._client, sock=sock, limit=MAX_LINE)
        self._seq = await self.server.store.change_log_head()
        self.server.bus.add_listener(self.published)
        log.info("control socket %s", self.path)
        return True

    async def close(self) -> None:
        if self._listener is None:
            return
        self._listener.close()
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.wait(self._clients, timeout=1.0)
        with contextlib.suppress(OSError):
            if self._inode is not None and os.stat(self.path).st_ino == self._inode:  # ours
                os.unlink(self.path)
        self._listener = None

    def published(self, changes: Sequence[Change]) -> None:
        """The bus listener (never blocks): ring every subscriber."""
        if changes:
            self._seq = max(self._seq, changes[-1].seq)
            for bell in self._subscribers:
                bell.set()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # over MAX_LINE (asyncio's LimitOverrunError)
                    writer.write(encode(error("line too long")))
                    break
                if not line:
                    break
                try:
                    req = parse_request(line)
                except ProtocolError as exc:
                    writer.write(encode(error(str(exc))))
                    await writer.drain()
                    continue
                if isinstance(req, Subscribe):
                    await self._subscription(reader, writer)
                    break
                writer.write(encode(await self.answer(req)))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # closing
        except Exception:
            log.exception("control socket: request failed")
        finally:
            self._clients.discard(task)
            writer.close()

    async def answer(self, req: Changed | Who | Kick | Stats) -> dict[str, object]:
        match req:
            case Changed():
                published = await self.server.store.publish_foreign()
                return {"ok": True, "seq": published}
            case Who():
                now = time.monotonic()
                sessions = sorted(self.server.sessions, key=lambda s: s.connected_at)
                described = [session_info(s, now) for s in sessions]
                if self.server.cluster is not None:  # the other instances' (docs/workers.md)
                    described = await self.server.cluster.who(described)
                return {"ok": True, "sessions": described}
            case Stats():
                cache = self.server.auth_cache
                return {
                    "ok": True,
                    "auth_cache": cache.stats().as_dict() if cache is not None else None,
                }
            case Kick(session=session_id, user=user):
                chosen = [
                    s
                    for s in self.server.sessions
                    if (
                        s.id == session_id
                        if session_id is not None
                        else s.user is not None and s.user.name == user
                    )
                ]
                for s in chosen:
                    s.kick(KICK_TEXT)
                elsewhere: list[str] = []
                if self.server.cluster is not None:  # the other instances' (docs/workers.md)
                    elsewhere = await self.server.cluster.request_kick(session_id, user)
                tasks = {s.task for s in chosen if s.task is not None}
                if tasks:
                    await asyncio.wait(tasks, timeout=KICK_WAIT)
                if chosen and self.server.cluster is not None:
                    await self.server.cluster.beat()  # the registry forgets them now
                if elsewhere:
                    from imapd.cluster.admin import wait_gone

                    await wait_gone(self.server.store, elsewhere, KICK_WAIT)
                return {"ok": True, "kicked": [s.id for s in chosen] + elsewhere}

    async def _subscription(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Push the last published seq after each publish until the client hangs up."""
        bell = asyncio.Event()
        self._subscribers.add(bell)
        gone = asyncio.ensure_future(reader.read(1))  # any byte or EOF ends it
        try:
            writer.write(encode({"ok": True, "seq": self._seq}))
            await writer.drain()
            while True:
                ring = asyncio.ensure_future(bell.wait())
                done, _ = await asyncio.wait({ring, gone}, return_when=asyncio.FIRST_COMPLETED)
                ring.cancel()
                if gone in done:
                    return
                bell.clear()
                writer.write(encode({"seq": self._seq}))
                await writer.drain()
        finally:
            self._subscribers.discard(bell)
            gone.cancel()
