"""The ``events`` section's JetStream variant (issue 19): a throwaway nats-server -js, our
server with ``event_notifier = "jetstream"``, and a JetStream consumer in this process that
records when each MessageAppend (by UID) arrives."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from .servers import Ours, ServerError

_UID = re.compile(rb";UID=(\d+)\"")


def nats_binary() -> str | None:
    return shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
    )


class NatsServer:
    def __init__(self, binary: str, port: int, store_dir: Path) -> None:
        self.port = port
        self.store_dir = store_dir
        self.log = store_dir.parent / "nats.log"
        self.binary = binary
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "-js",
                    "-sd",
                    str(self.store_dir),
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while b"Server is ready" not in self.log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise ServerError(f"nats-server did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)


class OursWithJetStream(Ours):
    """Our server with a TOML file choosing the JetStream notifier."""

    def __init__(self, port: int, url: str, *, keep: bool = False) -> None:
        super().__init__(port, keep=keep)
        self.toml = self.tmp / "imapd.toml"
        self.toml.write_text(f'event_notifier = "jetstream"\njetstream_url = "{url}"\n')

    def _prepare(self) -> list[str]:
        return [*super()._prepare(), "--config", str(self.toml)]


class Consumer:
    """An ephemeral push consumer on ``imapd.MessageAppend.>`` from the stream's new messages."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.arrived: dict[int, float] = {}
        self.count = 0
        self.nc: Any = None

    async def start(self) -> None:
        import nats
        from nats.js.api import DeliverPolicy

        self.nc = await nats.connect(self.url)
        js = self.nc.jetstream()

        async def on_msg(msg: Any) -> None:
            now = time.perf_counter()
            self.count += 1
            found = _UID.search(msg.data)
            if found:
                self.arrived.setdefault(int(found.group(1)), now)

        from nats.js.errors import NotFoundError

        for _ in range(200):  # the server's sink creates the stream as it starts: wait for it
            try:
                await js.subscribe(
                    "imapd.MessageAppend.>",
                    cb=on_msg,
                    ordered_consumer=True,
                    deliver_policy=DeliverPolicy.NEW,
                )
                return
            except NotFoundError:
                await asyncio.sleep(0.1)
        raise ServerError("the JetStream stream did not appear within 20 s")

    async def close(self) -> None:
        if self.nc is not None:
            await self.nc.close()
