"""``imapd serve --workers 2`` for real (docs/workers.md): a supervisor and two worker
processes on one SQLite store, real IMAP clients, a real notify datagram socket.

Sessions landing on different workers (told apart by ``imapd who --json``, which names each
session's instance) see each other's commits, IDLE pushed within milliseconds through the
wake channel; \\Recent goes to one session; events reach the notify socket exactly once
whichever worker committed; kill -9 of a worker: restarted by the supervisor; kill -9 of the
worker holding the events lease: the other takes over and nothing is lost; who and kick
reach the sessions of both workers; SIGTERM stops everything and exits 0."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imapclient
import pytest

from tests.e2e.messages import SIMPLE
from tests.e2e.process import free_port, imapd, wait_for
from tests.notify.listener import Listener

LEASE = 1.0  # cluster_lease_time for these tests: takeover within ~1.3 s


class Workers:
    """The supervisor process and what its log says of its workers."""

    def __init__(
        self,
        data_dir: Path,
        notify_socket: str | None,
        workers: int = 2,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.log = data_dir.parent / "server.log"
        env = {
            **os.environ,
            "IMAPD_CLUSTER_LEASE_TIME": str(LEASE),
            "IMAPD_MAX_CONNECTIONS_PER_USER_IP": "0",  # on_two_workers holds 12 sessions of carol
            **(env or {}),
        }
        events = ["--notify-socket", notify_socket] if notify_socket else []
        self.out = self.log.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "imapd",
                "serve",
                "--workers",
                str(workers),
                "--data-dir",
                str(data_dir),
                "--listen",
                f"127.0.0.1:{self.port}",
                *events,
            ],
            stdout=self.out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.wait_for(lambda: len(self.serving()) >= workers, "workers serving")

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, cond: Any, what: str, timeout: float = 30.0) -> None:
        """tests/e2e/process.py's wait, failing at once if the supervisor exits."""
        wait_for(cond, what, timeout, proc=self.proc, log=self.text)

    def pids(self) -> dict[int, int]:
        """Worker index -> its latest pid, from the supervisor's log."""
        out: dict[int, int] = {}
        for index, pid in re.findall(r"worker (\d+): pid (\d+)", self.text()):
            out[int(index)] = int(pid)
        return out

    def serving(self) -> set[int]:
        return {int(p) for p in re.findall(r"worker \d+ \(pid (\d+)\) serving", self.text())}

    def lease_holder(self, role: str) -> int:
        """The pid of the last instance that took ``role``."""
        taken = re.findall(rf"lease {role} taken by [^/]+/(\d+)/", self.text())
        assert taken, self.text()
        return int(taken[-1])

    def client(self, user: str = "carol") -> imapclient.IMAPClient:
        c = imapclient.IMAPClient("127.0.0.1", self.port, ssl=False, timeout=10)
        c.login(user, "pw")
        return c

    def who(self) -> list[dict[str, Any]]:
        result = imapd("who", "--json", data_dir=self.data_dir)
        assert result.returncode == 0, result.stderr
        sessions: list[dict[str, Any]] = json.loads(result.stdout)
        return sessions

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.out.close()
        return self.proc.returncode


@pytest.fixture
def listener() -> Iterator[Listener]:
    lis = Listener()
    yield lis
    lis.cleanup()


@pytest.fixture
def workers(tmp_path: Path, listener: Listener) -> Iterator[Workers]:
    data_dir = tmp_path / "data"
    added = imapd("user", "add", "carol", "--password", "pw", data_dir=data_dir)
    assert added.returncode == 0, added.stderr
    w = Workers(data_dir, listener.path)
    yield w
    code = w.stop()
    for pid in w.pids().values():  # no worker outlives the supervisor
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert code == 0, w.text()


def local_port(c: imapclient.IMAPClient) -> str:
    sock: socket.socket = c._imap.sock  # which session is this client's
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def on_two_workers(w: Workers, count: int = 12) -> tuple[imapclient.IMAPClient, ...]:
    """Clients until both workers have one: (on the first worker, on the second, rest...)."""
    clients = [w.client() for _ in range(count)]
    deadline = time.monotonic() + 10
    while True:
        where = {s["peer"]: s["instance"] for s in w.who() if s["user"] == "carol"}
        if all(local_port(c) in where for c in clients) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    instances = sorted({where[local_port(c)] for c in clients if local_port(c) in where})
    assert len(instances) == 2, f"all sessions on one worker: {where}"
    first = [c for c in clients if where.get(local_port(c)) == instances[0]]
    second = [c for c in clients if where.get(local_port(c)) == instances[1]]
    rest = [c for c in clients if c is not first[0] and c is not second[0]]
    for c in rest:
        c.logout()
    return first[0], second[0]


def append_events(lis: Listener, count: int, timeout: float = 10.0) -> list[int]:
    """UIDs of the next ``count`` MessageAppend events (other events skipped)."""
    uids: list[int] = []
    while len(uids) < count:
        event = lis.next(timeout)
        if event["event"] == "MessageAppend":
            uids.append(int(event["uri"].rsplit("=", 1)[1]))
    return uids


def no_more_appends(lis: Listener, quiet: float = 1.5) -> list[int]:
    extra: list[int] = []
    try:
        while True:
            event = lis.next(quiet)
            if event["event"] == "MessageAppend":
                extra.append(int(event["uri"].rsplit("=", 1)[1]))
    except TimeoutError:
        return extra


def test_sessions_on_two_workers_see_each_others_commits(workers: Workers) -> None:
    a, b = on_two_workers(workers)
    a.select_folder("INBOX")
    b.select_folder("INBOX")
    b.idle()
    latencies: list[float] = []
    for n in range(1, 6):
        a.append("INBOX", SIMPLE)
        done = time.monotonic()
        got = b.idle_check(timeout=5)
        latencies.append(time.monotonic() - done)
        assert (n, b"EXISTS") in got, got
    b.idle_done()
    print(f"IDLE push across workers: max {max(latencies) * 1000:.1f} ms")  # noqa: T201
    # The other way round, and \Recent: the appending session's, nobody else's.
    a.idle()
    b.append("INBOX", SIMPLE)
    assert (6, b"EXISTS") in a.idle_check(timeout=5)
    a.idle_done()
    recent = [c.search(["RECENT"]) for c in (a, b)]
    assert sorted(u for r in recent for u in r) == [1, 2, 3, 4, 5, 6], recent  # each once


def test_a_cli_commit_reaches_both_workers(workers: Workers, tmp_path: Path) -> None:
    """The CLI wakes every worker (DATA_DIR/wake/), not only the one on the control socket."""
    maildir = tmp_path / "md"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "new" / "1700000000.M1.host").write_bytes(SIMPLE)
    clients = on_two_workers(workers)
    for c in clients:
        c.select_folder("INBOX")
        c.idle()
    imported = imapd("import", "carol", "INBOX", str(maildir), data_dir=workers.data_dir)
    assert imported.returncode == 0, imported.stderr
    for c in clients:
        assert (1, b"EXISTS") in c.idle_check(timeout=2)
        c.idle_done()


def test_events_once_and_kill_9_of_the_lease_holder(workers: Workers, listener: Listener) -> None:
    a, b = on_two_workers(workers)
    for c in (a, b, a, b):
        c.append("INBOX", SIMPLE)
    assert sorted(append_events(listener, 4)) == [1, 2, 3, 4]
    assert no_more_appends(listener) == []  # once, not once per worker
    holder = workers.lease_holder("events-socket")
    os.kill(holder, signal.SIGKILL)
    killed = time.monotonic()
    # Commits while nobody holds the lease wait in the outbox.
    for _ in range(3):
        for c in (a, b):
            try:
                c.append("INBOX", SIMPLE)
                break
            except (OSError, imapclient.exceptions.IMAPClientError):
                continue
        else:
            workers.client().append("INBOX", SIMPLE)
    workers.wait_for(lambda: workers.lease_holder("events-socket") != holder, "takeover")
    print(f"takeover {time.monotonic() - killed:.2f} s after kill -9 (lease {LEASE} s)")  # noqa: T201
    assert sorted(append_events(listener, 3)) == [5, 6, 7]
    assert no_more_appends(listener) == []
    # The dead worker was forked again, and the new one serves.
    workers.wait_for(lambda: len(workers.serving()) >= 3, "restart")
    assert holder not in workers.pids().values()
    assert "killed by signal 9; starting it again" in workers.text()


def test_who_and_kick_across_workers(workers: Workers) -> None:
    a, b = on_two_workers(workers)
    sessions = [s for s in workers.who() if s["user"] == "carol"]
    assert len({s["instance"] for s in sessions}) == 2
    assert {local_port(a), local_port(b)} <= {s["peer"] for s in sessions}
    kicked = imapd("kick", "--user", "carol", data_dir=workers.data_dir)
    assert kicked.returncode == 0, kicked.stderr
    assert len(kicked.stdout.splitlines()) == 2, kicked.stdout
    for c in (a, b):
        with pytest.raises((imapclient.exceptions.IMAPClientAbortError, OSError)):
            c.noop()
            c.noop()
    assert [s for s in workers.who() if s["user"] == "carol"] == []


def test_jetstream_gets_each_event_once_across_workers_and_a_takeover(
    tmp_path: Path,
) -> None:
    """Issue 19 point 6: the JetStream sink runs in one worker (its lease); kill -9 it and
    the other resumes from the cursor; the stream holds every MessageAppend exactly once
    (what the dead one sent after its last saved cursor is dropped by Nats-Msg-Id)."""
    import asyncio

    from tests.e2e.test_jetstream import stream_messages
    from tests.helpers.natsserver import NatsServer, require_nats

    nats_server = NatsServer(require_nats(), tmp_path / "js")
    nats_server.start()
    data_dir = tmp_path / "data"
    try:
        assert imapd("user", "add", "carol", "--password", "pw", data_dir=data_dir).returncode == 0
        env = {"IMAPD_EVENT_NOTIFIER": "jetstream", "IMAPD_JETSTREAM_URL": nats_server.url}
        w = Workers(data_dir, None, env=env)
        try:
            a, b = on_two_workers(w)
            for c in (a, b, a, b):
                c.append("INBOX", SIMPLE)
            holder = w.lease_holder("events-jetstream")
            os.kill(holder, signal.SIGKILL)
            for _ in range(3):
                w.client().append("INBOX", SIMPLE)
            w.wait_for(lambda: w.lease_holder("events-jetstream") != holder, "takeover")
            msgs = asyncio.run(stream_messages(nats_server.url, at_least=1))
            deadline = time.monotonic() + 20
            while sum(m.subject == "imapd.MessageAppend.carol" for m in msgs) < 7:
                assert time.monotonic() < deadline, [m.subject for m in msgs]
                time.sleep(0.2)
                msgs = asyncio.run(stream_messages(nats_server.url, at_least=1))
            uris = [
                json.loads(m.data)["uri"] for m in msgs if m.subject == "imapd.MessageAppend.carol"
            ]
            assert sorted(int(u.rsplit("=", 1)[1]) for u in uris) == list(range(1, 8))
        finally:
            assert w.stop() == 0, w.text()
    finally:
        nats_server.stop()


def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path, listener: Listener) -> None:
    data_dir = tmp_path / "data"
    assert imapd("user", "add", "carol", "--password", "pw", data_dir=data_dir).returncode == 0
    w = Workers(data_dir, listener.path)
    pids = list(w.pids().values())
    c = w.client()
    w.proc.send_signal(signal.SIGKILL)
    w.proc.wait(10)
    w.out.close()
    deadline = time.monotonic() + 20

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return not Path(f"/proc/{pid}/stat").read_text().split(")")[1].startswith(" Z")

    while any(alive(p) for p in pids):
        assert time.monotonic() < deadline, f"workers left running: {pids}\n{w.text()}"
        time.sleep(0.1)
    with pytest.raises((imapclient.exceptions.IMAPClientAbortError, OSError)):
        c.noop()
        c.noop()
