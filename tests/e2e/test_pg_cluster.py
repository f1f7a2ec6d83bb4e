"""Two `imapd serve --store postgresql://...` processes on one database as one cluster
(issue 18 point 3; docs/workers.md, docs/postgresql.md): each with its own data directory,
both configured with the same notify socket, cluster mode left unset (on by default with a
PostgreSQL store).

- Events reach the notify socket exactly once per change and in commit order while both
  run; kill -9 of the instance holding the ``events-socket`` lease: the other takes it over
  and the events committed meanwhile arrive, none lost, none repeated (the cursor was saved
  before the kill, so the at-least-once window is empty here).
- `imapd who` and `imapd kick` against either instance's data directory (its control
  socket) or with `--store URL` and no control socket list and end the sessions of both
  instances; a kick reaches the other instance through the request's NOTIFY, well before
  its next heartbeat would.
- ``cluster = false`` with a PostgreSQL store and a notify socket is refused at start.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import imapclient
import pytest

from tests.e2e.messages import SIMPLE
from tests.e2e.process import free_port, imapd, wait_for
from tests.notify.listener import Listener

#: cluster_lease_time: takeover within ~1.5 s of a kill -9. The beat (which also reads kick
#: requests) is every LEASE / 3 s; the kick test uses a long lease to tell NOTIFY apart.
LEASE = 1.0
IMAPD = (sys.executable, "-m", "imapd")


class Instance:
    """One `imapd serve --store URL` process, its log in a file; ``sink`` the event sink's
    arguments (``--notify-socket PATH`` here, ``--config TOML`` for other sinks)."""

    def __init__(
        self, data_dir: Path, store: str, sink: Sequence[str], lease: float = LEASE
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log = data_dir.parent / f"{data_dir.name}.log"
        self.out = self.log.open("wb")
        env = {
            **os.environ,
            "IMAPD_CLUSTER_LEASE_TIME": str(lease),
            "IMAPD_MAX_CONNECTIONS_PER_USER_IP": "0",
        }
        env.pop("IMAPD_CLUSTER", None)  # the default is what is tested
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "imapd", "serve", "--data-dir", str(data_dir)),
                *("--store", store, "--listen", f"127.0.0.1:{self.port}", *sink),
            ],
            stdout=self.out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        wait_for(lambda: "imapd: serving IMAP" in self.text() or self.proc.poll() is not None)
        assert self.proc.poll() is None, self.text()

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def holds(self, role: str) -> bool:
        return f"lease {role} taken by " in self.text() and self.proc.poll() is None

    def client(self) -> imapclient.IMAPClient:
        c = imapclient.IMAPClient("127.0.0.1", self.port, ssl=False, timeout=10)
        c.login("carol", "pw")
        return c

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.out.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    lis = Listener()
    yield lis
    lis.cleanup()


def two(tmp_path: Path, dsn: str, notify: str, lease: float = LEASE) -> tuple[Instance, Instance]:
    added = imapd("user", "add", "carol", "--password", "pw", data_dir=tmp_path / "cli", store=dsn)
    assert added.returncode == 0, added.stderr
    a = Instance(tmp_path / "a", dsn, ("--notify-socket", notify), lease)
    try:
        b = Instance(tmp_path / "b", dsn, ("--notify-socket", notify), lease)
    except BaseException:
        a.stop()
        raise
    return a, b


def append_events(lis: Listener, count: int, timeout: float = 10.0) -> list[int]:
    """UIDs of the next ``count`` MessageAppend events, in arrival order."""
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


def test_events_once_in_order_and_kill_9_of_the_lease_holder(
    dsn: str, tmp_path: Path, listener: Listener
) -> None:
    a, b = two(tmp_path, dsn, listener.path)
    try:
        wait_for(lambda: a.holds("events-socket") or b.holds("events-socket"), "a holder")
        holder, other = (a, b) if a.holds("events-socket") else (b, a)
        assert not other.holds("events-socket")  # one lease, one producer
        ca, cb = a.client(), b.client()
        for n in range(12):  # alternating instances, each APPEND answered before the next
            (ca if n % 2 == 0 else cb).append("INBOX", SIMPLE)
        assert append_events(listener, 12) == list(range(1, 13))  # once each, commit order
        assert no_more_appends(listener) == []  # not once per instance
        # kill -9 the producer; commits through the survivor wait in the change log.
        survivor = other.client()
        holder.proc.kill()
        holder.proc.wait(10)
        killed = time.monotonic()
        for _ in range(5):
            survivor.append("INBOX", SIMPLE)
        wait_for(lambda: other.holds("events-socket"), "takeover", within=15)
        took = time.monotonic() - killed
        print(f"takeover {took:.2f} s after kill -9 (lease {LEASE} s)")  # noqa: T201
        assert append_events(listener, 5) == [13, 14, 15, 16, 17]  # nothing lost, in order
        assert no_more_appends(listener) == []
        survivor.append("INBOX", SIMPLE)  # and the new producer goes on
        assert append_events(listener, 1) == [18]
        survivor.logout()
    finally:
        a.stop()
        b.stop()


def who(data_dir: Path, dsn: str) -> list[dict[str, Any]]:
    result = imapd("who", "--json", data_dir=data_dir, store=dsn)
    assert result.returncode == 0, result.stderr
    sessions: list[dict[str, Any]] = json.loads(result.stdout)
    return [s for s in sessions if s["user"] == "carol"]


def lists(data_dir: Path, dsn: str, peers: set[str]) -> bool:
    return peers <= {s["peer"] for s in who(data_dir, dsn)}


def local_port(c: imapclient.IMAPClient) -> str:
    host, port = c._imap.sock.getsockname()[:2]
    return f"{host}:{port}"


def test_who_and_kick_reach_both_instances(dsn: str, tmp_path: Path, listener: Listener) -> None:
    # A long lease: the beat (every lease / 3 = 20 s) would read a kick request late
    # (after 10 s on average); the request's NOTIFY must end B's session at once.
    a, b = two(tmp_path, dsn, listener.path, lease=60.0)
    try:
        on_a, on_b = a.client(), b.client()
        peers = {local_port(on_a), local_port(on_b)}
        nowhere = tmp_path / "no-server"  # no control socket: the registry in the store
        for where in (a.data_dir, b.data_dir, nowhere):
            wait_for(functools.partial(lists, where, dsn, peers), f"who {where}", 60)
            instances = {s["instance"] for s in who(where, dsn)}
            assert len(instances) == 2, instances
        # kick through A's control socket: A's session and B's, by user; B's BYE timed
        # from the command's start (Python's start-up included)
        started = time.monotonic()
        kick = subprocess.Popen(
            [*IMAPD, "kick", "--user", "carol", "--data-dir", str(a.data_dir), "--store", dsn],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        on_b._imap.sock.settimeout(30)
        assert on_b._imap.readline().startswith(b"* BYE"), "B's session not ended"
        took = time.monotonic() - started
        out, err = kick.communicate(timeout=60)
        assert kick.returncode == 0, err
        assert len(out.splitlines()) == 2, out
        print(f"kick across instances: {took:.2f} s (beat every 20 s)")  # noqa: T201
        with pytest.raises((imapclient.exceptions.IMAPClientAbortError, OSError)):
            on_a.noop()
            on_a.noop()
        # read on the request's NOTIFY, not at B's next beat (which would also end it, late)
        wait_for(
            lambda: re.search(r"cluster: kicked .* \(woken\)", b.text()) is not None, "woken", 10
        )
        assert who(nowhere, dsn) == []
        # and with no control socket at all, by the store URL alone
        again = b.client()
        wait_for(lambda: local_port(again) in {s["peer"] for s in who(nowhere, dsn)}, "who", 60)
        kicked = imapd("kick", "--user", "carol", data_dir=nowhere, store=dsn)
        assert kicked.returncode == 0, kicked.stderr
        with pytest.raises((imapclient.exceptions.IMAPClientAbortError, OSError)):
            again.noop()
            again.noop()
        assert who(nowhere, dsn) == []
    finally:
        a.stop()
        b.stop()


def test_cluster_false_with_a_sink_is_refused_on_postgresql(
    dsn: str, tmp_path: Path, listener: Listener
) -> None:
    env = {**os.environ, "IMAPD_CLUSTER": "false"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "imapd",
            "serve",
            "--data-dir",
            str(tmp_path / "a"),
            "--store",
            dsn,
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--notify-socket",
            listener.path,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "cluster = false with a PostgreSQL store and notify_socket" in result.stderr
