"""The control socket: ``DATA_DIR/control.sock``, how admin commands talk to a running server.

Owns: the line-based JSON protocol (pure: `parse_request`, `encode`, the request values), the
server side (`ControlServer`, started by `imapd.server.Server`) and the client side the CLI
uses (`request`, `notify_changed`, `Subscription`). Must not import imapd.session or the
command handlers: it sees sessions only through the attributes `who` reports.

Protocol: a UNIX stream socket (mode 0600: the data directory's owner only), one JSON object
per line each way, UTF-8, at most `MAX_LINE` octets. Requests carry ``op``:

- ``{"op": "changed"}``: another process committed to the store. The server publishes the
  change_log rows above the last seq it published, in commit order (store
  ``publish_foreign``), then answers ``{"ok": true, "seq": N}`` (N: the last seq published).
- ``{"op": "who"}``: ``{"ok": true, "sessions": [{id, user, peer, service, mailbox, since,
  idle, idling, tls}, ...]}``.
- ``{"op": "kick", "session": ID}`` or ``{"op": "kick", "user": NAME}``: those sessions get
  ``* BYE Disconnected by administrator`` and close; ``{"ok": true, "kicked": [ID, ...]}``
  once they are gone (or after `KICK_WAIT` seconds).
- ``{"op": "subscribe"}``: ``{"ok": true, "seq": N}``, then ``{"seq": N}`` each time the
  server publishes changes up to seq N (its own commits and caught-up foreign ones;
  coalesced: a slow reader gets only the latest N). The CLI's ``events tail --follow``.

Errors: ``{"ok": false, "error": TEXT}``; a malformed line is answered so and the
connection stays open (a line over `MAX_LINE` closes it).

Why a socket and not polling: a foreign commit reaches IDLE/NOTIFY sessions at once, the
server never wakes up for nothing, and the same channel serves ``who`` and ``kick``. A CLI
that finds no server simply skips the notice: there is nobody to tell (the next server
start begins at the end of change_log; the notification sink reads change_log itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imapd.server import Server
    from store.changes import Change

log = logging.getLogger("imapd.control")

SOCKET_NAME = "control.sock"
#: Longest line either side accepts (a ``who`` of thousands of sessions fits).
MAX_LINE = 4 * 1024 * 1024
#: Seconds a ``kick`` waits for the sessions to be gone before answering.
KICK_WAIT = 5.0
#: Seconds the CLI waits for an answer (the server answers ``changed`` after publishing).
CLIENT_TIMEOUT = 10.0
KICK_TEXT = "Disconnected by administrator"
# AF_UNIX paths hold 108 octets with the NUL (Linux); longer ones go through /proc/self/fd.
_SUN_PATH_MAX = 107


def socket_path(data_dir: Path) -> Path:
    return data_dir / SOCKET_NAME


# --- the protocol (pure) -----------------------------------------------------------------
class ProtocolError(ValueError):
    """A request line that is not JSON, not an object, or not a known request."""


@dataclass(frozen=True, slots=True)
class Changed:
    """Another process committed: publish what change_log holds beyond our last seq."""


@dataclass(frozen=True, slots=True)
class Who:
    """List the live sessions."""


@dataclass(frozen=True, slots=True)
class Kick:
    """Disconnect one session (by id) or every session of a user."""

    session: str | None = None
    user: str | None = None


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Push ``{"seq": N}`` after each publish, until the client goes away."""


Request = Changed | Who | Kick | Subscribe


def parse_request(line: bytes) -> Request:
    """One request line (without or with its LF) -> a Request. Raises ProtocolError."""
    try:
        data = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("expected a JSON object")
    match data.get("op"):
        case "changed":
            return Changed()
        case "who":
            return Who()
        case "subscribe":
            return Subscribe()
        case "kick":
            session, user = data.get("session"), data.get("user")
            if (session is None) == (user is None):
                raise ProtocolError("kick: give exactly one of session and user")
            if not isinstance(session or user, str) or not (session or user):
                raise ProtocolError("kick: session and user are non-empty strings")
            return Kick(session=session, user=user)
        case op:
            raise ProtocolError(f"unknown op {op!r}")


def request_object(req: Request) -> dict[str, object]:
    """The JSON object of a Request (the client side of `parse_request`)."""
    match req:
        case Changed():
            return {"op": "changed"}
        case Who():
            return {"op": "who"}
        case Subscribe():
            return {"op": "subscribe"}
        case Kick(session=session, user=user):
            return {"op": "kick", "session": session} if session else {"op": "kick",
                                                                        "user": user}


def encode(obj: Mapping[str, object]) -> bytes:
    """One line: compact JSON, raw UTF-8, LF."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def error(text: str) -> dict[str, object]:
    return {"ok": False, "error": text}


# --- paths (AF_UNIX length limit) ----------------------------------------------------------
@contextlib.contextmanager
def _addressable(path: Path) -> Iterator[tuple[str, int]]:
    """(address to bind or connect, directory fd) for ``path``; a path too long for
    sun_path is reached through ``/proc/self/fd/N/NAME`` (Linux) while the fd is open."""
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        full = str(path)
        if len(os.fsencode(full)) <= _SUN_PATH_MAX:
            yield full, fd
        else:
            yield f"/proc/self/fd/{fd}/{path.name}", fd
    finally:
        os.close(fd)


def _bind(path: Path) -> socket.socket:
    """A listening socket at ``path``, mode 0600 from the start: bound under a temporary
    name, chmod-ed, then renamed over ``path`` (atomic; replaces a stale socket file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _addressable(tmp) as (where, fd):
            sock.bind(where)
            try:
                os.chmod(tmp.name, 0o600, dir_fd=fd)
                os.replace(tmp.name, path.name, src_dir_fd=fd, dst_dir_fd=fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(tmp.name, dir_fd=fd)
                raise
        sock.listen(64)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def _open(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    with _addressable(path) as (where, _):
        return await asyncio.open_unix_connection(where, limit=MAX_LINE)


# --- the server side -----------------------------------------------------------------------
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
        if self.path.exists() or self.path.is_symlink():
            try:
                _, writer = await _open(self.path)
            except OSError:
                pass  # stale: a server that was killed; replaced atomically below
            else:
                writer.close()
                log.warning("control socket %s belongs to another running server: no admin"
                            " socket for this one (imapd who/kick, prompt CLI changes)",
                            self.path)
                return False
        sock = _bind(self.path)
        self._inode = os.stat(self.path).st_ino
        self._listener = await asyncio.start_unix_server(self._client, sock=sock,
                                                         limit=MAX_LINE)
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
            if os.stat(self.path).st_ino == self._inode:  # still ours
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

    async def answer(self, req: Changed | Who | Kick) -> dict[str, object]:
        match req:
            case Changed():
                published = await self.server.store.publish_foreign()
                return {"ok": True, "seq": published}
            case Who():
                now = time.monotonic()
                sessions = sorted(self.server.sessions, key=lambda s: s.connected_at)
                return {"ok": True, "sessions": [session_info(s, now) for s in sessions]}
            case Kick(session=session_id, user=user):
                chosen = [
                    s for s in self.server.sessions
                    if (s.id == session_id if session_id is not None
                        else s.user is not None and s.user.name == user)
                ]
                for s in chosen:
                    s.kick(KICK_TEXT)
                tasks = {s.task for s in chosen if s.task is not None}
                if tasks:
                    await asyncio.wait(tasks, timeout=KICK_WAIT)
                return {"ok": True, "kicked": [s.id for s in chosen]}

    async def _subscription(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
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


# --- the client side (the CLI) ---------------------------------------------------------------
class NoServer(Exception):
    """No server listens on the control socket (none running, or a stale socket file)."""


async def request(data_dir: Path, req: Changed | Who | Kick) -> dict[str, Any]:
    """One request, its answer (within `CLIENT_TIMEOUT`; a kick waits up to `KICK_WAIT`
    more). Raises NoServer, TimeoutError, ProtocolError."""
    try:
        reader, writer = await _open(socket_path(data_dir))
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

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 seq: int) -> None:
        self._reader = reader
        self._writer = writer
        self.seq = seq

    @classmethod
    async def open(cls, data_dir: Path) -> Subscription:
        """Raises NoServer."""
        try:
            reader, writer = await _open(socket_path(data_dir))
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
