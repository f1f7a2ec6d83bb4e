"""The control socket's client side, the CLI's: `request`, `notify_changed`, `Subscription`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from imapd.control.unix import open_unix, socket_path
from imapd.control.wire import (
    CLIENT_TIMEOUT,
    KICK_WAIT,
    Changed,
    Kick,
    ProtocolError,
    Stats,
    Subscribe,
    Who,
    encode,
    request_object,
)

log = logging.getLogger("imapd.control")


class NoServer(Exception):
    """No server listens on the control socket (none running, or a stale socket file)."""


async def request(data_dir: Path, req: Changed | Who | Kick | Stats) -> dict[str, Any]:
    """One request, its answer (within `CLIENT_TIMEOUT`; a kick waits up to `KICK_WAIT`
    more). Raises NoServer, TimeoutError, ProtocolError."""
    try:
        reader, writer = await open_unix(socket_path(data_dir))
    except OSError as exc:  # FileNotFoundError, ConnectionRefusedError, PermissionError
        raise NoServer(str(exc)) from None
    try:
        writer.write(encode(request_object(req)))
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), CLIENT_TIMEOUT + KICK_WAIT)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return _answer(line)


def _answer(line: bytes) -> dict[str, Any]:
    if not line:
        raise ProtocolError("the server closed the control connection")
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("expected a JSON object")
    return data


async def notify_changed(data_dir: Path) -> int | None:
    """Tell a running server that this process committed; returns the seq it published up
    to, or None when no server runs (or it did not answer: it catches up with its next
    write anyway). Never raises for an absent or odd server: the commit stands."""
    from imapd.cluster.wake import broadcast  # --workers: every worker (docs/workers.md)

    broadcast(data_dir)
    try:
        answer = await request(data_dir, Changed())
    except NoServer:
        return None
    except (OSError, TimeoutError, ProtocolError) as exc:
        log.warning("control socket: the server was not told of the change: %s", exc)
        return None
    seq = answer.get("seq")
    return seq if isinstance(seq, int) else None


class Subscription:
    """The client side of ``subscribe``: `next` waits for the next publish notice."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seq: int
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.seq = seq

    @classmethod
    async def open(cls, data_dir: Path) -> Subscription:
        """Raises NoServer."""
        try:
            reader, writer = await open_unix(socket_path(data_dir))
        except OSError as exc:
            raise NoServer(str(exc)) from None
        try:
            writer.write(encode(request_object(Subscribe())))
            await writer.drain()
            first = _answer(await asyncio.wait_for(reader.readline(), CLIENT_TIMEOUT))
        except (OSError, TimeoutError, ProtocolError) as exc:
            writer.close()
            raise NoServer(str(exc)) from None
        return cls(reader, writer, int(first.get("seq", 0)))

    async def next(self) -> int | None:
        """The seq of the next publish notice; None when the server went away."""
        try:
            line = await self._reader.readline()
            if not line:
                return None
            self.seq = int(_answer(line)["seq"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return self.seq

    def close(self) -> None:
        self._writer.close()
