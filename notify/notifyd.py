"""The bundled listener: a small notifyd handling events from a UNIX socket or the outbox.

Owns: `imapd notifyd --socket PATH --method log|external|jsonl|webhook`. It binds PATH as an
AF_UNIX datagram socket, as Cyrus's notifyd does, splits each datagram (notify/cyrus.py)
and handles the MESSAGE. And `imapd notifyd --outbox --state FILE --data-dir DIR --method
log|external|jsonl` (`follow_outbox`): no socket; it reads the server's change_log itself
(notify/follow.py) from the position in FILE, and saves each event's position there only
after the method handled it, so a crash of the listener loses nothing (at least once: the
one event handled and not yet saved is handled again after a kill -9). A datagram socket has
no acknowledgement: what sits in a dead listener's receive buffer is gone. Methods:
- ``log``: notifyd's notify_log.c line, ``EVENT, , , ,  "{json}"``, one per line on stdout
  (Cyrus sends it to syslog at INFO);
- ``external``: runs ``--program`` once per event with the JSON and a newline on its
  standard input and waits for it, one event at a time (notify_external.c); the Cyrus
  arguments (``-c EVENT -p "" ...``) are not passed;
- ``jsonl``: the JSON object alone, one per line (for `jq`, log shippers);
- ``webhook``: signed HTTP POSTs with retries, a bounded queue and resume after a restart:
  notify/webhook.py (asyncio: `imapd notifyd` hands it over there, see imapd/cli/notifyd.py).
Unlike Cyrus's notifyd a malformed datagram is logged and skipped, not fatal. Must not import
imapd. Blocking I/O on purpose: it is a process of its own, one event at a time (the
outbox mode awaits only the store and the wake-up; the method still blocks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from notify.cyrus import (
    MAX_DATAGRAM_READ,
    SEQ_PARAM,
    Format,
    MalformedRequest,
    Request,
    log_line,
    parse_datagram,
    to_json,
)
from notify.events import Policy
from notify.follow import Position, StateFile, outbox_events
from store.api import ChangeFeed

log = logging.getLogger("imapd.notifyd")

METHODS = ("log", "external", "jsonl", "webhook")


def handler(method: str, out: TextIO, program: str | None = None) -> Callable[[Request], None]:
    """The action for one request under ``method``."""

    def write(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    match method:
        case "log":
            return lambda req: write(log_line(req))
        case "jsonl":
            return lambda req: write(req.message)
        case "external":
            if not program:
                raise ValueError("--method external needs --program")
            argv = shlex.split(program)

            def run(req: Request) -> None:
                result = subprocess.run(  # noqa: S603 - the operator's own program
                    argv, input=(req.message + "\n").encode("utf-8"), check=False
                )
                if result.returncode:
                    log.warning("notifyd: %s exited with %d", argv[0], result.returncode)

            return run
        case "webhook":
            raise ValueError("--method webhook is notify.webhook.serve, not a blocking handler")
    raise ValueError(f"unknown method {method!r}")


def bind(path: str) -> socket.socket:
    """Bind the datagram socket at ``path`` (a stale socket file is replaced)."""
    with contextlib.suppress(FileNotFoundError):
        if Path(path).is_socket():
            os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    return sock


def serve(sock: socket.socket, handle: Callable[[Request], None], count: int | None = None) -> int:
    """Receive and handle datagrams until interrupted (or ``count`` were handled)."""
    handled = 0
    while count is None or handled < count:
        data = sock.recv(MAX_DATAGRAM_READ)
        try:
            request = parse_datagram(data)
        except MalformedRequest:
            log.warning("notifyd: malformed notify request (%d bytes) skipped", len(data))
            continue
        handle(request)
        handled += 1
    return handled


def main(path: str, method: str, program: str | None = None, out: TextIO | None = None) -> int:
    handle = handler(method, out or sys.stdout, program)
    sock = bind(path)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    log.info("listening on %s (method %s)", path, method)
    try:
        serve(sock, handle)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return 0


def request_of(fields: dict[str, object], method: str) -> Request:
    """The request the server's sink would have sent for these fields (its datagram's)."""
    return Request(method, "EVENT", "", "", "", (), to_json(fields))


async def follow_outbox(
    store: ChangeFeed,
    state: StateFile,
    handle: Callable[[Request], None],
    *,
    method: str,
    policy: Policy,
    fmt: Format,
    wait: Callable[[], Awaitable[None]],
    count: int | None = None,
) -> int:
    """Handle the outbox's events after the position in ``state`` until cancelled (or
    ``count`` were handled); returns how many were handled. Each event's position is saved
    after ``handle`` returned. A first start (no state) begins at the outbox's current end.
    Events always carry ``vnd.imapd.seq``: a consumer tells the repeated one by it."""
    start = state.load()
    if start is None:
        start = Position(await store.change_log_head(), -1, complete=True)
        await asyncio.to_thread(state.save, start)
        log.info("notifyd: first start, from change_log seq %d", start.seq)
    else:
        log.info("notifyd: resuming after change_log seq %d (event %d)", start.seq, start.index)
    if SEQ_PARAM not in fmt.extra_params:
        fmt = replace(fmt, extra_params=fmt.extra_params | {SEQ_PARAM})

    def unreadable(seq: int, kind: str) -> None:
        log.warning("notifyd: change_log seq %d (%s) cannot be read; skipped", seq, kind)

    handled = 0
    events = outbox_events(
        store, start, policy=policy, fmt=fmt, pid=os.getpid(), wait=wait, unreadable=unreadable
    )
    async with contextlib.aclosing(events):
        async for event in events:
            handle(request_of(event.fields, method))
            # No await between handling and saving: SIGTERM (a cancellation) cannot fall
            # in between; only a kill -9 can, and then this one event is handled again.
            state.save(event.position)
            handled += 1
            if count is not None and handled >= count:
                break
    return handled
