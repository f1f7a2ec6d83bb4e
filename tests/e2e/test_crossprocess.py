"""Changes committed by another process (the CLI) reach the running server's sessions at once
and in commit order (issue 9 point 3): the store publishes foreign change_log rows before its
own, and the CLI's "changed" notice on the control socket makes the server catch up when idle.
Also the control socket's line protocol (pure) and its framing on a real socket."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import imapclient
import pytest

from imapd import control
from notify.bus import EventBus, Subscription
from store.changes import (
    Change,
    MailboxCreated,
    MessagesAdded,
    MessagesExpunged,
    Origin,
    QuotaChanged,
)
from store.sqlite import SqliteStore
from tests.e2e.messages import SIMPLE
from tests.helpers.imap import client
from tests.helpers.server import PASSWORD, RunningServer
from tests.rawclient import RawClient


def cli(running: RunningServer, *args: str) -> str:
    """``python -m imapd ARGS --data-dir D``: another process, as an operator runs it."""
    result = subprocess.run(
        [sys.executable, "-m", "imapd", *args, "--data-dir", str(running.config.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def idle_until(
    c: imapclient.IMAPClient,
    wanted: tuple[int, bytes],
    timeout: float = 1.0,
) -> list[Any]:
    """IDLE responses until ``wanted`` came; within ``timeout`` of the CLI returning (it
    returns after the server answered its notice, so this is "at once", with slack)."""
    seen: list[Any] = []
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{wanted} not seen in IDLE: {seen}"
        seen += c.idle_check(timeout=left)
    return seen


def watch_account(running: RunningServer, user: str) -> Subscription:
    """A whole-account subscription on the server's bus (what NOTIFY and quota use)."""

    async def subscribe() -> Subscription:
        sub = running.server.bus.subscribe()
        sub.watch(users=frozenset({user}))
        return sub

    sub: Subscription = running.call(subscribe())
    return sub


def drained(running: RunningServer, sub: Subscription) -> list[Change]:
    async def drain() -> list[Change]:
        return sub.drain()

    changes: list[Change] = running.call(drain())
    return changes


# --- IMAP sessions see CLI changes at once --------------------------------------------------
def test_cli_import_reaches_an_idle_session(server: RunningServer, tmp_path: Path) -> None:
    maildir = tmp_path / "md"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    for n in range(3):
        (maildir / "new" / f"17000000{n}.M{n}.host").write_bytes(SIMPLE)
    c = client(server)
    c.select_folder("INBOX")
    c.idle()
    cli(server, "import", "alice", "INBOX", str(maildir))
    idle_until(c, (3, b"EXISTS"))
    c.idle_done()
    assert c.search("ALL") == [1, 2, 3]
    c.logout()


def test_cli_expire_reaches_an_idle_session(server_factory: Any) -> None:
    running: RunningServer = server_factory(expire_interval=0)
    running.add_user("alice")
    c = client(running)
    c.append("INBOX", SIMPLE)
    c.append("INBOX", SIMPLE)
    with sqlite3.connect(running.config.db_path, timeout=10) as db:  # saved long ago
        db.execute("UPDATE messages SET savedate = '2001-01-01T00:00:00+00:00' WHERE uid = 1")
    c.select_folder("INBOX")
    c.idle()
    cli(running, "mailbox", "set-expire", "alice", "INBOX", "7")  # no Change: nothing to see
    assert cli(running, "expire") == "expired 1 message\n"
    idle_until(c, (1, b"EXPUNGE"))
    c.idle_done()
    assert c.search("ALL") == [2]  # UIDs
    c.logout()


def test_cli_mailbox_create_and_quota_set_are_published(server: RunningServer) -> None:
    sub = watch_account(server, "alice")
    c = client(server)
    c.select_folder("INBOX")
    c.idle()
    cli(server, "mailbox", "create", "alice", "FromCli")
    cli(server, "quota", "set", "alice", "--storage", "1000")
    changes = drained(server, sub)  # already there when the CLI has returned (no waiting)
    created = [ch for ch in changes if isinstance(ch, MailboxCreated)]
    assert [ch.mailbox.name for ch in created] == ["FromCli"]
    assert created[0].origin.service == "cli"
    quota = [ch for ch in changes if isinstance(ch, QuotaChanged)]
    assert [(q.kind, q.user) for q in quota] == [("limits", "alice")]
    assert [ch.seq for ch in changes] == sorted(ch.seq for ch in changes)
    c.idle_done()
    # The IMAP side agrees: the mailbox lists, the quota reads back.
    assert "FromCli" in {name for _, _, name in c.list_folders()}
    assert c.get_quota_root("INBOX")[1][0].limit == 1000
    c.logout()


def test_cli_mailbox_create_reaches_notify(server: RunningServer) -> None:
    """With NOTIFY (RFC 5465) a CLI CREATE is an unsolicited LIST right away."""
    c = RawClient.connect(server.host, server.port)
    c.login("alice", PASSWORD)
    caps = c.command("c", "CAPABILITY")
    if "NOTIFY" not in caps[0].split():
        pytest.skip("NOTIFY not advertised")
    assert c.command("n", "NOTIFY SET (personal (MailboxName))")[-1].startswith("n OK")
    c.line("i IDLE")
    assert c.response().startswith("+ ")
    cli(server, "mailbox", "create", "alice", "Announced")
    c.sock.settimeout(1.0)  # at once: the CLI returned after the server published
    listed = c.response()
    assert listed.startswith("* LIST (") and listed.endswith(('"Announced"', " Announced"))
    c.line("DONE")
    assert c.until_tagged("i")[-1].startswith("i OK")
    c.close()


def test_kick_from_the_same_process(server: RunningServer) -> None:
    """who/kick over the control socket of an in-thread server (the path is long: pytest's
    tmp_path goes through /proc/self/fd)."""
    c = client(server)
    c.select_folder("INBOX")

    async def ask(req: control.Who | control.Kick) -> dict[str, Any]:
        return await control.request(server.config.data_dir, req)

    who = asyncio.run(ask(control.Who()))
    [session] = who["sessions"]
    assert session["user"] == "alice" and session["mailbox"] == "INBOX"
    kicked = asyncio.run(ask(control.Kick(session=session["id"])))
    assert kicked == {"ok": True, "kicked": [session["id"]]}
    sock = c._imap.sock
    sock.settimeout(5)
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    assert data == b"* BYE Disconnected by administrator\r\n"


# --- commit order across processes (the store) --------------------------------------------
async def test_foreign_commits_are_published_first_and_in_order(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    published: list[Change] = []

    def publish(changes: Sequence[Change]) -> None:
        published.extend(changes)

    server = await SqliteStore.open(path, publish, scrypt_n=2)
    other = await SqliteStore.open(path, lambda changes: None, scrypt_n=2)  # "the CLI"
    try:
        await server.create_user("alice", "pw")
        await server.follow_foreign_commits()  # from the end: history is not replayed
        assert await server.publish_foreign() == 6
        published.clear()
        alice = await server.get_user("alice")
        cli = Origin(service="cli")
        await other.create_mailbox(alice.id, "A", cli)
        await other.create_mailbox(alice.id, "B", cli)
        # No notice: the server's next own transaction publishes them first.
        await server.append(alice.id, "INBOX", [_message()], Origin(session="s1"))
        assert [type(c).__name__ for c in published] == [
            "MailboxCreated",
            "MailboxCreated",
            "MessagesAdded",
        ]
        assert [c.seq for c in published] == [7, 8, 9]
        assert [c.mailbox.name for c in published[:2]] == ["A", "B"]  # type: ignore[union-attr]
        # With the notice (what the control socket's "changed" does).
        await other.append(alice.id, "A", [_message(), _message()], cli, kind="import")
        assert await server.publish_foreign() == 10
        assert isinstance(published[-1], MessagesAdded) and published[-1].kind == "import"
        assert await server.publish_foreign() == 10  # nothing new: nothing published
        assert len(published) == 4
        # An own transaction without Changes publishes nothing; the foreign one waits.
        await other.create_mailbox(alice.id, "C", cli)
        await server.set_retention(alice.id, "INBOX", 3)
        assert len(published) == 4
        assert await server.publish_foreign() == 11 and len(published) == 5
    finally:
        await other.close()
        await server.close()


async def test_unreadable_foreign_rows_are_stepped_over(tmp_path: Path) -> None:
    """Rows the server cannot read (a newer writer's kinds), more than one batch of them,
    are skipped with a warning; the readable change after them is still published."""
    path = tmp_path / "s.sqlite3"
    published: list[Change] = []
    server = await SqliteStore.open(path, published.extend, scrypt_n=2)
    other = await SqliteStore.open(path, lambda changes: None, scrypt_n=2)
    try:
        alice = await server.create_user("alice", "pw")
        await server.follow_foreign_commits()
        published.clear()
        with sqlite3.connect(path) as db:  # what a newer version's process might log
            db.executemany(
                "INSERT INTO change_log (kind, user, payload, created) VALUES (?, ?, ?, ?)",
                [("FromTheFuture", "alice", "{}", "2026-01-01T00:00:00+00:00")] * 2500,
            )
        await other.create_mailbox(alice.id, "A", Origin(service="cli"))
        last = await server.publish_foreign()
        assert [type(c).__name__ for c in published] == ["MailboxCreated"]
        assert published[0].seq == last  # everything before it was passed
    finally:
        await other.close()
        await server.close()


async def test_the_bus_sees_foreign_expunges_in_order(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    bus = EventBus()
    server = await SqliteStore.open(path, bus.publish, scrypt_n=2)
    other = await SqliteStore.open(path, lambda changes: None, scrypt_n=2)
    try:
        await server.follow_foreign_commits()
        await server.create_user("alice", "pw")
        alice = await server.get_user("alice")
        added = await server.append(alice.id, "INBOX", [_message(), _message()], Origin())
        sub = bus.subscribe()
        sub.watch(mailboxes=frozenset({added.mailbox.id}))
        await other.set_retention(alice.id, "INBOX", 1)
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
        assert await other.expire(now=later) == 2
        assert not sub.pending
        await server.publish_foreign()
        [expunged] = sub.drain()
        assert isinstance(expunged, MessagesExpunged) and expunged.kind == "expire"
        assert [m.uid for m in expunged.messages] == [1, 2]
    finally:
        await other.close()
        await server.close()


def _message() -> Any:
    from store.api import NewMessage

    return NewMessage(SIMPLE)


# --- the control socket protocol -----------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"op":"changed"}\n', control.Changed()),
        (b'{"op": "who"}', control.Who()),
        (b'{"op":"subscribe"}\r\n', control.Subscribe()),
        (b'{"op":"kick","session":"s-1"}', control.Kick(session="s-1")),
        (b'{"op":"kick","user":"alice"}', control.Kick(user="alice")),
    ],
)
def test_parse_request(line: bytes, expected: control.Request) -> None:
    assert control.parse_request(line) == expected
    assert control.parse_request(control.encode(control.request_object(expected))) == expected


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"not json",
        b"[1]",
        b'"who"',
        b"{}",
        b'{"op":"reboot"}',
        b'{"op":"kick"}',
        b'{"op":"kick","session":"a","user":"b"}',
        b'{"op":"kick","user":""}',
        b'{"op":"kick","user":7}',
        b"\xff\xfe",
    ],
)
def test_parse_request_rejects(line: bytes) -> None:
    with pytest.raises(control.ProtocolError):
        control.parse_request(line)


def test_encode_is_one_line() -> None:
    data = control.encode({"ok": True, "text": "a\nb", "name": "caf\u00e9"})
    assert data.count(b"\n") == 1 and data.endswith(b"\n") and "café".encode() in data


def test_control_socket_on_the_wire(server: RunningServer) -> None:
    """Mode 0600; errors are answered and the connection stays usable; several requests
    on one connection; a subscriber is pushed the seq of each publish."""
    path = control.socket_path(server.config.data_dir)
    assert path.stat().st_mode & 0o777 == 0o600
    with control.addressable(path) as (where, _):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(where)
        watcher = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        watcher.connect(where)
    with sock, watcher:
        sock.settimeout(5)
        watcher.settimeout(5)
        reader = sock.makefile("rb")
        sock.sendall(b'nonsense\n{"op":"who"}\n{"op":"changed"}\n')
        assert reader.readline().startswith(b'{"ok":false,"error":"not JSON')
        assert reader.readline() == b'{"ok":true,"sessions":[]}\n'
        assert reader.readline() == b'{"ok":true,"seq":12}\n'
        watcher.sendall(b'{"op":"subscribe"}\n')
        pushed = watcher.makefile("rb")
        assert pushed.readline() == b'{"ok":true,"seq":12}\n'
        server.call(
            server.server.store.create_mailbox(
                server.call(server.server.store.get_user("bob")).id, "New", Origin()
            )
        )
        assert pushed.readline() == b'{"seq":13}\n'
