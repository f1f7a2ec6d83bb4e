"""The admin CLI (issue 9 point 3) against a real ``python -m imapd serve`` process: users,
quotas, mailboxes, who/kick, import of a Maildir and an mbox (with their events), events tail
with --from and --follow, healthcheck, and IMAPD_DATA_DIR."""

from __future__ import annotations

import json
import mailbox
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imapclient
import pytest

from imapd import control
from imapd.cli.importer import from_line_date, maildir_flags, mbox_flags
from tests.e2e.messages import SIMPLE
from tests.e2e.process import free_port

PW = "pw"
#: Every process here (server and CLI) reads IMAPD_* (cheap hashes, no failed-login delay).
FAST = {"IMAPD_SCRYPT_N": "2", "IMAPD_AUTH_FAILURE_DELAY": "0"}
ASCTIME = "%Y-%m-%d %H:%M:%S"


def imapd(
    *args: str,
    data_dir: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m imapd ARGS --data-dir D`` (or with IMAPD_DATA_DIR from ``env``)."""
    extra = ["--data-dir", str(data_dir)] if data_dir is not None else []
    full_env = {**os.environ, **FAST, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "imapd", *args, *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=full_env,
    )


def ok(*args: str, data_dir: Path) -> str:
    result = imapd(*args, data_dir=data_dir)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


class Served:
    """A ``python -m imapd serve`` subprocess on a free port, output to a file."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.log = data_dir.parent / "serve.log"
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
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
                    *self.extra,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **FAST},
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(100).startswith(b"* OK"):
                        break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("server did not start")
        assert control.socket_path(self.data_dir).exists()

    def client(self, user: str = "alice") -> imapclient.IMAPClient:
        c = imapclient.IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        c.login(user, PW)
        return c

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    data = tmp_path / "data"
    ok("user", "add", "alice", "--password", PW, data_dir=data)
    ok("user", "add", "bob", "--password", PW, data_dir=data)
    s = Served(data)
    s.start()
    yield s
    s.stop()
    assert s.proc is not None and s.proc.returncode == 0, s.log.read_text()
    assert not control.socket_path(data).exists()  # removed at shutdown
    assert "Traceback" not in s.log.read_text()


def events(data_dir: Path, *args: str) -> list[dict[str, Any]]:
    """``events tail ARGS`` parsed, without ``pid`` (the tail's own)."""
    out = ok("events", "tail", *args, data_dir=data_dir)
    return [{k: v for k, v in json.loads(line).items() if k != "pid"} for line in out.splitlines()]


# --- users, quotas, healthcheck, IMAPD_DATA_DIR --------------------------------------------
def test_user_and_quota_commands_on_a_running_server(served: Served) -> None:
    data = served.data_dir
    ok("user", "add", "carol", "--password", "x1", data_dir=data)
    c = imapclient.IMAPClient("127.0.0.1", port=served.port, ssl=False, timeout=10)
    c.login("carol", "x1")  # at once: the same SQLite file
    c.logout()
    ok("user", "passwd", "carol", "--password", "x2", data_dir=data)
    c = imapclient.IMAPClient("127.0.0.1", port=served.port, ssl=False, timeout=10)
    with pytest.raises(imapclient.exceptions.LoginError):
        c.login("carol", "x1")
    c.login("carol", "x2")
    assert ok("user", "list", data_dir=data).split() == ["alice", "bob", "carol"]
    # Deleting a user ends the sessions it still has (they would act on an account gone).
    assert ok("user", "delete", "carol", data_dir=data) == (
        "user carol deleted; 1 session(s) disconnected\n"
    )
    assert b"* BYE Disconnected by administrator\r\n" in read_until_closed(c)
    assert ok("user", "list", data_dir=data).split() == ["alice", "bob"]

    assert ok("quota", "set", "alice", "--messages", "5", data_dir=data) == (
        "alice: storage 0 KiB of unlimited, messages 0 of 5\n"
    )
    assert "messages 0 of 5" in ok("quota", "get", "alice", data_dir=data)
    c = served.client()
    assert c.get_quota_root("INBOX")[1][0].limit == 5
    c.logout()
    bad = imapd("quota", "get", "nobody", data_dir=data)
    assert bad.returncode == 1 and bad.stderr.startswith("imapd: ")


def test_healthcheck_and_imapd_data_dir(served: Served, tmp_path: Path) -> None:
    assert imapd("healthcheck", "--port", str(served.port)).returncode == 0
    closed = imapd("healthcheck", "--port", str(free_port()), "--timeout", "1")
    assert closed.returncode == 1 and "imapd healthcheck" in closed.stderr
    env = {"IMAPD_DATA_DIR": str(served.data_dir)}
    for args in (
        ["user", "list"],
        ["mailbox", "list", "alice"],
        ["who"],
        ["mailbox", "status", "alice", "INBOX"],
        ["quota", "get", "bob"],
        ["events", "tail", "--from", "1"],
    ):
        result = imapd(*args, env=env)
        assert result.returncode == 0, (args, result.stderr)
    assert imapd("mailbox", "create", "alice", "ViaEnv", env=env).returncode == 0
    assert "ViaEnv" in ok("mailbox", "list", "alice", data_dir=served.data_dir)
    # --data-dir wins over the environment.
    other = tmp_path / "other"
    result = imapd("user", "list", data_dir=other, env=env)
    assert result.returncode == 0 and result.stdout == ""


# --- mailbox list|create|delete|status|set-expire ------------------------------------------
def test_mailbox_commands(served: Served) -> None:
    data = served.data_dir
    c = served.client()
    c.append("INBOX", SIMPLE, flags=[b"\\Seen"])
    c.append("INBOX", SIMPLE)
    assert (
        ok(
            "mailbox",
            "create",
            "alice",
            "Projects/2026",
            "--special-use",
            "\\Archive",
            data_dir=data,
        )
        == "alice Projects/2026: created\n"
    )
    folders = {name: flags for flags, _, name in c.list_folders()}
    assert "Projects/2026" in folders and b"\\Archive" in folders["Projects/2026"]
    listed = json.loads(ok("mailbox", "list", "alice", "--json", data_dir=data))
    names = [m["name"] for m in listed]
    assert names == sorted(names) and {"INBOX", "Projects", "Projects/2026"} <= set(names)
    inbox = next(m for m in listed if m["name"] == "INBOX")
    assert inbox["messages"] == 2 and inbox["unseen"] == 1
    text = ok("mailbox", "list", "alice", data_dir=data)
    assert "Projects/2026 \\Archive  (0 messages, 0 unseen)" in text.splitlines()

    status = json.loads(ok("mailbox", "status", "alice", "INBOX", "--json", data_dir=data))
    imap = c.folder_status(
        "INBOX", ["MESSAGES", "UNSEEN", "UIDNEXT", "UIDVALIDITY", "HIGHESTMODSEQ", "SIZE"]
    )
    assert status["messages"] == imap[b"MESSAGES"] == 2
    assert status["unseen"] == imap[b"UNSEEN"] == 1
    assert status["uidnext"] == imap[b"UIDNEXT"] == 3
    assert status["uidvalidity"] == imap[b"UIDVALIDITY"]
    assert status["highestmodseq"] == imap[b"HIGHESTMODSEQ"]
    assert status["size"] == imap[b"SIZE"] == 2 * len(SIMPLE)
    assert status["retention"] is None
    ok("mailbox", "set-expire", "alice", "INBOX", "30", data_dir=data)
    text = ok("mailbox", "status", "alice", "INBOX", data_dir=data)
    assert "retention: 30 days" in text.splitlines() and "messages: 2" in text.splitlines()
    assert ok("mailbox", "get-expire", "alice", "INBOX", data_dir=data) == (
        "alice INBOX: expire after 30 days\n"
    )

    assert ok("mailbox", "delete", "alice", "Projects/2026", data_dir=data) == (
        "alice Projects/2026: deleted\n"
    )
    assert "Projects/2026" not in {name for _, _, name in c.list_folders()}
    for args, error in (
        (["create", "alice", "INBOX"], "exists"),
        (["delete", "alice", "INBOX"], "cannot be deleted"),
        (["status", "alice", "Nope"], "does not exist"),
        (["create", "alice", "X", "--special-use", "\\Bogus"], "special use"),
        (["list", "nobody"], "user"),
    ):
        result = imapd("mailbox", *args, data_dir=data)
        assert result.returncode == 1 and error in result.stderr.lower(), (args, result.stderr)
    c.logout()


# --- who and kick ----------------------------------------------------------------------------
def read_until_closed(c: imapclient.IMAPClient, timeout: float = 10) -> bytes:
    sock = c._imap.sock
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk


def test_who_and_kick(served: Served) -> None:
    data = served.data_dir
    a = served.client("alice")
    a.id_({"name": "Roundcube\x01", "version": "1.6.9"})  # RFC 2971; the \x01 not shown
    a.select_folder("INBOX")
    b1 = served.client("bob")
    b2 = served.client("bob")
    b2.idle()
    sessions = json.loads(ok("who", "--json", data_dir=data))
    assert sorted(s["user"] for s in sessions) == ["alice", "bob", "bob"]
    by_user = {s["user"]: s for s in sessions}
    assert by_user["alice"]["mailbox"] == "INBOX" and by_user["alice"]["service"] == "imap"
    assert by_user["alice"]["peer"].startswith("127.0.0.1:")
    assert by_user["alice"]["client"] == "Roundcube 1.6.9" and by_user["bob"]["client"] is None
    assert [s["idling"] for s in sessions if s["user"] == "bob"].count(True) == 1
    for s in sessions:
        assert s["since"].endswith("+00:00") and s["idle"] >= 0
    table = ok("who", data_dir=data).splitlines()
    assert table[0].split() == [
        "SESSION", "USER", "PEER", "SERVICE", "MAILBOX", "SINCE", "IDLE", "CLIENT"
    ]  # fmt: skip
    assert any(line.endswith("Roundcube 1.6.9") for line in table), table
    assert len(table) == 4

    # One session by id: it gets the BYE and the connection closes.
    alice_id = by_user["alice"]["id"]
    assert ok("kick", alice_id, data_dir=data) == f"kicked {alice_id}\n"
    assert b"* BYE Disconnected by administrator\r\n" in read_until_closed(a)
    # Every session of a user, also one in IDLE.
    out = ok("kick", "--user", "bob", data_dir=data)
    assert len(out.splitlines()) == 2
    for client in (b1, b2):
        assert b"* BYE Disconnected by administrator\r\n" in read_until_closed(client)
    assert json.loads(ok("who", "--json", data_dir=data)) == []
    missing = imapd("kick", "nosuchsession", data_dir=data)
    assert missing.returncode == 1 and "no such session" in missing.stderr
    assert imapd("kick", "--user", "alice", data_dir=data).returncode == 1


def test_who_without_a_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ok("user", "add", "alice", "--password", PW, data_dir=data)
    result = imapd("who", data_dir=data)
    assert result.returncode == 1 and "no server is running" in result.stderr
    # A stale socket file (a killed server) is the same.
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with control.addressable(control.socket_path(data)) as (where, _):
            sock.bind(where)
    finally:
        sock.close()
    assert imapd("kick", "--user", "alice", data_dir=data).returncode == 1
    # ... and a server started later takes the stale file over.
    s = Served(data)
    s.start()
    try:
        assert json.loads(ok("who", "--json", data_dir=data)) == []
    finally:
        s.stop()


# --- import ------------------------------------------------------------------------------------
def message(n: int) -> bytes:
    return (
        f"From: sender{n}@example.org\nTo: alice@example.org\nSubject: Imported {n}\n"
        f"Message-ID: <imp-{n}@example.org>\n\nBody {n}\n"
    ).encode()


def make_maildir(root: Path) -> list[tuple[str, tuple[bytes, ...], int]]:
    """cur/ and new/ files with info suffixes and mtimes; returns (subject, flags, mtime)
    in the expected import order (by mtime)."""
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    specs = [  # (dir, name, flags expected, mtime)
        (
            "cur",
            "1700000001.M1P1.host:2,FRS",
            (b"\\Answered", b"\\Flagged", b"\\Seen"),
            1_700_000_001,
        ),
        ("cur", "1700000002.M2P1.host:2,DT", (b"\\Deleted", b"\\Draft"), 1_700_000_002),
        ("new", "1700000003.M3P1.host", (), 1_700_000_003),
        ("cur", "1700000004.M4P1.host:2,Sa", (b"\\Seen",), 1_700_000_004),  # a: keyword
    ]
    out = []
    for n, (sub, name, flags, mtime) in enumerate(specs, 1):
        path = root / sub / name
        path.write_bytes(message(n))
        os.utime(path, (mtime, mtime))
        out.append((f"Imported {n}", flags, mtime))
    (root / "tmp" / "1700000005.M5P1.host").write_bytes(message(5))  # not delivered yet
    return out


def test_import_maildir(served: Served, tmp_path: Path) -> None:
    data = served.data_dir
    expected = make_maildir(tmp_path / "Maildir")
    c = served.client()
    c.select_folder("INBOX")
    c.idle()
    out = ok("import", "alice", "INBOX", str(tmp_path / "Maildir"), "--batch", "3", data_dir=data)
    assert out == "imported 4 messages into alice INBOX\n"
    seen: list[Any] = []
    deadline = time.monotonic() + 5
    while (4, b"EXISTS") not in seen and time.monotonic() < deadline:
        seen += c.idle_check(timeout=1)
    c.idle_done()
    assert (3, b"EXISTS") in seen and (4, b"EXISTS") in seen  # two batches, both announced
    fetched = c.fetch(
        [1, 2, 3, 4], ["FLAGS", "INTERNALDATE", "BODY.PEEK[]", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]
    )
    for seq, (subject, flags, mtime) in enumerate(expected, 1):
        item = fetched[seq]
        assert subject.encode() in item[b"BODY[HEADER.FIELDS (SUBJECT)]"]
        assert set(item[b"FLAGS"]) - {b"\\Recent"} == set(flags)
        assert int(item[b"INTERNALDATE"].timestamp()) == mtime
        assert b"\r\n" in item[b"BODY[]"] and b"\n" not in item[b"BODY[]"].replace(b"\r\n", b"")
    c.logout()

    appends = [
        e for e in events(data, "--from", "1", "--user", "alice") if e["event"] == "MessageAppend"
    ]
    assert len(appends) == 4
    assert {e["service"] for e in appends} == {"cli"} and {e["user"] for e in appends} == {"alice"}
    assert [e["uri"].rsplit(";UID=", 1)[1] for e in appends] == ["1", "2", "3", "4"]
    seqs = [e["vnd.imapd.seq"] for e in appends]
    assert seqs[0] == seqs[2] < seqs[3]  # one transaction per batch of 3


def test_import_mbox_creating_the_mailbox(served: Served, tmp_path: Path) -> None:
    data = served.data_dir
    path = tmp_path / "archive.mbox"
    box = mailbox.mbox(path)
    first = mailbox.mboxMessage(message(1))
    first.set_from("sender1@example.org", time.strptime("1996-01-03 01:05:34", ASCTIME))
    first.set_flags("RF")
    box.add(first)
    second = mailbox.mboxMessage(message(2) + b"From here on, a quoted From_ line\n")
    second.set_from("MAILER-DAEMON", time.strptime("2016-02-29 23:59:00", ASCTIME))
    box.add(second)
    box.close()
    missing = imapd("import", "alice", "Old", str(path), data_dir=data)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert ok("import", "alice", "Old", str(path), "--create", data_dir=data) == (
        "imported 2 messages into alice Old\n"
    )
    c = served.client()
    c.select_folder("Old")
    fetched = c.fetch([1, 2], ["FLAGS", "INTERNALDATE", "BODY.PEEK[TEXT]"])
    assert set(fetched[1][b"FLAGS"]) == {b"\\Seen", b"\\Flagged", b"\\Recent"}
    assert fetched[1][b"INTERNALDATE"].astimezone().timestamp() == 820631134  # 1996-01-03
    assert fetched[2][b"FLAGS"] == (b"\\Recent",)
    assert int(fetched[2][b"INTERNALDATE"].timestamp()) == 1456790340
    assert b"From here on" in fetched[2][b"BODY[TEXT]"]
    c.logout()
    tail = events(data, "--from", "1")
    kinds = [e["event"] for e in tail]
    assert kinds.count("MailboxCreate") >= 13 and kinds[-2:] == ["MessageAppend"] * 2
    assert tail[-1]["uri"].startswith("imap://alice@localhost/Old;UIDVALIDITY=")
    bad = imapd("import", "alice", "INBOX", str(tmp_path / "nope"), data_dir=data)
    assert bad.returncode == 2 and "not an mbox file" in bad.stderr


def test_import_readers_pure() -> None:
    assert maildir_flags("123.M1.host:2,FRS") == ("\\Flagged", "\\Answered", "\\Seen")
    assert maildir_flags("123.M1.host:2,") == ()
    assert maildir_flags("123.M1.host") == ()
    assert maildir_flags("123.M1.host:2,PTDab") == ("\\Draft", "$Forwarded", "\\Deleted")
    plain = from_line_date("From a@b Sat Jan  3 01:05:34 1996")
    assert plain is not None and plain.timestamp() == 820631134
    when = from_line_date("From a@b Sat Jan  3 01:05:34 1996 +0100")
    assert when is not None and when.timestamp() == 820631134 - 3600
    assert from_line_date("From a@b Sat Jan  3 01:05 PST 1996") is not None
    assert from_line_date("From nobody") is None
    assert mbox_flags("RO", "AFD") == ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted")
    assert mbox_flags("O", "") == ()


# --- events tail ----------------------------------------------------------------------------
class Follower:
    """``imapd events tail --follow`` as a subprocess, lines read with a deadline."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "imapd",
                "events",
                "tail",
                "--follow",
                *args,
                "--data-dir",
                str(data_dir),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **FAST},
        )
        self._buffer = b""

    def next(self, timeout: float = 10) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(0.0, left))
            if not ready:
                raise TimeoutError(f"no event within {timeout}s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError(self.proc.stderr.read() if self.proc.stderr else b"")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return dict(json.loads(line))

    def quiet(self, seconds: float) -> bool:
        """No output for ``seconds``."""
        assert self.proc.stdout is not None
        if b"\n" in self._buffer:
            return False
        ready, _, _ = select.select([self.proc.stdout.fileno()], [], [], seconds)
        return not ready

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def test_events_tail_from_and_follow(served: Served) -> None:
    data = served.data_dir
    history = events(data, "--from", "1")
    assert len(history) == 12  # 6 default mailboxes per user
    assert [e["vnd.imapd.seq"] for e in history] == list(range(1, 13))
    assert events(data, "--from", "7") == history[6:]
    assert [e["vnd.imapd.seq"] for e in events(data)] == list(range(3, 13))  # the last 10
    assert [e["vnd.imapd.seq"] for e in events(data, "--from", "1", "--user", "bob")] == list(
        range(7, 13)
    )
    assert events(data, "--from", "99") == []

    follow = Follower(data, "--from", "12", "--user", "alice")
    bob_follow = Follower(data, "--from", "13", "--user", "bob")
    try:
        # Nothing of alice at 12 (bob's), and nothing new: quiet.
        assert follow.quiet(0.5)
        c = served.client()
        c.append("INBOX", SIMPLE)  # the server's own commit
        append = follow.next()  # pushed: with a server running, --follow never polls
        assert append["event"] == "MessageAppend" and append["vnd.imapd.seq"] == 13
        assert append["service"] == "imap" and append["user"] == "alice"
        ok("mailbox", "create", "alice", "Fresh", data_dir=data)  # another process's commit
        created = follow.next()
        assert created["event"] == "MailboxCreate" and created["vnd.imapd.seq"] == 14
        assert created["service"] == "cli" and created["uri"].startswith(
            "imap://alice@localhost/Fresh;"
        )
        c.logout()
        assert bob_follow.quiet(0.3)
        # A consumer that was down resumes exactly after the last seq it handled.
        follow.stop()
        ok("mailbox", "create", "alice", "WhileDown", data_dir=data)
        resumed = Follower(data, "--from", str(created["vnd.imapd.seq"] + 1))
        try:
            again = resumed.next()
            assert again["vnd.imapd.seq"] == 15 and "WhileDown" in again["uri"]
        finally:
            resumed.stop()
    finally:
        if follow.proc.poll() is None:
            follow.stop()
        bob_follow.stop()


def test_events_tail_follow_survives_the_server(tmp_path: Path) -> None:
    """Without a server --follow reads change_log every second (documented); when the
    server starts it subscribes again."""
    data = tmp_path / "data"
    ok("user", "add", "alice", "--password", PW, data_dir=data)
    follow = Follower(data, "--from", "7")
    s = Served(data)
    try:
        assert follow.quiet(0.3)
        ok("mailbox", "create", "alice", "Offline", data_dir=data)
        assert "Offline" in follow.next(timeout=5)["uri"]
        s.start()
        ok("mailbox", "create", "alice", "Online", data_dir=data)
        assert "Online" in follow.next(timeout=5)["uri"]
    finally:
        follow.stop()
        s.stop()
