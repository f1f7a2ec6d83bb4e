"""The bundled listener's ``webhook`` method: events -> signed HTTP POSTs, resumable.

Owns: ``imapd notifyd --socket PATH --method webhook --url URL [--secret S] [--batch N]
[--queue N] [--state FILE] [--data-dir DIR]``: the HTTP/1.1 client (asyncio streams, one
connection per request, http or https), the body and its headers, retries, the bounded queue,
the state file and the catch-up from the server's outbox. Must not import imapd: the catch-up's
`Format`, `Policy` and renderer are handed in by imapd/cli/notifyd.py, built as the server does.

Delivery:
- Body: the event's JSON exactly as the server rendered it; with ``--batch N`` (N > 1)
  ``{"events":[...]}`` with 1..N events, in order. Headers: ``Content-Type:
  application/json``, ``X-Imapd-Seq`` (the change_log seq of the last event in the body, when
  the events carry ``vnd.imapd.seq``) and, with a secret, ``X-Imapd-Signature:
  sha256=HEX``, the HMAC-SHA256 of the body (GitHub's ``X-Hub-Signature-256`` scheme).
- 2xx: acknowledged. Connection errors, timeouts, 408, 429 and 5xx: retried, the same body,
  after ``Retry-After`` when the answer has one, else exponential backoff with jitter up to
  ``retry_max``; without end: later events wait (at-least-once, in order). Any other status
  (3xx, 4xx): logged and skipped, as a receiver refusing an event will refuse it again.
- The queue between the datagram socket and the sender holds ``queue`` events. When it is full
  the listener stops reading datagrams: the kernel's queue fills, the server's sink gets
  EAGAIN and keeps the events in its outbox (change_log), the durable path, until we read again.

Resuming (needs ``vnd.imapd.seq`` in the server's ``event_extra_params``; events of one change,
a STORE's split or a MULTIAPPEND, share a seq and are told apart by their position):
- ``--state FILE`` keeps the last acknowledged position (seq, index of the event in its change)
  as JSON, replaced atomically (temp file, fsync, rename, fsync of the directory) after each
  acknowledged POST. Datagrams at or before it are skipped as duplicates.
- ``--data-dir DIR``: before reading datagrams, the change_log rows after the state's seq are
  read from the SQLite file (read-only) and rendered by the same code as the server's sink
  (notify/events.py, notify/cyrus.py); the server's datagrams of those changes, which it sends
  once the socket is back, are then skipped by seq. So events committed while the listener was
  down arrive after it restarts. A first start (no state) begins at the outbox's current end.
- Without ``--data-dir`` the datagrams alone are the source: what the server sent while the
  listener was down waits in the server's outbox and comes when the socket is back, but events
  the listener had read and not yet delivered when it stopped (its queue, the socket's buffer)
  are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import hashlib
import hmac
import json
import logging
import os
import random
import signal
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from notify.cyrus import (
    MAX_DATAGRAM_READ,
    SEQ_PARAM,
    Format,
    MalformedRequest,
    parse_datagram,
    to_json,
)
from notify.events import Policy
from notify.follow import Position as Position  # re-exported: tests
from notify.follow import StateFile as StateFile  # re-exported: imapd/cli/notifyd.py, tests
from notify.follow import open_outbox as open_outbox  # re-exported: imapd/cli/notifyd.py, tests
from notify.follow import outbox_events
from store.api import ChangeFeed

log = logging.getLogger("imapd.notifyd.webhook")

SIGNATURE_HEADER = "X-Imapd-Signature"
SEQ_HEADER = "X-Imapd-Seq"
USER_AGENT = "imapd-notifyd"
RETRY_STATUSES = frozenset({408, 429})  # and every 5xx
RETRY_AFTER_MAX = 3600.0  # a Retry-After beyond an hour is taken as an hour
MAX_RESPONSE_HEAD = 100  # header lines read from a response (h11 bounds the head too)
MAX_RESPONSE_BODY = 65536  # bytes of a response body read (then the connection is closed)


# --- values ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Item:
    """One event to POST: its JSON text and, when it has one, its position."""

    text: str
    position: Position | None = None


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int
    path: str  # with the query
    host_header: str
    tls: bool


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    reason: str
    headers: dict[str, str]  # names lower-cased; a repeated header keeps its last value


class ProtocolError(Exception):
    """The peer's answer is not HTTP/1.x."""


def parse_url(url: str) -> Target:
    """``http://HOST[:PORT]/PATH?QUERY`` (or https); raises ValueError naming the problem."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise ValueError(f"--url must be http:// or https://, got {url!r}")
    if not parts.hostname:
        raise ValueError(f"--url has no host: {url!r}")
    if parts.username or parts.password:
        raise ValueError("--url must not carry credentials (use --secret)")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.hostname, port, path, parts.netloc, tls)


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Imapd-Signature`` value: ``sha256=`` + hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def body_of(items: Sequence[Item], *, batch: bool) -> bytes:
    """The JSON texts as they are (no re-encoding): one object, or ``{"events":[...]}``."""
    if not batch:
        (item,) = items
        return item.text.encode("utf-8")
    return ('{"events":[' + ",".join(i.text for i in items) + "]}").encode("utf-8")


def retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` (RFC 9110 §10.2.3: delay-seconds or an
    HTTP-date); None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_MAX)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return min(max(0.0, (when - now).total_seconds()), RETRY_AFTER_MAX)


def retryable(status: int) -> bool:
    return status in RETRY_STATUSES or 500 <= status <= 599


# --- HTTP/1.1 ------------------------------------------------------------------------------
async def post(
    target: Target,
    body: bytes,
    headers: Sequence[tuple[str, str]],
    *,
    timeout: float,  # noqa: ASYNC109 - one budget for connect, send and answer
    ssl_context: ssl.SSLContext | None = None,
) -> Response:
    """One POST on a connection of its own (``Connection: close``); the whole exchange within
    ``timeout`` seconds. Raises OSError, TimeoutError or ProtocolError."""
    async with asyncio.timeout(timeout):
        context = (ssl_context or ssl.create_default_context()) if target.tls else None
        reader, writer = await asyncio.open_connection(
            target.host,
            target.port,
            ssl=context,
            server_hostname=target.host if context is not None else None,
        )
        try:
            lines = [
                f"POST {target.path} HTTP/1.1",
                f"Host: {target.host_header}",
                f"User-Agent: {USER_AGENT}",
                "Content-Type: application/json",
                f"Content-Length: {len(body)}",
                "Connection: close",
            ]
            lines += [f"{name}: {value}" for name, value in headers]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            await writer.drain()
            while True:
                response = await _read_head(reader)
                if not 100 <= response.status < 200:  # skip 100 Continue and other 1xx
                    break
            length = response.headers.get("content-length", "")
            if length.isdigit():  # read what is small, so the peer is not reset mid-write
                with contextlib.suppress(asyncio.IncompleteReadError):
                    await reader.readexactly(min(int(length), MAX_RESPONSE_BODY))
            return response
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()


async def _read_head(reader: asyncio.StreamReader) -> Response:
    try:
        status_line = (await reader.readuntil(b"\n")).decode("latin-1").rstrip("\r\n")
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError("connection closed before a response") from exc
    except asyncio.LimitOverrunError as exc:
        raise ProtocolError("response line too long") from exc
    version, _, rest = status_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    for _ in range(MAX_RESPONSE_HEAD):
        try:
            line = (await reader.readuntil(b"\n")).decode("latin-1").rstrip("\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise ProtocolError("truncated or oversized response head") from exc
        if not line:
            return Response(int(code), reason, headers)
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    raise ProtocolError("response head has too many lines")


# --- catch-up from the outbox --------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Outbox:
    """The server's change_log and how the server renders it (its Policy and Format)."""

    store: ChangeFeed
    policy: Policy = field(default_factory=Policy)
    fmt: Format = field(default_factory=Format)


# --- the listener --------------------------------------------------------------------------
Sleep = Callable[[float], Awaitable[None]]


class Webhook:
    """Datagrams (and the outbox) -> a bounded queue -> POSTs. `serve` runs it."""

    def __init__(
        self,
        url: str,
        *,
        secret: bytes | None = None,
        batch: int = 1,
        queue: int = 1000,
        state: StateFile | None = None,
        outbox: Outbox | None = None,
        timeout: float = 10.0,
        retry_initial: float = 0.5,
        retry_max: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if batch < 1 or queue < 1:
            raise ValueError("--batch and --queue must be at least 1")
        self.target = parse_url(url)
        self._secret = secret  # never logged
        self.batch = batch
        self.state = state
        self.outbox = outbox
        self.timeout = timeout
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.ssl_context = ssl_context
        self.sleep = sleep
        self.jitter = jitter
        self.queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=queue)
        self.position: Position | None = state.load() if state is not None else None  # accepted
        self.acked: Position | None = self.position
        self.posts = 0  # successful POSTs
        self.delivered = 0  # events acknowledged with a 2xx
        self.skipped = 0  # events given up on (a 3xx/4xx answer)
        self.duplicates = 0  # datagrams skipped as already delivered
        self.retries = 0
        self._warned_unsequenced = False

    def __repr__(self) -> str:  # the secret stays out of logs and tracebacks
        return f"<Webhook {self.target.host}:{self.target.port}{self.target.path}>"

    # --- intake ----------------------------------------------------------------------------
    def accept(self, text: str) -> Item | None:
        """The queue item for a datagram's JSON, or None for a duplicate."""
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        seq = obj.get(SEQ_PARAM) if isinstance(obj, dict) else None
        if not isinstance(seq, int) or isinstance(seq, bool):
            if not self._warned_unsequenced:
                self._warned_unsequenced = True
                log.warning(
                    "webhook: events without %s: delivered, but no resume and no "
                    "duplicate check (add it to event_extra_params)",
                    SEQ_PARAM,
                )
            return Item(text)
        last = self.position
        if last is None or seq > last.seq:
            index = 0
        elif seq == last.seq and not last.complete:
            index = last.index + 1
        else:
            self.duplicates += 1
            return None
        self.position = Position(seq, index)
        return Item(text, self.position)

    async def begin(self) -> None:
        """On a first start (no state yet), take the change log's current end as the position.

        Called before the socket is bound: whatever commits after this read reaches us either
        through the outbox catch-up or as a datagram, never as a "duplicate" of the start."""
        outbox = self.outbox
        if outbox is None or self.position is not None:
            return
        start = Position(await outbox.store.change_log_head(), -1, complete=True)
        self.position = self.acked = start
        await self._save(start)
        log.info("webhook: first start, from change_log seq %d", start.seq)

    async def catch_up(self) -> None:
        """Queue the outbox's events after the state position (see the module docstring)."""
        outbox = self.outbox
        if outbox is None:
            return
        store = outbox.store
        start = self.position
        if start is None:  # not begun: serve() calls begin() before binding
            await self.begin()
            return
        fmt = outbox.fmt
        if SEQ_PARAM not in fmt.extra_params:
            fmt = replace(fmt, extra_params=fmt.extra_params | {SEQ_PARAM})

        def unreadable(seq: int, kind: str) -> None:
            log.warning("webhook: change_log seq %d (%s) cannot be read; skipped", seq, kind)

        queued = 0
        async for event in outbox_events(
            store, start, policy=outbox.policy, fmt=fmt, pid=os.getpid(), unreadable=unreadable
        ):
            await self.queue.put(Item(to_json(event.fields), event.position))
            queued += 1
            self.position = event.position
        log.info("webhook: %d events from the outbox after seq %d", queued, start.seq)

    async def read_datagrams(self, sock: socket.socket) -> None:
        """Datagrams -> queue; waits while the queue is full (and so reads nothing)."""
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(sock, MAX_DATAGRAM_READ)
            try:
                request = parse_datagram(data)
            except MalformedRequest:
                log.warning("webhook: malformed notify request (%d bytes) skipped", len(data))
                continue
            item = self.accept(request.message)
            if item is not None:
                await self.queue.put(item)

    # --- delivery --------------------------------------------------------------------------
    async def send_forever(self) -> None:
        while True:
            items = [await self.queue.get()]
            while len(items) < self.batch and not self.queue.empty():
                items.append(self.queue.get_nowait())
            await self.deliver(items)
            for _ in items:
                self.queue.task_done()

    def _backoff(self, attempt: int) -> float:
        """Exponential with "equal jitter": half fixed, half random, capped at retry_max."""
        delay = min(self.retry_max, self.retry_initial * 2.0 ** min(attempt, 32))
        return delay / 2 + self.jitter() * delay / 2

    async def deliver(self, items: Sequence[Item]) -> bool:
        """POST ``items`` until acknowledged (True) or refused for good (False, skipped)."""
        body = body_of(items, batch=self.batch > 1)
        headers: list[tuple[str, str]] = []
        last = items[-1].position
        if last is not None:
            headers.append((SEQ_HEADER, str(last.seq)))
        if self._secret is not None:
            headers.append((SIGNATURE_HEADER, sign(self._secret, body)))
        attempt = 0
        while True:
            wait: float | None = None
            try:
                response = await post(
                    self.target, body, headers, timeout=self.timeout, ssl_context=self.ssl_context
                )
            except (OSError, TimeoutError, ProtocolError) as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                status = response.status
                if 200 <= status <= 299:
                    if attempt:
                        log.info("webhook: delivered after %d retries", attempt)
                    self.posts += 1
                    self.delivered += len(items)
                    await self._acknowledge(items)
                    return True
                if not retryable(status):
                    self.skipped += len(items)
                    log.warning(
                        "webhook: %d %s for %d event(s) (seq %s): skipped, %d in total",
                        status,
                        response.reason,
                        len(items),
                        last.seq if last is not None else "-",
                        self.skipped,
                    )
                    await self._acknowledge(items)
                    return False
                problem = f"{status} {response.reason}"
                wait = retry_after(response.headers.get("retry-after"))
            delay = self._backoff(attempt) if wait is None else wait
            log.log(
                logging.WARNING if attempt == 0 else logging.DEBUG,
                "webhook: %s (seq %s): retrying in %.1f s",
                problem,
                last.seq if last is not None else "-",
                delay,
            )
            attempt += 1
            self.retries += 1
            await self.sleep(delay)

    async def _acknowledge(self, items: Sequence[Item]) -> None:
        positions = [i.position for i in items if i.position is not None]
        if not positions:
            return
        self.acked = positions[-1]
        await self._save(positions[-1])

    async def _save(self, position: Position) -> None:
        if self.state is not None:
            await asyncio.to_thread(self.state.save, position)


async def serve(
    path: str, hook: Webhook, stop: asyncio.Event | None = None, grace: float = 5.0
) -> int:
    """Bind ``path``, catch up from the outbox, then read datagrams and POST until ``stop``
    (or SIGTERM/SIGINT when none is given); then ``grace`` seconds to empty the queue."""
    from notify.notifyd import bind

    loop = asyncio.get_running_loop()
    own_signals = stop is None
    stopping = stop if stop is not None else asyncio.Event()
    if own_signals:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
    await hook.begin()  # before the bind: a commit in between is caught up, not skipped
    sock = bind(path)  # the server's datagrams wait in the kernel during the catch-up
    sock.setblocking(False)
    sender = asyncio.create_task(hook.send_forever(), name="webhook-sender")
    intake: asyncio.Task[None] | None = None
    tasks: tuple[asyncio.Task[None] | asyncio.Task[bool] | None, ...]
    log.info(
        "listening on %s (method webhook, %s:%d%s)",
        path,
        hook.target.host,
        hook.target.port,
        hook.target.path,
    )
    waiter = asyncio.create_task(stopping.wait(), name="webhook-stop")
    catch_up = asyncio.create_task(hook.catch_up(), name="webhook-catch-up")
    try:
        await asyncio.wait({catch_up, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if catch_up.done():
            catch_up.result()  # an unreadable store: raise it
            intake = asyncio.create_task(hook.read_datagrams(sock), name="webhook-intake")
            await asyncio.wait({intake, waiter, sender}, return_when=asyncio.FIRST_COMPLETED)
            for running in (intake, sender):
                if running.done():
                    running.result()  # a bug: raise it
        catch_up.cancel()  # read no more; deliver what is queued
        if intake is not None:
            intake.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await hook.queue.join()
        if hook.queue.qsize():
            log.warning("webhook: stopping with %d events undelivered", hook.queue.qsize())
    finally:
        tasks = (sender, intake, catch_up, waiter)
        for task in tasks:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        if own_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
    log.info("webhook: stopped; %d events delivered, %d skipped", hook.delivered, hook.skipped)
    return 0
