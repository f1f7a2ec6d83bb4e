"""A real notifyd stand-in for tests: a UNIX datagram socket the test reads from."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
from typing import Any

from notify.cyrus import MAX_DATAGRAM_READ, parse_datagram
from tests.reference import REFERENCE

EXAMPLES = REFERENCE / "cyrus-events"


def example_keys(name: str) -> set[str]:
    return set(json.loads((EXAMPLES / f"{name}.json").read_text()))


def short_socket_path() -> str:
    """AF_UNIX paths are limited to 107 bytes; pytest's tmp_path can be longer."""
    return os.path.join(tempfile.mkdtemp(prefix="ev", dir="/tmp"), "notify")


class Listener:
    """Binds ``path`` (now, or later with `bind`) and hands back parsed events."""

    def __init__(self, path: str | None = None, *, bind: bool = True) -> None:
        self.path = path or short_socket_path()
        self.sock: socket.socket | None = None
        self.raw: list[bytes] = []
        if bind:
            self.bind()

    def bind(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(self.path)
        self.sock = sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def cleanup(self) -> None:
        self.close()
        shutil.rmtree(os.path.dirname(self.path), ignore_errors=True)

    def next(self, timeout: float = 10.0) -> dict[str, Any]:
        assert self.sock is not None
        self.sock.settimeout(timeout)
        data = self.sock.recv(MAX_DATAGRAM_READ)
        self.raw.append(data)
        request = parse_datagram(data)
        assert request.klass == "EVENT"
        event: dict[str, Any] = json.loads(request.message)
        return event

    def take(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        return [self.next(timeout) for _ in range(count)]

    def until(self, event: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Events up to and including the first named ``event``."""
        out = []
        while True:
            got = self.next(timeout)
            out.append(got)
            if got["event"] == event:
                return out
