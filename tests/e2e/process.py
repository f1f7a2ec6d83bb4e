"""A real `python -m imapd` process for end-to-end tests: the CLI, and `imapd serve` on a free
loopback port (started, killed with -9, stopped with SIGTERM); the `proc` fixture is in
tests/e2e/conftest.py."""

from __future__ import annotations

import imaplib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def imapd(*args: str, data_dir: Path, store: str | None = None) -> subprocess.CompletedProcess[str]:
    """`imapd ARGS --data-dir DIR` (and `--store URL` when given), its output captured."""
    on_store = ["--store", store] if store is not None else []
    return subprocess.run(
        [sys.executable, "-m", "imapd", *args, "--data-dir", str(data_dir), *on_store],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def wait_for(
    cond: Callable[[], bool],
    what: str = "condition",
    within: float = 30.0,
    *,
    proc: subprocess.Popen[bytes] | None = None,
    log: Callable[[], str] | None = None,
) -> None:
    """Poll ``cond`` every 50 ms until it holds; fail after ``within`` seconds, or at once when
    ``proc`` (the server being waited on) has exited, with ``log()`` in the message."""
    deadline = time.monotonic() + within
    while not cond():
        if proc is not None and proc.poll() is not None:
            shown = f":\n{log()}" if log is not None else ""
            raise AssertionError(f"process exited {proc.returncode} waiting for {what}{shown}")
        if time.monotonic() > deadline:
            shown = f":\n{log()}" if log is not None else ""
            raise AssertionError(f"timed out waiting for {what}{shown}")
        time.sleep(0.05)


class Proc:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "imapd",
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--listen",
                f"127.0.0.1:{self.port}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def client(self) -> imaplib.IMAP4:
        c = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        c.login("carol", "pw")
        return c

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._close_output()

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_output()
        return self.proc.returncode

    def _close_output(self) -> None:
        """The exited server's output pipe (nobody reads it), before a restart replaces it."""
        assert self.proc is not None
        if self.proc.stdout is not None:
            self.proc.stdout.close()
