"""The bundled listener: a small notifyd reading event datagrams from a UNIX socket.

Owns: `imapd notifyd --socket PATH --method log|external|jsonl|webhook`. It binds PATH as an
AF_UNIX datagram socket, as Cyrus's notifyd does, splits each datagram (notify/cyrus.py)
and handles the MESSAGE:
- ``log``: notifyd's notify_log.c line, ``EVENT, , , ,  "{json}"``, one per line on stdout
  (Cyrus sends it to syslog at INFO);
- ``external``: runs ``--program`` once per event with the JSON and a newline on its
  standard input and waits for it, one event at a time (notify_external.c); the Cyrus
  arguments (``-c EVENT -p "" ...``) are not passed;
- ``jsonl``: the JSON object alone, one per line (for `jq`, log shippers);
- ``webhook``: signed HTTP POSTs with retries, a bounded queue and resume after a restart:
  notify/webhook.py (asyncio: `imapd notifyd` hands it over there, see imapd/cli.py).
Unlike Cyrus's notifyd a malformed datagram is logged and skipped, not fatal. Must not import
imapd. Blocking I/O on purpose: it is a process of its own, one datagram at a time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from notify.cyrus import MAX_DATAGRAM_READ, MalformedRequest, Request, log_line, parse_datagram

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


def serve(sock: socket.socket, handle: Callable[[Request], None],
          count: int | None = None) -> int:
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


def main(path: str, method: str, program: str | None = None,
         out: TextIO | None = None) -> int:
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
