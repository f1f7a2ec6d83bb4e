"""The real `python -m imapd` process: CLI, kill -9 durability, SIGTERM shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.messages import numbered
from tests.e2e.process import Proc, imapd


def test_user_cli(tmp_path: Path) -> None:
    data = tmp_path / "d"
    assert imapd("user", "add", "dave", "--password", "x", data_dir=data).returncode == 0
    again = imapd("user", "add", "dave", "--password", "x", data_dir=data)
    assert again.returncode == 1 and "already exists" in again.stderr
    assert imapd("user", "passwd", "dave", "--password", "y", data_dir=data).returncode == 0
    assert imapd("user", "list", data_dir=data).stdout.split() == ["dave"]
    assert imapd("user", "delete", "dave", data_dir=data).returncode == 0
    assert imapd("user", "list", data_dir=data).stdout.split() == []
    assert imapd("user", "delete", "dave", data_dir=data).returncode == 1


def test_append_survives_kill_9_and_uids_are_never_reused(proc: Proc) -> None:
    proc.start()
    c = proc.client()
    for i in range(3):
        typ, _ = c.append("INBOX", None, None, numbered(i))
        assert typ == "OK"
    c.select("INBOX")
    c.store("1:3", "+FLAGS", "(\\Deleted)")
    typ, _ = c.expunge()
    assert typ == "OK"
    typ, data = c.append("INBOX", "(\\Flagged)", None, numbered(99))
    assert typ == "OK"
    # Kill right after the tagged OK: no chance for a clean close.
    proc.kill9()
    proc.start()
    c = proc.client()
    typ, selected = c.select("INBOX")
    assert selected == [b"1"]
    typ, fetched = c.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    first = fetched[0]
    assert isinstance(first, tuple), fetched
    assert b"UID 4" in first[0] and b"\\Flagged" in first[0]
    assert b"Message 99" in first[1]
    typ, data = c.append("INBOX", None, None, numbered(100))
    assert data[0].startswith(b"[APPENDUID ") and data[0].split()[2] == b"5]"
    c.logout()


def test_sigterm_says_bye_and_exits_cleanly(proc: Proc) -> None:
    proc.start()
    c = proc.client()
    c.select("INBOX")
    assert proc.proc is not None
    proc.proc.send_signal(signal.SIGTERM)
    # The idle client is told BYE and the server exits with status 0.
    c.sock.settimeout(10)
    data = b""
    while b"BYE" not in data:
        chunk = c.sock.recv(1024)
        if not chunk:
            break
        data += chunk
    assert b"* BYE" in data
    assert proc.proc.wait(15) == 0
    # The store closed cleanly: the data opens again.
    assert imapd("user", "list", data_dir=proc.data_dir).stdout.split() == ["carol"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_python_m_imapd_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "imapd", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0 and "serve" in result.stdout


def test_sigterm_as_soon_as_it_says_it_serves_is_a_clean_stop(proc: Proc) -> None:
    """The "serving" line is the promise that SIGTERM now drains: a supervisor (or a test) that
    signals the moment it reads it must see exit status 0, never death by the signal (the
    handlers were once installed only after that line and the pid file were written)."""
    for _ in range(5):
        with subprocess.Popen(
            [
                sys.executable,
                "-m",
                "imapd",
                "serve",
                "--data-dir",
                str(proc.data_dir),
                "--listen",
                f"127.0.0.1:{proc.port}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        ) as child:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line.startswith("imapd: serving IMAP on"), line
            child.send_signal(signal.SIGTERM)
            assert child.wait(15) == 0
