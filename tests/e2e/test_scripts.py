"""README's first command, `scripts/serve`, as a user runs it: it creates the demo user when
the data directory has none (once), and serves IMAP where IMAPD_LISTEN says."""

from __future__ import annotations

import imaplib
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.e2e.process import free_port

REPO = Path(__file__).resolve().parents[2]


def serve(data_dir: Path, port: int) -> tuple[subprocess.Popen[str], list[str]]:
    """Start scripts/serve; return it once it said where it serves, with its output lines."""
    env = {**os.environ, "IMAPD_DATA_DIR": str(data_dir), "IMAPD_LISTEN": f"127.0.0.1:{port}"}
    proc = subprocess.Popen(
        [str(REPO / "scripts" / "serve")],
        cwd=REPO,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120  # a first run may install the package
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("imapd: serving IMAP on"):
            return proc, lines
    proc.kill()
    proc.wait(timeout=30)  # reaped here, not by the collector in some later test
    proc.stdout.close()
    raise AssertionError(f"scripts/serve did not start: {lines}")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.stdout is not None:
            proc.stdout.close()


def test_serve_creates_the_demo_user_once_and_serves(tmp_path: Path) -> None:
    data, port = tmp_path / "var", free_port()
    proc, lines = serve(data, port)
    try:
        assert "created demo user: demo / demo" in lines
        assert lines[-1] == f"imapd: serving IMAP on 127.0.0.1:{port}, data in {data}"
        client = imaplib.IMAP4("127.0.0.1", port)
        client.login("demo", "demo")
        assert client.select("INBOX")[0] == "OK"
        client.logout()
    finally:
        stop(proc)
    proc, lines = serve(data, port)  # the same data directory: the user is kept, not re-added
    try:
        assert not any("created demo user" in line for line in lines), lines
    finally:
        stop(proc)
