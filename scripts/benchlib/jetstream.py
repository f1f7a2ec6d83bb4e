"""The ``events`` section's JetStream variant (issue 19): a throwaway nats-server -js, our
server with ``event_notifier = "jetstream"``, and a JetStream consumer in a process of its
own (benchlib/jsconsumer.py) that records when each MessageAppend (by UID) arrives."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .servers import Ours, ServerError


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

    def __init__(
        self, port: int, url: str, *, keep: bool = False, stream: str = "", prefix: str = ""
    ) -> None:
        super().__init__(port, keep=keep)
        self.toml = self.tmp / "imapd.toml"
        text = f'event_notifier = "jetstream"\njetstream_url = "{url}"\n'
        if stream:  # a store of its own needs a stream of its own (its ids start at 1)
            text += f'jetstream_stream = "{stream}"\njetstream_subject_prefix = "{prefix}"\n'
        self.toml.write_text(text)

    def _prepare(self) -> list[str]:
        return [*super()._prepare(), "--config", str(self.toml)]


class Consumer:
    """An ephemeral push consumer on ``imapd.MessageAppend.>`` from the stream's new messages,
    in a process of its own (benchlib/jsconsumer.py); ``arrived`` holds when each UID came."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.arrived: dict[int, float] = {}
        self.count = 0
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(Path(__file__).with_name("jsconsumer.py")),
            self.url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        first = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        if first != b"ready\n":
            raise ServerError(f"the JetStream consumer did not start: {first!r}")
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            uid, _, at = line.partition(b" ")
            self.count += 1
            self.arrived.setdefault(int(uid), float(at))

    async def close(self) -> None:
        proc = self.proc
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
