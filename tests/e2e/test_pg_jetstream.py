"""The JetStream sink with two `imapd serve --store postgresql://...` instances on one
database (issue 19 point 6; docs/jetstream.md, docs/workers.md): both configured with the
same ``event_notifier = "jetstream"``, the sink runs under the ``events-jetstream`` lease in
one of them. APPENDs through both reach the stream once each, in commit order; after kill -9
of the lease holder the other takes the lease over and the events committed meanwhile follow,
none lost, none repeated."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import imapclient
import pytest

from tests.e2e.messages import SIMPLE
from tests.e2e.test_jetstream import stream_messages
from tests.helpers.natsserver import NatsServer, require_nats
from tests.helpers.pg import free_port

LEASE = 1.0
ROLE = "events-jetstream"


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(require_nats(), tmp_path / "js")
    server.start()
    yield server
    server.stop()


def wait_for(cond: Callable[[], bool], what: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Instance:
    """One `imapd serve --store URL --config TOML` process (the JetStream notifier)."""

    def __init__(self, data_dir: Path, store: str, toml: Path) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        data_dir.mkdir(parents=True)
        self.log = data_dir.parent / f"{data_dir.name}.log"
        self.out = self.log.open("wb")
        env = {
            **os.environ,
            "IMAPD_CLUSTER_LEASE_TIME": str(LEASE),
            "IMAPD_MAX_CONNECTIONS_PER_USER_IP": "0",
        }
        env.pop("IMAPD_CLUSTER", None)  # on by default with a PostgreSQL store
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "imapd", "serve", "--data-dir", str(data_dir)),
                *("--store", store, "--config", str(toml)),
                *("--listen", f"127.0.0.1:{self.port}"),
            ],
            stdout=self.out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        wait_for(
            lambda: "imapd: serving IMAP" in self.text() or self.proc.poll() is not None, "start"
        )
        assert self.proc.poll() is None, self.text()

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def status(self) -> str:
        path = self.data_dir / "jetstream.status.json"
        return path.read_text() if path.exists() else ""

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


def appends(url: str, at_least: int) -> list[tuple[str, int]]:
    """(Nats-Msg-Id, UID) of the stream's MessageAppend messages, in stream order, once
    there are ``at_least`` of them (the stream holds other events too)."""
    deadline = time.monotonic() + 30
    while True:
        msgs = asyncio.run(stream_messages(url))
        got = [
            (m.headers["Nats-Msg-Id"], int(m.data.decode().rsplit(";UID=", 1)[1].split('"')[0]))
            for m in msgs
            if m.subject == "imapd.MessageAppend.carol"
        ]
        if len(got) >= at_least or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_two_instances_one_stream_kill_9_of_the_lease_holder(
    dsn: str, tmp_path: Path, nats_server: NatsServer
) -> None:
    toml = tmp_path / "imapd.toml"
    toml.write_text(f'event_notifier = "jetstream"\njetstream_url = "{nats_server.url}"\n')
    added = subprocess.run(
        [
            *(sys.executable, "-m", "imapd", "user", "add", "carol", "--password", "pw"),
            *("--data-dir", str(tmp_path / "cli"), "--store", dsn),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    a = Instance(tmp_path / "a", dsn, toml)
    try:
        b = Instance(tmp_path / "b", dsn, toml)
    except BaseException:
        a.stop()
        raise
    try:
        wait_for(lambda: a.holds(ROLE) or b.holds(ROLE), "a holder")
        holder, other = (a, b) if a.holds(ROLE) else (b, a)
        assert not other.holds(ROLE)  # one lease, one producer
        # A first start begins at the change log's end: wait until the sink has read it.
        wait_for(lambda: '"state": "ok"' in holder.status(), "the sink publishing")
        ca, cb = a.client(), b.client()
        for n in range(12):  # alternating instances, each APPEND answered before the next
            (ca if n % 2 == 0 else cb).append("INBOX", SIMPLE)
        first = appends(nats_server.url, 12)
        assert [uid for _, uid in first] == list(range(1, 13))  # once each, commit order
        survivor = other.client()
        holder.proc.kill()  # kill -9: its saved cursor may lag what the stream acknowledged
        holder.proc.wait(10)
        for _ in range(5):  # wait in the change log until the other instance takes over
            survivor.append("INBOX", SIMPLE)
        wait_for(lambda: other.holds(ROLE), "takeover", within=15)
        survivor.append("INBOX", SIMPLE)
        got = appends(nats_server.url, 18)
        time.sleep(1.0)  # nothing more comes (not once per instance, no repeat)
        got = appends(nats_server.url, 18)
        assert [uid for _, uid in got] == list(range(1, 19))
        assert len({msg_id for msg_id, _ in got}) == 18
        assert got[:12] == first
        survivor.logout()
    finally:
        a.stop()
        b.stop()
