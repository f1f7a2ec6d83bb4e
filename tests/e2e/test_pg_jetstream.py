"""The JetStream sink with two `imapd serve --store postgresql://...` instances on one
database (issue 19 point 6; docs/jetstream.md, docs/workers.md): both configured with the
same ``event_notifier = "jetstream"``, the sink runs under the ``events-jetstream`` lease in
one of them. APPENDs through both reach the stream once each, in commit order; after kill -9
of the lease holder the other takes the lease over and the events committed meanwhile follow,
none lost, none repeated."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import test_pg_cluster as cluster
from tests.e2e.messages import SIMPLE
from tests.e2e.process import wait_for
from tests.e2e.test_jetstream import stream_messages
from tests.helpers.natsserver import NatsServer, require_nats

LEASE = 1.0
ROLE = "events-jetstream"


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(require_nats(), tmp_path / "js")
    server.start()
    yield server
    server.stop()


class Instance(cluster.Instance):
    """One `imapd serve --store URL --config TOML` process (the JetStream notifier)."""

    def __init__(self, data_dir: Path, store: str, toml: Path) -> None:
        super().__init__(data_dir, store, ("--config", str(toml)), LEASE)

    def status(self) -> str:
        path = self.data_dir / "jetstream.status.json"
        return path.read_text() if path.exists() else ""


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
