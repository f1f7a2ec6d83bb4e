"""A throwaway ``nats-server -js`` for the JetStream tests (Debian's nats-server package).

`NatsServer` starts ``nats-server -js -sd DIR -a 127.0.0.1 -p PORT`` and waits for its
"Server is ready" line (never sleeps for it); `kill` and `start` again keep the port and the
store directory, as a restarted server would. `require_nats` skips a test when the binary or
nats-py is missing locally, and fails it when ``CI`` is set (.ci/run installs both).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

BINARY = "nats-server"
READY = b"Server is ready"


def require_nats() -> str:
    """The nats-server path; skip (locally) or fail (CI set) when it or nats-py is missing."""
    binary = shutil.which(BINARY) or next(
        (p for p in ("/usr/sbin/nats-server", "/usr/bin/nats-server") if os.path.exists(p)), None
    )
    try:
        import nats  # noqa: F401
    except ImportError:
        missing = "nats-py (pip install 'imapd[nats]')"
    else:
        missing = "" if binary else "nats-server (apt-get install nats-server)"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing} is missing: .ci/run installs it", pytrace=False)
        pytest.skip(f"{missing} is not installed")
    assert binary is not None
    return binary


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class NatsServer:
    def __init__(self, binary: str, store_dir: Path, port: int | None = None) -> None:
        self.binary = binary
        self.store_dir = store_dir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: list[bytes] = []

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
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
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.proc = proc
        ready = threading.Event()

        def read() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                self.log.append(line)
                if READY in line:
                    ready.set()
            ready.set()  # exited

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        ready.wait(timeout)
        if (
            proc.poll() is not None
            or time.monotonic() > deadline
            or not any(READY in line for line in self.log)
        ):
            self.stop()
            raise RuntimeError(
                "nats-server did not start:\n" + b"".join(self.log[-20:]).decode(errors="replace")
            )

    def kill(self) -> None:
        """SIGKILL, as a crash: JetStream recovers its store at the next start."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(5)
