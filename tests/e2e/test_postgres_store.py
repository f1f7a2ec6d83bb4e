"""`imapd` on the PostgreSQL store, end to end (issue 18): `imapd user add --store URL` without a
server, two `imapd serve --store URL` processes on one database, real IMAP clients.

A session on instance A sees what is committed through instance B (IDLE is pushed B's
APPEND, STORE and EXPUNGE; a NOTIFY listener B's APPEND to another mailbox; LISTEN/NOTIFY
wakes A, no polling), and a bad store URL is refused at start.
"""

from __future__ import annotations

import imaplib
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers.pg import free_port
from tests.rawclient import RawClient

MESSAGE = b"From: a@example.org\r\nSubject: over postgres\r\n\r\nhello from B\r\n"


def imapd(*args: str, data_dir: Path, store: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imapd", *args, "--data-dir", str(data_dir), "--store", store],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class Serve:
    """One `imapd serve --store URL` process on a free port."""

    @staticmethod
    def command(data_dir: Path, store: str, port: int = 0) -> list[str]:
        return [
            sys.executable,
            "-m",
            "imapd",
            "serve",
            "--data-dir",
            str(data_dir),
            "--store",
            store,
            "--listen",
            f"127.0.0.1:{port or free_port()}",
        ]

    def __init__(self, data_dir: Path, store: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            self.command(data_dir, store, self.port),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode() if self.proc.stdout else ""
                raise RuntimeError(f"imapd serve exited {self.proc.returncode}: {out}")
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

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def test_login_append_fetch_and_idle_across_two_instances(dsn: str, tmp_path: Path) -> None:
    added = imapd("user", "add", "carol", "--password", "pw", data_dir=tmp_path / "cli", store=dsn)
    assert added.returncode == 0, added.stderr
    a = Serve(tmp_path / "a", dsn)
    try:
        b = Serve(tmp_path / "b", dsn)
    except BaseException:
        a.stop()
        raise
    try:
        _idle_sees_the_other_instance(a, b)
        _flags_expunge_and_notify_from_the_other_instance(a, b)
    finally:
        a.stop()
        b.stop()


def _idle_sees_the_other_instance(a: Serve, b: Serve) -> None:
    idler = a.client()
    idler.select("INBOX")
    tag = idler._new_tag()
    idler.send(tag + b" IDLE\r\n")
    assert idler.readline().startswith(b"+")
    writer = b.client()
    started = time.monotonic()
    typ, data = writer.append("INBOX", "", imaplib.Time2Internaldate(time.time()), MESSAGE)
    assert typ == "OK", data
    idler.sock.settimeout(10)
    line = idler.readline()
    waited = time.monotonic() - started
    assert line == b"* 1 EXISTS\r\n", line  # B's commit, pushed to A's IDLE
    assert waited < 5, waited
    idler.send(b"DONE\r\n")
    while not (line := idler.readline()).startswith(tag):
        pass
    assert b"OK" in line
    typ, fetched = idler.fetch("1", "(BODY[])")
    assert typ == "OK" and isinstance(fetched[0], tuple)
    assert fetched[0][1] == MESSAGE
    idler.logout()
    writer.logout()


def _pushed(client: RawClient, want: str, timeout: float = 10.0) -> list[str]:
    """Untagged responses the server pushes, up to the first that starts with ``want``."""
    seen: list[str] = []
    client.sock.settimeout(timeout)
    while not (seen and seen[-1].startswith(want)):
        seen.append(client.response())
    return seen


def _flags_expunge_and_notify_from_the_other_instance(a: Serve, b: Serve) -> None:
    """A session on A is told of B's STORE (FETCH) and EXPUNGE while idling, and a NOTIFY
    listener on A gets the STATUS of B's APPEND to another mailbox (RFC 5465 §5.2)."""
    watcher = RawClient.connect("127.0.0.1", a.port)
    watcher.login("carol", "pw")
    watcher.ok("s1", "SELECT INBOX")
    writer = RawClient.connect("127.0.0.1", b.port)
    writer.login("carol", "pw")
    writer.ok("w1", "SELECT INBOX")

    watcher.line("i1 IDLE")
    assert watcher.response().startswith("+")
    writer.ok("w2", "STORE 1 +FLAGS.SILENT (\\Flagged)")
    # \Seen: the BODY[] fetched on A before
    assert _pushed(watcher, "* 1 FETCH")[-1] == "* 1 FETCH (UID 1 FLAGS (\\Flagged \\Seen))"
    writer.ok("w3", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    writer.ok("w4", "EXPUNGE")
    assert _pushed(watcher, "* 1 EXPUNGE")[-1] == "* 1 EXPUNGE"
    watcher.line("DONE")
    assert watcher.until_tagged("i1")[-1].startswith("i1 OK")

    events = "(MessageNew MessageExpunge)"
    watcher.ok("n1", f"NOTIFY SET (selected {events}) (personal {events})")
    writer.append("w5", "Drafts", MESSAGE.decode())
    status = _pushed(watcher, "* STATUS")[-1]
    assert status.startswith(('* STATUS "Drafts" (', "* STATUS Drafts (")), status
    assert "MESSAGES 1" in status and "UIDNEXT 2" in status, status
    writer.ok("w6", "LOGOUT")
    watcher.ok("s2", "LOGOUT")


def test_a_bad_store_url_is_refused_at_start(tmp_path: Path) -> None:
    bad = imapd("user", "list", data_dir=tmp_path, store="mysql://u:secret@h/db")
    assert bad.returncode == 2
    assert "unsupported store URL" in bad.stderr and "secret" not in bad.stderr
    port = free_port()  # nothing listens there
    down = imapd(
        "user", "list", data_dir=tmp_path, store=f"postgresql://u:secret@127.0.0.1:{port}/db"
    )
    assert down.returncode == 2, down.stderr
    assert f"cannot reach the PostgreSQL store at postgresql://u:***@127.0.0.1:{port}/db" in (
        down.stderr
    )
    assert "secret" not in down.stderr and "Traceback" not in down.stderr


def test_the_sqlite_file_tools_refuse_a_store_url(tmp_path: Path) -> None:
    """backup, restore, fsck and init work on the SQLite file: with a store URL in effect
    they are refused (exit 2, the URL's password masked), never run on a file the server
    does not use. Refused before anything is opened: no PostgreSQL needed."""
    url = "postgresql://u:secret@127.0.0.1:1/db"
    for args in (("backup", str(tmp_path / "b")), ("restore", str(tmp_path / "b")), ("fsck",)):
        done = imapd(*args, data_dir=tmp_path / "d", store=url)
        assert done.returncode == 2, (args, done.stderr)
        assert "works on the SQLite store only" in done.stderr, done.stderr
        assert "u:***@" in done.stderr and "secret" not in done.stderr
    assert not (tmp_path / "b").exists()
