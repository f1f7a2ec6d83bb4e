"""The running test server as tests see it (`RunningServer`, made by conftest's ``server``
fixtures) and the password every test user gets."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import Any

from imapd.config import Config
from imapd.server import Server
from tests.rawclient import RawClient

PASSWORD = "secret"


@dataclass
class RunningServer:
    host: str
    port: int
    config: Config
    server: Server
    loop: asyncio.AbstractEventLoop

    def call(self, coro: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the server's loop (e.g. a store call) and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def add_user(self, name: str, password: str = PASSWORD) -> None:
        self.call(self.server.store.create_user(name, password))

    def raw(self, user: str = "alice", password: str = PASSWORD) -> RawClient:
        """A raw-socket client, greeted and logged in."""
        client = RawClient.connect(self.host, self.port)
        client.login(user, password)
        return client

    def connect(self) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=10)
