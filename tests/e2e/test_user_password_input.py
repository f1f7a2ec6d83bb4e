"""`imapd user add|passwd` take the password from a terminal prompt or standard input
(``--password -``), not only from argv, where ``ps`` and shell history show it (issue 14,
finding 9). The real `python -m imapd` process; the result checked by logging in through
the store the server uses."""

from __future__ import annotations

import asyncio
import fcntl
import os
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from store.errors import AuthFailed
from store.sqlite import SqliteStore


def imapd(
    *args: str, data_dir: Path, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "imapd", *args, "--data-dir", str(data_dir)],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )


def can_login(data_dir: Path, name: str, password: str) -> bool:
    async def check() -> bool:
        store = await SqliteStore.open(
            data_dir / "imapd.sqlite3", lambda changes: None, synchronous="FULL", scrypt_n=2**14
        )
        try:
            await store.authenticate(name, password)
        except AuthFailed:
            return False
        finally:
            await store.close()
        return True

    return asyncio.run(check())


def test_password_from_standard_input(tmp_path: Path) -> None:
    data = tmp_path / "d"
    added = imapd(
        "user", "add", "dave", "--password", "-", data_dir=data, stdin=b"s3 cret with spaces\n"
    )
    assert added.returncode == 0, added.stderr
    assert b"s3 cret" not in added.stdout + added.stderr
    assert can_login(data, "dave", "s3 cret with spaces")
    changed = imapd(
        "user", "passwd", "dave", "--password", "-", data_dir=data, stdin=b"n\xc3\xa9w\r\n"
    )  # a CRLF line end is not part of it either
    assert changed.returncode == 0, changed.stderr
    assert can_login(data, "dave", "néw")
    assert not can_login(data, "dave", "s3 cret with spaces")
    empty = imapd("user", "passwd", "dave", "--password", "-", data_dir=data, stdin=b"")
    assert empty.returncode == 2
    assert b"no password on standard input" in empty.stderr
    assert can_login(data, "dave", "néw")


def test_no_password_and_no_terminal_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "d"
    result = imapd("user", "add", "erin", data_dir=data)
    assert result.returncode == 2
    assert b"--password -" in result.stderr
    assert imapd("user", "list", data_dir=data).stdout.split() == []


def test_password_on_the_command_line_still_works(tmp_path: Path) -> None:
    data = tmp_path / "d"
    assert imapd("user", "add", "fay", "--password", "pw", data_dir=data).returncode == 0
    assert can_login(data, "fay", "pw")


@pytest.mark.skipif(not hasattr(termios, "TIOCSCTTY"), reason="needs a controlling tty")
@pytest.mark.parametrize(
    ("answers", "code"),
    [
        ([b"typed pw", b"typed pw"], 0),
        ([b"typed pw", b"other"], 2),
    ],
)
def test_password_prompt_on_a_terminal(tmp_path: Path, answers: list[bytes], code: int) -> None:
    """No --password on a terminal: asked twice, not echoed; a mismatch is refused."""
    data = tmp_path / "d"
    master, slave = os.openpty()

    def controlling_tty() -> None:  # after setsid (start_new_session): take the pty
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [sys.executable, "-m", "imapd", "user", "add", "gail", "--data-dir", str(data)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=controlling_tty,
    )
    os.close(slave)
    seen = b""
    try:
        for answer in answers:
            seen += _read_until(master, b": ")
            os.write(master, answer + b"\n")
        proc.wait(60)
        seen += _read_rest(master)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert proc.returncode == code, seen
    assert seen.count(b"Password") == 2, seen
    assert b"typed pw" not in seen  # not echoed
    if code == 0:
        assert can_login(data, "gail", "typed pw")
    else:
        assert imapd("user", "list", data_dir=data).stdout.split() == []


def _read_until(fd: int, marker: bytes) -> bytes:
    out = b""
    deadline = time.monotonic() + 30
    while marker not in out and time.monotonic() < deadline:
        if select.select([fd], [], [], 1)[0]:
            out += os.read(fd, 1024)
    return out


def _read_rest(fd: int) -> bytes:
    out = b""
    while select.select([fd], [], [], 0.2)[0]:
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    return out
