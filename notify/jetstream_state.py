"""Where the JetStream sink (notify/jetstream.py) keeps its cursor, and its health signal.

Owns: the `Cursor` protocol with its two homes (`StoreCursor`: the store's ``event_cursors``,
for the server's sink; `FileCursor`: a state file, for ``imapd notifyd --method jetstream``)
and `Health`, the state logged on each change and written as JSON to the status file
(docs/jetstream.md "Health signal"). Must not import imapd.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from notify.follow import Position, StateFile, start_of

if TYPE_CHECKING:
    from notify.jetstream import JetStreamSink

log = logging.getLogger("imapd.notify.jetstream")

CURSOR_NAME = "jetstream"


class Cursor(Protocol):
    """Where the last acknowledged position is kept."""

    async def load(self) -> Position | None: ...

    async def save(self, position: Position) -> None: ...


class CursorStore(Protocol):
    async def event_cursor(self, name: str) -> int | None: ...

    async def set_event_cursor(self, name: str, seq: int) -> None: ...


class StoreCursor:
    """The server's sink: ``event_cursors`` (the seq of the last complete change; an event
    inside a change is found again from the stream's last message id)."""

    def __init__(self, store: CursorStore, name: str = CURSOR_NAME) -> None:
        self.store = store
        self.name = name

    async def load(self) -> Position | None:
        seq = await self.store.event_cursor(self.name)
        return None if seq is None else Position(seq, -1, complete=True)

    async def save(self, position: Position) -> None:
        await self.store.set_event_cursor(self.name, start_of(position))


class FileCursor:
    """``imapd notifyd --method jetstream``: a state file (notify/follow.py `StateFile`)."""

    def __init__(self, path: str | Path) -> None:
        self.file = StateFile(path)

    async def load(self) -> Position | None:
        return await asyncio.to_thread(self.file.load)

    async def save(self, position: Position) -> None:
        await asyncio.to_thread(self.file.save, position)


class Health:
    """The health signal: the state (``connecting``, ``ok``, ``disconnected``, ``refused``,
    ``stopped``), since when, the last error, counters; logged on each change and written as
    JSON to ``path`` (replaced atomically) when one is given."""

    def __init__(self, path: str | Path | None, *, url: str, stream: str) -> None:
        self.path = Path(path) if path is not None else None
        self.url = url
        self.stream = stream
        self.state = "connecting"
        self.error: str | None = None
        self.since = time.time()

    def snapshot(self, sink: JetStreamSink) -> dict[str, object]:
        pos = sink.position
        return {
            "state": self.state,
            "since": round(self.since, 3),
            "error": self.error,
            "url": self.url,
            "stream": self.stream,
            "published": sink.published,
            "duplicates": sink.duplicates,
            "dropped": sink.dropped,
            "resyncs": sink.resyncs,
            "cpu_seconds": round(sink.cpu.seconds, 4),
            "acked": None if pos is None else {"seq": pos.seq, "index": pos.index},
        }

    async def set(self, sink: JetStreamSink, state: str, error: str | None = None) -> None:
        if state == self.state and error == self.error:
            return
        previous, self.state, self.error, self.since = self.state, state, error, time.time()
        match state:
            case "ok":
                log.info(
                    "jetstream: %s stream %s: publishing (was %s)", self.url, self.stream, previous
                )
            case "disconnected":
                log.warning(
                    "jetstream: %s unavailable (%s); events wait in the outbox", self.url, error
                )
            case "refused":
                log.warning(
                    "jetstream: stream %s refuses messages: %s; events wait in the "
                    "outbox, retried one at a time with back-off",
                    self.stream,
                    error,
                )
            case _:
                log.info("jetstream: %s", state)
        await self.write(sink)

    async def write(self, sink: JetStreamSink) -> None:
        if self.path is None:
            return
        text = json.dumps(self.snapshot(sink)) + "\n"
        path = self.path
        try:
            await asyncio.to_thread(_replace_file, path, text)
        except OSError as exc:
            log.warning("jetstream: status file %s not written: %s", path, exc)


def _replace_file(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
