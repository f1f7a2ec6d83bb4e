"""Message-store events end to end: real IMAP sessions, a real server, a real datagram socket.

For each event type: the exact key set of the specification's example file and the values
(URIs, uidset, midset, sizes, counts, flagNames, order). Then the delivery guarantees: no
event for a failed command, a listener absent or full and back, kill -9 and restart, and the
bundled `imapd notifyd` listener's three methods.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import imapclient
import pytest

from notify import cyrus
from tests.e2e.messages import SIMPLE, numbered
from tests.e2e.process import free_port, imapd
from tests.helpers.imap import client
from tests.helpers.server import RunningServer
from tests.notify.listener import Listener, example_keys

BOTH_BACKENDS = True  # tests/conftest.py: SQLite and PostgreSQL (issue 18)

SERVERNAME = "imap.example.org"
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$")
NO_MID = b"From: a@example.org\r\nSubject: no id\r\n\r\nbody\r\n"

Events = tuple[RunningServer, Listener]


@pytest.fixture
def listener() -> Iterator[Listener]:
    lis = Listener()
    yield lis
    lis.cleanup()


@pytest.fixture
def ev(server_factory: Any, listener: Listener) -> Events:
    running: RunningServer = server_factory(notify_socket=listener.path, servername=SERVERNAME)
    running.add_user("alice")
    running.add_user("bob")
    # create_user's own MailboxCreate events (6 per user) come first.
    creates = listener.take(12)
    assert [e["event"] for e in creates] == ["MailboxCreate"] * 12
    return running, listener


def logged_in(ev: Events, user: str = "alice") -> imapclient.IMAPClient:
    server, lis = ev
    c = client(server, user)
    assert lis.next()["event"] == "Login"
    return c


def uidvalidity(c: imapclient.IMAPClient, name: str) -> int:
    return int(c.folder_status(name, [b"UIDVALIDITY"])[b"UIDVALIDITY"])


def assert_shape(event: dict[str, Any], example: str, *, single: bool = True) -> None:
    """The example's key set (without modseq when the event covers several messages)."""
    keys = example_keys(example) - (set() if single else {"modseq"})
    assert set(event) == keys, event
    ranks = [cyrus.KEY_ORDER.index(k) for k in event]
    assert ranks == sorted(ranks), list(event)
    if "timestamp" in event:
        assert STAMP.match(event["timestamp"]), event["timestamp"]
    assert event["pid"] == os.getpid()  # the server runs in this process's thread


def url(name: str, validity: int, user: str = "alice") -> str:
    return f"imap://{user}@{SERVERNAME}/{name};UIDVALIDITY={validity}"


# --- access ----------------------------------------------------------------------------------
def test_login_and_logout(ev: Events) -> None:
    server, lis = ev
    c = client(server)
    local_port = c.socket().getsockname()[1]
    c.logout()
    login, logout = lis.take(2)
    for event, name in ((login, "Login"), (logout, "Logout")):
        assert_shape(event, name)
        assert event["event"] == name
        assert event["uri"] == f"imap://{SERVERNAME}"
        assert event["user"] == "alice"
        assert event["service"] == "imap"
        assert (event["serverDomain"], event["serverPort"]) == ("127.0.0.1", server.port)
        assert (event["clientIP"], event["clientPort"]) == ("127.0.0.1", local_port)
    assert login["vnd.cmu.sessionId"] == logout["vnd.cmu.sessionId"]
    assert login["vnd.cmu.sessionId"].startswith(f"{SERVERNAME}-{os.getpid()}-")


@pytest.mark.sqlite_only  # session logic; the backend's session events: test_login_and_logout
def test_logout_on_disconnect_and_none_without_login(ev: Events) -> None:
    server, lis = ev
    c = client(server)
    c.shutdown()  # EOF without LOGOUT
    assert [e["event"] for e in lis.take(2)] == ["Login", "Logout"]
    anonymous = server.connect()
    anonymous.recv(1000)
    anonymous.sendall(b"a LOGIN alice wrong\r\n")
    assert b"a NO" in anonymous.recv(1000)
    anonymous.close()
    c = client(server)  # the next event is this Login: none for the failed one
    login = lis.next()
    assert login["event"] == "Login"
    c.logout()
    assert lis.next()["event"] == "Logout"


# --- messages ---------------------------------------------------------------------------------
def test_message_append(ev: Events) -> None:
    _, lis = ev
    c = logged_in(ev)
    validity = uidvalidity(c, "INBOX")
    c.append("INBOX", SIMPLE, flags=[b"$Label1"])
    c.append("INBOX", NO_MID)
    first, second = lis.take(2)
    assert_shape(first, "MessageAppend")
    assert first["uri"] == url("INBOX", validity) + "/;UID=1"
    assert first["messageSize"] == len(SIMPLE)
    assert (first["messages"], first["vnd.cmu.unseenMessages"], first["uidnext"]) == (1, 1, 2)
    assert first["vnd.cmu.midset"] == ["<lunch-1@example.org>"]
    assert first["vnd.cmu.envelope"].startswith(
        '("Fri, 06 Nov 2026 10:00:00 +0100" "Lunch on Friday" (("Alice Example" NIL'
    )
    assert first["bodyStructure"].startswith('("TEXT" "PLAIN" ')
    assert "flagNames" not in first  # extra parameter, not in the example
    assert second["uri"].endswith("/;UID=2")
    assert second["vnd.cmu.midset"] == ["NIL"]
    assert second["modseq"] > first["modseq"]
    c.logout()


def test_multiappend_one_event_per_message_in_order(ev: Events) -> None:
    _, lis = ev
    c = logged_in(ev)
    tag = c._imap._command("APPEND", "INBOX", "{3+}\r\nA\r\n", "{3+}\r\nB\r\n")
    c._imap._command_complete("APPEND", tag)
    events = lis.take(2)
    assert [e["uri"].rsplit(";UID=", 1)[1] for e in events] == ["1", "2"]
    assert [e["messages"] for e in events] == [2, 2]
    c.logout()


def test_failed_command_has_no_event(ev: Events) -> None:
    _, lis = ev
    c = logged_in(ev)
    with pytest.raises(imapclient.exceptions.IMAPClientError):
        c.append("Nonexistent", SIMPLE)
    with pytest.raises(imapclient.exceptions.IMAPClientError):
        c.create_folder("INBOX")
    c.select_folder("INBOX")
    c.add_flags([99], [b"\\Seen"])  # no such message: nothing changes
    c.subscribe_folder("Archive")  # a no-op: already subscribed
    c.create_folder("Marker")
    assert lis.next()["event"] == "MailboxCreate"
    c.logout()


def test_copy_and_move(ev: Events) -> None:
    _, lis = ev
    c = logged_in(ev)
    for i in range(3):
        c.append("INBOX", numbered(i))
    lis.take(3)
    inbox, archive = uidvalidity(c, "INBOX"), uidvalidity(c, "Archive")
    c.select_folder("INBOX")
    c.copy([2], "Archive")
    [copy] = lis.take(1)
    assert_shape(copy, "MessageCopy")
    assert copy["event"] == "vnd.cmu.MessageCopy"
    assert copy["uri"] == url("Archive", archive)
    assert copy["oldMailboxID"] == url("INBOX", inbox)
    assert (copy["vnd.cmu.oldUidset"], copy["uidset"]) == ("2", "1")
    assert copy["messages"] == 1
    c.copy([1, 3], "Archive")
    [copy] = lis.take(1)
    assert (copy["vnd.cmu.oldUidset"], copy["uidset"]) == ("1,3", "2:3")
    assert "modseq" not in copy  # two messages: Cyrus's bug not copied
    assert len(copy["vnd.cmu.midset"]) == 2
    c.move([2], "Archive")
    move, expunge = lis.take(2)
    assert_shape(move, "MessageMove")
    assert move["event"] == "vnd.cmu.MessageMove"
    assert (move["vnd.cmu.oldUidset"], move["uidset"], move["messages"]) == ("2", "4", 4)
    assert_shape(expunge, "MessageExpunge")
    assert expunge["uri"] == url("INBOX", inbox)
    assert (expunge["uidset"], expunge["messages"]) == ("2", 2)
    c.logout()


def test_store_trash_read_flags_and_expunge(ev: Events) -> None:
    _, lis = ev
    c = logged_in(ev)
    c.append("INBOX", SIMPLE)
    c.append("INBOX", numbered(2))
    lis.take(2)
    validity = uidvalidity(c, "INBOX")
    c.select_folder("INBOX")
    c.add_flags([1], [b"\\Deleted", b"\\Seen", b"\\Flagged", b"$X"])
    trash, read, flags = lis.take(3)
    assert [e["event"] for e in (trash, read, flags)] == ["MessageTrash", "MessageRead", "FlagsSet"]
    assert_shape(trash, "MessageTrash")
    assert_shape(read, "MessageRead")
    assert_shape(flags, "FlagsSet")
    assert flags["flagNames"] == "\\Flagged $X"
    assert flags["uri"] == url("INBOX", validity)
    assert read["vnd.cmu.unseenMessages"] == 1
    assert flags["vnd.cmu.midset"] == ["<lunch-1@example.org>"]
    c.remove_flags([1], [b"\\Flagged"])
    [clear] = lis.take(1)
    assert_shape(clear, "FlagsClear")
    assert (clear["event"], clear["flagNames"], clear["uidset"]) == ("FlagsClear", "\\Flagged", "1")
    c.set_flags([1], [b"\\Answered"])  # replace: \Seen and others go, \Answered comes
    clear, added = lis.take(2)
    assert (clear["event"], clear["flagNames"]) == ("FlagsClear", "\\Deleted \\Seen $X")
    assert (added["event"], added["flagNames"]) == ("FlagsSet", "\\Answered")
    c.add_flags([1, 2], [b"\\Deleted"])
    [trash] = lis.take(1)
    assert trash["uidset"] == "1:2" and "modseq" not in trash
    c.expunge()
    [expunge] = lis.take(1)
    assert_shape(expunge, "MessageExpunge", single=False)
    assert (expunge["uidset"], expunge["messages"], expunge["uidnext"]) == ("1:2", 0, 3)
    assert expunge["vnd.cmu.midset"][0] == "<lunch-1@example.org>"
    assert len(expunge["vnd.cmu.midset"]) == 2
    c.logout()


def test_fetch_body_marks_read(ev: Events) -> None:
    _, lis = ev
    c = logged_in(ev)
    c.append("INBOX", SIMPLE)
    c.append("INBOX", numbered(2))
    lis.take(2)
    c.select_folder("INBOX")
    c.fetch([1], [b"BODY.PEEK[]"])  # PEEK: no event
    c.fetch([1, 2], [b"BODY[TEXT]"])
    [read] = lis.take(1)
    assert_shape(read, "MessageRead", single=False)
    assert (read["uidset"], read["vnd.cmu.unseenMessages"]) == ("1:2", 0)
    c.fetch([1], [b"BODY[]"])  # already seen: no event
    c.create_folder("Marker")
    assert lis.next()["event"] == "MailboxCreate"
    c.logout()


@pytest.mark.sqlite_only  # the sink's filter (notify/): backend-irrelevant
def test_junk_is_excluded(ev: Events) -> None:
    _, lis = ev
    c = logged_in(ev)
    c.append("Junk", SIMPLE)
    c.append("INBOX", SIMPLE)
    assert lis.next()["uri"].split("/")[3].startswith("INBOX;")
    c.logout()


# --- mailboxes and subscriptions ---------------------------------------------------------------
def test_mailbox_create_rename_delete(ev: Events) -> None:
    _, lis = ev
    c = logged_in(ev)
    c.create_folder("Entwürfe/Sub")
    parent, child = lis.take(2)
    assert_shape(parent, "MailboxCreate")
    parent_validity = uidvalidity(c, "Entwürfe")
    assert parent["uri"] == url("Entw%C3%BCrfe", parent_validity)
    assert parent["mailboxID"] == parent["uri"]
    assert child["uri"].startswith(f"imap://alice@{SERVERNAME}/Entw%C3%BCrfe/Sub;UIDVALIDITY=")
    c.rename_folder("Entwürfe", "Drafts 2")
    [rename] = lis.take(1)  # one event: the child moves silently
    assert_shape(rename, "MailboxRename")
    assert rename["oldMailboxID"] == url("Entw%C3%BCrfe", parent_validity)
    assert rename["uri"] == url("Drafts%202", parent_validity) == rename["mailboxID"]
    c.delete_folder("Drafts 2/Sub")
    [delete] = lis.take(1)
    assert_shape(delete, "MailboxDelete")
    assert delete["uri"].startswith(f"imap://alice@{SERVERNAME}/Drafts%202/Sub;UIDVALIDITY=")
    c.logout()


def test_subscribe_unsubscribe(ev: Events) -> None:
    _, lis = ev
    c = logged_in(ev)
    c.create_folder("News")
    lis.take(1)
    c.subscribe_folder("News")
    c.unsubscribe_folder("News")
    sub, unsub = lis.take(2)
    assert_shape(sub, "MailboxSubscribe")
    assert_shape(unsub, "MailboxUnSubscribe")
    assert sub["uri"] == unsub["uri"] == f"imap://alice@{SERVERNAME}/News"
    assert (sub["event"], unsub["event"]) == ("MailboxSubscribe", "MailboxUnSubscribe")
    c.logout()


def test_no_subscription_event_for_what_did_not_happen(ev: Events) -> None:
    """RFC 9051 §6.3.6: RENAME does not update subscription information, so it publishes no
    MailboxSubscribe/MailboxUnSubscribe; §6.3.8: UNSUBSCRIBE of a name that is not
    subscribed answers OK and changes nothing, so no MailboxUnSubscribe (RFC 5423 §4.3)."""
    _, lis = ev
    c = logged_in(ev)
    c.create_folder("News")
    c.subscribe_folder("News")
    assert [e["event"] for e in lis.take(2)] == ["MailboxCreate", "MailboxSubscribe"]
    c.rename_folder("News", "Olds")
    c.unsubscribe_folder("Olds")  # never subscribed: OK, nothing happened
    c.unsubscribe_folder("News")  # still subscribed after the RENAME: an event
    c.unsubscribe_folder("News")  # no longer: OK, nothing
    c.create_folder("Marker")  # the next event after the ones above
    got = [(e["event"], e["uri"]) for e in lis.take(3)]
    assert got == [
        ("MailboxRename", f"imap://alice@{SERVERNAME}/Olds;UIDVALIDITY={uidvalidity(c, 'Olds')}"),
        ("MailboxUnSubscribe", f"imap://alice@{SERVERNAME}/News"),
        (
            "MailboxCreate",
            f"imap://alice@{SERVERNAME}/Marker;UIDVALIDITY={uidvalidity(c, 'Marker')}",
        ),
    ], got
    c.logout()


# --- configuration -----------------------------------------------------------------------------
def test_content_and_oversize(server_factory: Any, listener: Listener) -> None:
    server: RunningServer = server_factory(
        notify_socket=listener.path,
        servername=SERVERNAME,
        event_extra_params=(*cyrus.DEFAULT_EXTRA_PARAMS, "messageContent", "flagNames"),
        event_groups=("message",),
    )
    server.add_user("alice")
    c = client(server)
    c.append("INBOX", SIMPLE, flags=[b"\\Seen", b"$Label1"])
    big = SIMPLE + b"x" * 30_000 + b"\r\n"
    c.append("INBOX", big)
    small, large = listener.take(2)
    assert small["messageContent"] == {"1": SIMPLE.decode()}
    assert list(small)[-1] == "messageContent"
    assert small["flagNames"] == "\\Seen $Label1"
    assert "messageContent" not in large  # over the datagram limit: sent without it
    assert large["messageSize"] == len(big)
    c.logout()


# --- delivery guarantees -----------------------------------------------------------------------
def test_listener_absent_then_present_gets_everything_in_order(
    server_factory: Any, listener: Listener
) -> None:
    listener.close()  # nobody listening: the path does not even exist
    server: RunningServer = server_factory(notify_socket=listener.path, servername=SERVERNAME)
    server.add_user("alice")
    c = client(server)
    for i in range(5):
        c.append("INBOX", numbered(i))
    c.logout()
    listener.bind()
    events = listener.take(6 + 1 + 5 + 1, timeout=15)
    names = [e["event"] for e in events]
    assert names == ["MailboxCreate"] * 6 + ["Login"] + ["MessageAppend"] * 5 + ["Logout"]
    assert [e["uri"].rsplit("=", 1)[1] for e in events[7:12]] == ["1", "2", "3", "4", "5"]


@pytest.mark.sqlite_only  # the sink's back-pressure; the backend's cursor: the test above
def test_listener_full_then_drained(server_factory: Any, listener: Listener) -> None:
    listener.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # type: ignore[union-attr]
    server: RunningServer = server_factory(
        notify_socket=listener.path,
        servername=SERVERNAME,
        event_groups=("message",),
        sqlite_synchronous="NORMAL",
    )
    server.add_user("alice")
    c = client(server)
    for i in range(60):  # far more than the kernel queues for an idle reader (qlen 10)
        c.append("INBOX", numbered(i))
    c.logout()  # every command answered: the full listener never blocked one
    events = listener.take(60, timeout=15)
    assert [int(e["uri"].rsplit("=", 1)[1]) for e in events] == list(range(1, 61))
    sink = server.server.sink
    assert sink is not None and sink.dropped == 0


def test_event_survives_kill_9(tmp_path: Path, listener: Listener) -> None:
    data = tmp_path / "data"
    assert imapd("user", "add", "carol", "--password", "pw", data_dir=data).returncode == 0
    listener.close()  # absent while the change is made: it can only come from the outbox
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "imapd",
        "serve",
        "--data-dir",
        str(data),
        "--listen",
        f"127.0.0.1:{port}",
        "--notify-socket",
        listener.path,
    ]

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        for line in proc.stdout:  # the server says when it listens
            if b"serving IMAP" in line:
                return proc
        raise RuntimeError("server did not start")

    proc = start()
    try:
        c = imapclient.IMAPClient("127.0.0.1", port=port, ssl=False, timeout=10)
        c.login("carol", "pw")
        c.append("INBOX", SIMPLE)  # the tagged OK is back
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        listener.bind()
        proc = start()
        events = listener.take(2, timeout=15)
        assert [e["event"] for e in events] == ["Login", "MessageAppend"]
        assert events[1]["vnd.cmu.midset"] == ["<lunch-1@example.org>"]
        assert events[1]["uri"].startswith("imap://carol@localhost/INBOX;UIDVALIDITY=")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)


# --- the bundled listener -------------------------------------------------------------------------
def run_notifyd(path: str, *args: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "imapd", "notifyd", "--socket", path, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # readiness: its "listening" log line
        if b"listening on" in line:
            return proc
    raise RuntimeError(proc.stdout.read().decode() if proc.stdout else "notifyd failed")


def send(path: str, text: str, method: str = "log") -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(cyrus.datagram(method, text), path)


LOGIN = (
    '{"event":"Login","timestamp":"2026-11-23T23:52:26.699Z","service":"imap",'
    '"uri":"imap://imap.example.org","pid":15980,"user":"cyrus","flag":"\\\\Seen ü"}'
)


@pytest.fixture
def stopper() -> Iterator[Callable[[subprocess.Popen[bytes]], None]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs.append
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def test_notifyd_log_line_byte_for_byte(listener: Listener, stopper: Any) -> None:
    listener.close()
    proc = run_notifyd(listener.path, "--method", "log")
    stopper(proc)
    send(listener.path, LOGIN)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b'EVENT, , , ,  "' + LOGIN.encode() + b'"\n'


@pytest.mark.sqlite_only  # notifyd's output format; the backend's events: the tests above
def test_notifyd_jsonl_from_a_real_server(
    server_factory: Any, listener: Listener, stopper: Any
) -> None:
    listener.close()
    proc = run_notifyd(listener.path, "--method", "jsonl")
    stopper(proc)
    server: RunningServer = server_factory(notify_socket=listener.path, servername=SERVERNAME)
    server.add_user("alice")
    c = client(server)
    c.logout()
    assert proc.stdout is not None
    lines = [json.loads(proc.stdout.readline()) for _ in range(8)]
    assert [e["event"] for e in lines] == ["MailboxCreate"] * 6 + ["Login", "Logout"]


def test_notifyd_external_runs_the_program_per_event(
    tmp_path: Path, listener: Listener, stopper: Any
) -> None:
    listener.close()
    out = tmp_path / "out.txt"
    program = f"{sys.executable} -c \"import sys; open({str(out)!r}, 'a').write(sys.stdin.read())\""
    proc = run_notifyd(listener.path, "--method", "external", "--program", program)
    stopper(proc)
    send(listener.path, LOGIN)
    send(listener.path, '{"event":"Logout"}')
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if out.exists() and out.read_text().count("\n") == 2:
            break
        time.sleep(0.02)
    assert out.read_text() == LOGIN + "\n" + '{"event":"Logout"}\n'


# --- the outbox-following listener -------------------------------------------------------------
class OutboxNotifyd:
    """`imapd notifyd --outbox` as a subprocess; its stdout lines collected by a thread."""

    def __init__(self, data: Path, state: Path, out: list[str]) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "imapd",
                "notifyd",
                "--outbox",
                "--method",
                "jsonl",
                "--state",
                str(state),
                "--data-dir",
                str(data),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        for line in self.proc.stderr:  # readiness: the position it starts from is saved
            if "notifyd: first start" in line or "notifyd: resuming" in line:
                break
        else:
            raise RuntimeError(f"notifyd did not start: {self.proc.wait(10)}")
        stdout, stderr = self.proc.stdout, self.proc.stderr
        self.readers = [
            threading.Thread(target=lambda: out.extend(iter(stdout.readline, "")), daemon=True),
            threading.Thread(target=lambda: stderr.read(), daemon=True),  # never blocks it
        ]
        for reader in self.readers:
            reader.start()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        for reader in self.readers:
            reader.join(10)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(15)
        for reader in self.readers:
            reader.join(10)
        return code


def test_outbox_notifyd_survives_kill_9_mid_stream(server_factory: Any, tmp_path: Path) -> None:
    """Writers append while the outbox-following notifyd is paused, then killed -9 and
    restarted: every event after its first start is printed, in change_log order, none
    missing; at most the one event handled and not yet saved is printed twice."""
    from imapd.server import event_format
    from notify.events import events_for
    from notify.follow import StateFile
    from store.changes import read_change

    server: RunningServer = server_factory()
    for name in ("alice", "bob", "carol"):
        server.add_user(name)
    state = tmp_path / "notifyd.state"
    out: list[str] = []
    notifyd = OutboxNotifyd(server.config.data_dir, state, out)
    first = StateFile(state).load()
    assert first is not None and first.complete
    per_writer = 40
    errors: list[BaseException] = []

    def write(user: str) -> None:
        try:
            c = client(server, user)
            for i in range(per_writer):
                c.append("INBOX", numbered(i))
            c.logout()
        except Exception as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(u,)) for u in ("alice", "bob", "carol")]
    try:
        for w in writers:
            w.start()
        deadline = time.monotonic() + 60
        while len(out) < 20 and time.monotonic() < deadline:  # mid-stream
            time.sleep(0.01)
        assert len(out) >= 20
        notifyd.proc.send_signal(signal.SIGSTOP)  # paused: the writers go on
        time.sleep(0.3)
        notifyd.kill()
        killed_at = len(out)
        notifyd = OutboxNotifyd(server.config.data_dir, state, out)
        for w in writers:
            w.join(60)
        assert not errors, errors

        policy, _ = event_format(server.config)

        async def expected_events() -> list[tuple[int, str]]:
            rows = await server.server.store.change_log(first.seq, 100_000)
            expected: list[tuple[int, str]] = []
            for seq, kind, payload in rows:
                change = read_change(kind, seq, payload)
                assert change is not None
                expected += [(seq, str(e.type)) for e in events_for(change, policy)]
            return expected

        expected = server.call(expected_events())
        assert len(expected) >= 3 * per_writer  # the APPENDs (and what else the policy has)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(
            {json.loads(x)["vnd.imapd.seq"] for x in list(out)}
        ) < len(expected):
            time.sleep(0.05)
    finally:
        assert notifyd.stop() == 0
    printed = [(e["vnd.imapd.seq"], e["event"]) for e in map(json.loads, out)]
    # Each change here has one event, so the seq identifies it.
    unique = list(dict.fromkeys(printed))
    assert unique == expected  # all of them, in order
    if len(printed) > len(unique):  # the one event handled but not saved when killed
        assert len(printed) == len(unique) + 1
        assert printed[killed_at] == printed[killed_at - 1]
    assert 0 < killed_at < len(expected)  # the kill was mid-stream


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--method", "log"), "--socket PATH or --outbox is needed"),
        (("--outbox", "--method", "log"), "--outbox needs --state FILE"),
        (
            ("--outbox", "--state", "s", "--method", "webhook", "--url", "http://x/"),
            "--outbox takes --method log, jsonl or external",
        ),
        (("--outbox", "--state", "s", "--socket", "p"), "--outbox takes --method log"),
    ],
)
def test_notifyd_mode_arguments(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "imapd", "notifyd", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr


def test_outbox_notifyd_without_a_store_says_so(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "imapd",
            "notifyd",
            "--outbox",
            "--state",
            str(tmp_path / "state"),
            "--data-dir",
            str(tmp_path / "none"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "no store at" in result.stderr
    assert not (tmp_path / "none").exists()  # nothing created
