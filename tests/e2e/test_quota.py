"""QUOTA (RFC 9208) end to end: imapclient's quota calls, usage through every IMAP path and
LMTP, [OVERQUOTA] refusals, APPENDs on several connections racing for the last bytes, LMTP
552/452, ``imapd quota``, the admin transcripts, and the QuotaChange / QuotaExceed /
QuotaWithin events through a real datagram listener."""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imapclient
import pytest
from imapclient.exceptions import IMAPClientError

from notify import cyrus
from store.quota import Limits
from tests.e2e.messages import SIMPLE
from tests.e2e.process import imapd
from tests.helpers.imap import client
from tests.helpers.server import PASSWORD, RunningServer
from tests.helpers.transcript import run_transcript
from tests.notify.listener import Listener, example_keys
from tests.rawclient import RawClient

BOTH_BACKENDS = True  # tests/conftest.py: SQLite and PostgreSQL (issue 18)

ADMIN_TRANSCRIPTS = sorted(
    (Path(__file__).parent.parent / "transcripts" / "admin").glob("quota_*.imap")
)
SERVERNAME = "imap.example.org"
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$")


def sized(size: int, subject: str = "quota") -> bytes:
    """A message of exactly ``size`` octets."""
    head = f"Subject: {subject}\r\n\r\n".encode()
    return head + b"x" * (size - len(head))


def with_admin(running: RunningServer) -> RunningServer:
    running.add_user("alice")
    running.add_user("bob")
    running.call(running.server.store.create_user("root", PASSWORD, admin=True))
    return running


def set_quota(
    running: RunningServer, user: str, storage: int | None = None, messages: int | None = None
) -> None:
    running.call(running.server.store.set_quota(user, Limits(storage, messages)))


def figures(c: imapclient.IMAPClient, mailbox: str = "INBOX") -> dict[str, tuple[int, int]]:
    roots, quotas = c.get_quota_root(mailbox)
    assert (roots.mailbox, roots.quota_roots) == (mailbox, ["alice"])
    return {q.resource: (q.usage, q.limit) for q in quotas}


@pytest.fixture
def admin_server(server_factory: Any) -> RunningServer:
    return with_admin(server_factory())


@pytest.mark.parametrize("path", ADMIN_TRANSCRIPTS, ids=[p.stem for p in ADMIN_TRANSCRIPTS])
def test_admin_transcript(admin_server: RunningServer, path: Path) -> None:
    run_transcript(admin_server, path)


def test_admin_transcripts_exist() -> None:
    assert ADMIN_TRANSCRIPTS


def multiappend(running: RunningServer, messages: list[bytes]) -> str:
    """MULTIAPPEND (RFC 3502) over a raw connection (imapclient 4.1 puts two spaces between
    its literals); returns the tagged reply."""
    raw = RawClient.connect(running.host, running.port)
    raw.login("alice", PASSWORD)
    raw.send(b"m APPEND INBOX" + b"".join(b" {%d+}\r\n" % len(m) + m for m in messages) + b"\r\n")
    reply = raw.until_tagged("m")[-1]
    raw.close()
    return reply


def test_usage_through_every_imap_path(admin_server: RunningServer) -> None:
    set_quota(admin_server, "alice", storage=1000, messages=100)
    c = client(admin_server)
    assert figures(c) == {"STORAGE": (0, 1000), "MESSAGE": (0, 100)}
    c.append("INBOX", sized(2048))
    multiappend(admin_server, [sized(1024), sized(1024)])
    assert figures(c) == {"STORAGE": (4, 1000), "MESSAGE": (3, 100)}
    c.select_folder("INBOX")
    c.copy([1, 2], "Archive")
    assert figures(c, "Archive") == {"STORAGE": (7, 1000), "MESSAGE": (5, 100)}
    c.move([3], "Trash")  # within the root: nothing changes
    assert figures(c) == {"STORAGE": (7, 1000), "MESSAGE": (5, 100)}
    c.delete_messages([1])
    c.expunge()
    assert figures(c) == {"STORAGE": (5, 1000), "MESSAGE": (4, 100)}
    c.unselect_folder()
    c.delete_folder("Archive")
    assert figures(c) == {"STORAGE": (2, 1000), "MESSAGE": (2, 100)}
    c.logout()


def test_move_to_another_users_root_moves_usage(admin_server: RunningServer) -> None:
    """A MOVE across roots (here through the store: sharing is the ACL's business)."""
    store = admin_server.server.store
    alice = admin_server.call(store.get_user("alice"))
    bob = admin_server.call(store.get_user("bob"))
    c = client(admin_server)
    c.append("INBOX", sized(3000))
    inbox = admin_server.call(store.get_mailbox(alice.id, "INBOX"))
    admin_server.call(
        store.copy_messages(inbox.id, [1], bob.id, "INBOX", store_origin(), move=True)
    )
    assert admin_server.call(store.get_quota("alice")).usage.storage == 0
    assert admin_server.call(store.get_quota("bob")).usage.storage == 3000
    c.logout()


def store_origin() -> Any:
    from store.changes import Origin

    return Origin(service="imap", user="root")


def test_overquota_on_append_copy_move(admin_server: RunningServer) -> None:
    set_quota(admin_server, "alice", storage=3)
    c = client(admin_server)
    c.append("INBOX", sized(2000))
    with pytest.raises(IMAPClientError, match=r"\[OVERQUOTA\]"):
        c.append("INBOX", sized(1073))  # 3073 > 3072
    c.append("INBOX", sized(1072))  # exactly 3072
    c.select_folder("INBOX")
    with pytest.raises(IMAPClientError, match=r"\[OVERQUOTA\]"):
        c.copy([1, 2], "Archive")
    c.move([1, 2], "Archive")  # same root
    assert c.folder_status("Archive", [b"MESSAGES"])[b"MESSAGES"] == 2
    assert figures(c) == {"STORAGE": (3, 3)}
    c.logout()


def test_concurrent_appends_race_for_the_last_bytes(admin_server: RunningServer) -> None:
    """Six connections APPEND 1000 octets at once with room for one: exactly one wins."""
    set_quota(admin_server, "alice", storage=2)
    first = client(admin_server)
    first.append("INBOX", sized(1000))
    racers = [RawClient.connect(admin_server.host, admin_server.port) for _ in range(6)]
    for r in racers:
        r.login("alice", PASSWORD)
    barrier = threading.Barrier(len(racers))
    results: list[str] = [""] * len(racers)
    message = sized(1000)

    def race(i: int) -> None:
        barrier.wait()
        racers[i].send(b"r APPEND INBOX {%d+}\r\n" % len(message) + message + b"\r\n")
        results[i] = racers[i].until_tagged("r")[-1]

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(racers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(r.startswith("r OK") for r in results) == 1, results
    assert all(r.startswith(("r OK", "r NO [OVERQUOTA]")) for r in results), results
    assert first.folder_status("INBOX", [b"MESSAGES"])[b"MESSAGES"] == 2
    for r in racers:
        r.close()
    first.logout()


# --- LMTP ------------------------------------------------------------------------------------
def lmtp_deliver(running: RunningServer, rcpts: list[str], content: bytes) -> list[str]:
    """A raw LMTP transaction; the reply lines after DATA's end, one per recipient."""
    assert running.server.lmtp is not None
    addr = running.server.lmtp.addresses[0]
    assert isinstance(addr, tuple)
    with socket.create_connection(addr, timeout=10) as sock:
        f = sock.makefile("rb")

        def reply() -> str:
            while True:
                line = f.readline().decode().rstrip("\r\n")
                if line[3:4] != "-":
                    return line

        reply()
        sock.sendall(b"LHLO test\r\n")
        reply()
        sock.sendall(b"MAIL FROM:<s@example.net>\r\n")
        assert reply().startswith("250")
        for rcpt in rcpts:
            sock.sendall(f"RCPT TO:<{rcpt}>\r\n".encode())
            assert reply().startswith("250")
        sock.sendall(b"DATA\r\n")
        assert reply().startswith("354")
        sock.sendall(content + b".\r\n")
        out = [reply() for _ in rcpts]
        sock.sendall(b"QUIT\r\n")
        return out


@pytest.mark.parametrize(("temporary", "expected"), [(False, "552 5.2.2"), (True, "452 4.2.2")])
def test_lmtp_over_quota(server_factory: Any, temporary: bool, expected: str) -> None:
    running = with_admin(server_factory(lmtp="127.0.0.1:0", lmtp_overquota_temporary=temporary))
    set_quota(running, "alice", messages=1)
    assert lmtp_deliver(running, ["alice"], SIMPLE)[0].startswith("250 2.0.0")
    assert running.call(running.server.store.get_quota("alice")).usage.messages == 1
    alice, bob = lmtp_deliver(running, ["alice", "bob"], SIMPLE)
    assert alice.startswith(expected) and "<alice>" in alice, alice
    assert bob.startswith("250 2.0.0")  # the other recipient is not held back
    assert running.call(running.server.store.get_quota("alice")).usage.messages == 1


# --- the command line ------------------------------------------------------------------------
def test_cli_quota_set_and_get(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert imapd("user", "add", "alice", "--password", "pw", data_dir=data).returncode == 0
    done = imapd("quota", "set", "alice", "--storage", "100", data_dir=data)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "alice: storage 0 KiB of 100 KiB, messages 0 of unlimited"
    done = imapd("quota", "set", "alice", "--messages", "5", "--storage", "-1", data_dir=data)
    assert done.stdout.strip() == "alice: storage 0 KiB of unlimited, messages 0 of 5"
    done = imapd("quota", "get", "alice", data_dir=data)
    assert done.stdout.strip() == "alice: storage 0 KiB of unlimited, messages 0 of 5"
    done = imapd("quota", "get", "nobody", data_dir=data)
    assert done.returncode == 1 and "No such quota root" in done.stderr
    done = imapd("quota", "set", "alice", "--storage", "lots", data_dir=data)
    assert done.returncode == 2 and "expected a number" in done.stderr


def test_cli_quota_applies_to_a_running_server(admin_server: RunningServer) -> None:
    done = imapd("quota", "set", "alice", "--messages", "0", data_dir=admin_server.config.data_dir)
    assert done.returncode == 0, done.stderr
    c = client(admin_server)
    with pytest.raises(IMAPClientError, match=r"\[OVERQUOTA\]"):
        c.append("INBOX", SIMPLE)
    c.logout()


# --- events ----------------------------------------------------------------------------------
@pytest.fixture
def listener() -> Iterator[Listener]:
    lis = Listener()
    yield lis
    lis.cleanup()


def assert_quota_shape(event: dict[str, Any], name: str) -> None:
    assert event["event"] == name
    assert set(event) == example_keys(name), event
    ranks = [cyrus.KEY_ORDER.index(k) for k in event]
    assert ranks == sorted(ranks), list(event)
    assert STAMP.match(event["timestamp"])
    assert event["pid"] == os.getpid()


def test_quota_events(server_factory: Any, listener: Listener) -> None:
    running = with_admin(
        server_factory(notify_socket=listener.path, servername=SERVERNAME, lmtp="127.0.0.1:0")
    )
    root = client(running, "root")
    alice = client(running)
    alice.append("INBOX", sized(1500))
    alice.append("INBOX", sized(700))
    # SETQUOTA below usage: QuotaChange alone (the root is full, nothing came back under).
    root._imap._simple_command("SETQUOTA", "alice", "(STORAGE 2 MESSAGE 10)")
    change = listener.until("QuotaChange")[-1]
    assert_quota_shape(change, "QuotaChange")
    assert {
        k: change[k]
        for k in ("service", "uri", "diskQuota", "diskUsed", "maxMessages", "messages", "user")
    } == {
        "service": "imap",
        "uri": f"imap://alice@{SERVERNAME}/INBOX",
        "diskQuota": 2,
        "diskUsed": 2,
        "maxMessages": 10,
        "messages": 2,
        "user": "alice",
    }
    # A refused APPEND: QuotaExceed with the usage it found; user = the root's owner.
    with pytest.raises(IMAPClientError, match=r"\[OVERQUOTA\]"):
        alice.append("INBOX", sized(100))
    exceed = listener.until("QuotaExceed")[-1]
    assert_quota_shape(exceed, "QuotaExceed")
    assert (
        exceed["diskQuota"],
        exceed["diskUsed"],
        exceed["maxMessages"],
        exceed["messages"],
        exceed["user"],
    ) == (2, 2, 10, 2, "alice")
    assert exceed["uri"] == f"imap://alice@{SERVERNAME}/INBOX"
    # Through LMTP too, with its service.
    assert lmtp_deliver(running, ["alice"], SIMPLE)[0].startswith("552")
    exceed = listener.until("QuotaExceed")[-1]
    assert (exceed["service"], exceed["user"]) == ("lmtp", "alice")
    # An EXPUNGE back under the limit: MessageExpunge, then QuotaWithin.
    alice.select_folder("INBOX")
    alice.delete_messages([1])
    alice.expunge()
    events = listener.until("QuotaWithin")
    assert [e["event"] for e in events[-2:]] == ["MessageExpunge", "QuotaWithin"]
    within = events[-1]
    assert_quota_shape(within, "QuotaWithin")
    assert (
        within["diskQuota"],
        within["diskUsed"],
        within["maxMessages"],
        within["messages"],
        within["user"],
    ) == (2, 0, 10, 1, "alice")
    # Unlimited resources are -1; a raised limit on a full root: QuotaChange, QuotaWithin.
    root._imap._simple_command("SETQUOTA", "alice", "(MESSAGE 1)")
    assert listener.until("QuotaChange")[-1]["diskQuota"] == -1
    root._imap._simple_command("SETQUOTA", "alice", "()")
    change, within = listener.take(2)
    assert (change["event"], within["event"]) == ("QuotaChange", "QuotaWithin")
    assert (within["diskQuota"], within["maxMessages"], within["messages"]) == (-1, -1, 1)
    alice.logout()
    root.logout()
