"""The store's files (issue 14 #2 and #7): private modes from creation, a warning for wider
ones, and an empty, foreign or damaged database refused at start instead of served empty."""

from __future__ import annotations

import imaplib
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from imapd.cli.backup import EXIT_DAMAGED
from tests.e2e.process import Proc
from tests.helpers.server import PASSWORD


def imapd(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imapd", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=lambda: os.umask(0o022),  # a usual login umask: imapd must not rely on it
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_user_add_and_serve_create_private_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = imapd("user", "add", "carol", "--password", "pw", data_dir=data)
    assert done.returncode == 0, done.stderr
    assert mode(data) == 0o700
    assert mode(data / "imapd.sqlite3") == 0o600
    proc = Proc(data)
    proc.start()
    try:
        client = proc.client()
        assert client.append("INBOX", None, None, b"Subject: x\r\n\r\nhi\r\n")[0] == "OK"
        wal, shm = data / "imapd.sqlite3-wal", data / "imapd.sqlite3-shm"
        assert wal.exists() and shm.exists()
        files = [p for p in data.iterdir() if not p.is_socket()]
        assert {p.name: mode(p) for p in files} == {  # directories (spool/) 0700
            p.name: 0o700 if p.is_dir() else 0o600 for p in files
        }
        assert mode(data / "control.sock") == 0o600
        client.logout()
    finally:
        proc.stop()


def test_in_process_server_creates_private_files_whatever_the_umask(
    tmp_path: Path, server_factory: Any
) -> None:
    old = os.umask(0o022)
    try:
        running = server_factory(data_dir=tmp_path / "fresh" / "data")
        running.add_user("alice")
        client = imaplib.IMAP4(running.host, running.port)
        client.login("alice", PASSWORD)
        assert client.append("INBOX", None, None, b"Subject: x\r\n\r\nhi\r\n")[0] == "OK"
        client.logout()
    finally:
        os.umask(old)
    data = tmp_path / "fresh" / "data"
    assert mode(data) == 0o700
    for name in ("imapd.sqlite3", "imapd.sqlite3-wal", "imapd.sqlite3-shm"):
        assert mode(data / name) == 0o600, name


def test_wider_modes_are_warned_about_and_left_alone(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert imapd("user", "add", "carol", "--password", "pw", data_dir=data).returncode == 0
    os.chmod(data, 0o755)  # noqa: S103 - the wide mode under test
    os.chmod(data / "imapd.sqlite3", 0o644)
    done = imapd("user", "list", data_dir=data)
    assert done.returncode == 0 and done.stdout.split() == ["carol"]
    assert f"{data} has mode 0755" in done.stderr
    assert f"{data / 'imapd.sqlite3'} has mode 0644" in done.stderr
    assert mode(data) == 0o755 and mode(data / "imapd.sqlite3") == 0o644  # operator's choice
    os.chmod(data, 0o700)
    os.chmod(data / "imapd.sqlite3", 0o600)
    assert "has mode" not in imapd("user", "list", data_dir=data).stderr


def test_an_empty_database_is_refused_until_init(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert imapd("user", "add", "carol", "--password", "pw", data_dir=data).returncode == 0
    (data / "imapd.sqlite3").write_bytes(b"")  # e.g. truncated by a bad copy
    for args in (("user", "list"), ("serve", "--listen", "127.0.0.1:0")):
        done = imapd(*args, data_dir=data)
        assert done.returncode == EXIT_DAMAGED, done.stderr
        assert "is empty (0 bytes)" in done.stderr and "imapd init" in done.stderr
        assert "Traceback" not in done.stderr
    assert (data / "imapd.sqlite3").stat().st_size == 0  # nothing was created over it
    done = imapd("init", data_dir=data)
    assert done.returncode == 0, done.stderr
    kept = [p for p in data.iterdir() if p.name.startswith("imapd.sqlite3.damaged-")]
    assert len(kept) == 1 and kept[0].stat().st_size == 0
    assert imapd("user", "list", data_dir=data).returncode == 0
    # A sound store is left alone by init.
    assert imapd("user", "add", "dave", "--password", "pw", data_dir=data).returncode == 0
    assert "left as it is" in imapd("init", data_dir=data).stdout
    assert imapd("user", "list", data_dir=data).stdout.split() == ["dave"]


def test_a_fresh_data_dir_still_just_works(tmp_path: Path) -> None:
    data = tmp_path / "new" / "dir"
    done = imapd("user", "list", data_dir=data)
    assert done.returncode == 0 and done.stderr == "", done.stderr


@pytest.mark.parametrize("damage", ["not-sqlite", "mid-file"])
def test_a_damaged_database_is_refused_at_serve(tmp_path: Path, damage: str) -> None:
    data = tmp_path / "data"
    assert imapd("user", "add", "carol", "--password", "pw", data_dir=data).returncode == 0
    db_path = data / "imapd.sqlite3"
    if damage == "not-sqlite":
        db_path.write_bytes(b"this is not a database at all\n" * 200)
    else:
        db = sqlite3.connect(db_path, isolation_level=None)
        db.execute("CREATE TABLE filler (x BLOB)")
        db.executemany("INSERT INTO filler VALUES (randomblob(3000))", [()] * 50)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'users'").fetchone()
        (size,) = db.execute("PRAGMA page_size").fetchone()
        db.close()
        with open(db_path, "r+b") as f:  # the users table's root page: garbage
            f.seek((root - 1) * size)
            f.write(b"\xa5" * size)
    done = imapd("serve", "--listen", "127.0.0.1:0", data_dir=data)
    assert done.returncode == EXIT_DAMAGED, done.stderr
    assert "imapd restore" in done.stderr and "Traceback" not in done.stderr, done.stderr
    fsck = imapd("fsck", data_dir=data)
    assert fsck.returncode in (1, 2), fsck.stdout + fsck.stderr


def test_a_missing_database_with_its_wal_left_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "imapd.sqlite3-wal").write_bytes(b"\x37\x7f\x06\x82" + b"\0" * 4096)
    done = imapd("user", "list", data_dir=data)
    assert done.returncode == EXIT_DAMAGED and "is missing but" in done.stderr, done.stderr
    assert not (data / "imapd.sqlite3").exists()
