"""Events into NATS JetStream end to end (issue 19, docs/jetstream.md): the server's sink
chosen in the TOML file, and ``imapd notifyd --method jetstream`` killed with -9 mid-batch."""

from __future__ import annotations

import asyncio
import imaplib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imapd import config as config_mod
from imapd.config import ConfigError
from notify.follow import StateFile
from store.api import NewMessage
from store.changes import Origin
from store.sqlite import SqliteStore
from tests.helpers.natsserver import NatsServer, require_nats
from tests.helpers.server import PASSWORD, RunningServer


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(require_nats(), tmp_path / "js")
    server.start()
    yield server
    server.stop()


async def stream_messages(
    url: str, stream: str = "IMAPD_EVENTS", at_least: int = 0, timeout: float = 30.0
) -> list[Any]:
    """Every message of the stream in order, once it holds ``at_least``."""
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        async with asyncio.timeout(timeout):
            while True:
                try:
                    info = await js.stream_info(stream)
                except NotFoundError:
                    info = None
                if info is not None and info.state.messages >= at_least:
                    break
                await asyncio.sleep(0.05)
        return [
            await js.get_msg(stream, seq)
            for seq in range(info.state.first_seq, info.state.last_seq + 1)
        ]
    finally:
        await nc.close()


def test_toml_options(tmp_path: Path) -> None:
    toml = tmp_path / "imapd.toml"
    toml.write_text(
        'event_notifier = "jetstream"\njetstream_url = "nats://10.0.0.1:4222"\n'
        'jetstream_stream = "MAIL"\njetstream_subject_prefix = "mail.ev"\n'
        'jetstream_creds = "/etc/imapd/nats.creds"\njetstream_max_age = 3600\n'
    )
    config = config_mod.load(toml)
    assert (
        config.jetstream_url,
        config.jetstream_stream,
        config.jetstream_subject_prefix,
        config.jetstream_creds,
        config.jetstream_max_age,
    ) == ("nats://10.0.0.1:4222", "MAIL", "mail.ev", Path("/etc/imapd/nats.creds"), 3600.0)
    toml.write_text('event_notifier = "jetstream"\n')
    with pytest.raises(ConfigError, match="no NATS URL"):
        config_mod.load(toml)
    toml.write_text(
        'event_notifier = "jetstream"\njetstream_url = "nats://h:1"\nnotifysocket = "/run/notify"\n'
    )
    with pytest.raises(ConfigError, match="notify_socket must not be set"):
        config_mod.load(toml)
    toml.write_text(
        'event_notifier = "jetstream"\njetstream_url = "nats://h:1"\n'
        'jetstream_subject_prefix = "a.>"\n'
    )
    with pytest.raises(ConfigError, match="subject prefix"):
        config_mod.load(toml)


def test_server_publishes_appends(
    server_factory: Any, nats_server: NatsServer, tmp_path: Path
) -> None:
    """event_notifier = "jetstream": an APPEND's MessageAppend is in the stream under
    imapd.MessageAppend.<user>, with the status file saying ok."""
    server: RunningServer = server_factory(
        event_notifier="jetstream", jetstream_url=nats_server.url
    )
    server.add_user("alice")
    client = imaplib.IMAP4(server.host, server.port)
    client.login("alice", PASSWORD)
    typ, _ = client.append("INBOX", None, None, b"Subject: hi\r\n\r\nhello\r\n")
    assert typ == "OK"
    client.logout()
    msgs = asyncio.run(stream_messages(nats_server.url, at_least=1))
    appends = [m for m in msgs if m.subject == "imapd.MessageAppend.alice"]
    assert len(appends) == 1
    event = json.loads(appends[0].data)
    assert event["event"] == "MessageAppend"
    assert event["user"] == "alice"
    assert "/INBOX;UIDVALIDITY=" in event["uri"]
    status = json.loads((server.config.data_dir / "jetstream.status.json").read_text())
    assert status["state"] == "ok"


def notifyd(data_dir: Path, url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "imapd",
            "notifyd",
            "--method",
            "jetstream",
            "--url",
            url,
            "--data-dir",
            str(data_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_for(check: Any, timeout: float = 30.0, step: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(step)


def stream_count(url: str) -> int:
    async def count() -> int:
        import nats
        from nats.js.errors import NotFoundError

        nc = await nats.connect(url)
        try:
            return int((await nc.jetstream().stream_info("IMAPD_EVENTS")).state.messages)
        except NotFoundError:
            return 0
        finally:
            await nc.close()

    return asyncio.run(count())


@pytest.mark.slow
def test_notifyd_killed_mid_batch_publishes_each_event_once_in_order(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    total = 3000

    async def setup() -> tuple[int, int]:
        store = await SqliteStore.open(
            data_dir / "imapd.sqlite3", lambda changes: None, scrypt_n=2, synchronous="NORMAL"
        )
        try:
            user = await store.create_user("carol", "pw")
            return user.id, await store.change_log_head()
        finally:
            await store.close()

    user_id, head = asyncio.run(setup())
    state = StateFile(data_dir / "jetstream-notifyd.state")
    first = notifyd(data_dir, nats_server.url)  # a first start: from the outbox's end
    wait_for(lambda: state.load() is not None)
    first.send_signal(signal.SIGTERM)
    assert first.wait(20) == 0

    async def append() -> None:
        store = await SqliteStore.open(
            data_dir / "imapd.sqlite3", lambda changes: None, scrypt_n=2, synchronous="NORMAL"
        )
        try:
            for i in range(total):
                await store.append(
                    user_id,
                    "INBOX",
                    [NewMessage(f"Subject: m{i}\r\n\r\nbody {i}\r\n".encode())],
                    Origin(service="cli"),
                )
        finally:
            await store.close()

    asyncio.run(append())
    victim = notifyd(data_dir, nats_server.url)
    wait_for(lambda: stream_count(nats_server.url) > 0, step=0.005)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    in_stream = stream_count(nats_server.url)
    saved = state.load()
    assert 0 < in_stream < total, "the kill did not land mid-run"
    assert saved is not None
    # The cursor never runs ahead of the stream's acks; what the stream holds beyond it
    # (usually most of a batch: the cursor is saved at most every 0.2 s) is published again
    # after the restart, and must not appear twice.
    assert saved.seq <= head + in_stream
    again = notifyd(data_dir, nats_server.url)
    try:
        msgs = asyncio.run(stream_messages(nats_server.url, at_least=total))
        wait_for(lambda: (s := state.load()) is not None and s.seq == head + total)
    finally:
        again.send_signal(signal.SIGTERM)
        output = again.communicate(timeout=20)[0].decode()
    assert [m.headers["Nats-Msg-Id"] for m in msgs] == [
        f"imapd:{head + 1 + i}:0" for i in range(total)
    ], output
    assert [json.loads(m.data)["uri"].rsplit("=", 1)[1] for m in msgs] == [
        str(i + 1) for i in range(total)
    ]
    assert {m.subject for m in msgs} == {"imapd.MessageAppend.carol"}


CONSUMER = Path(__file__).resolve().parents[2] / "scripts" / "jetstream-consumer"


def consume(url: str, durable: str, count: int) -> list[tuple[str, dict[str, Any]]]:
    done = subprocess.run(
        [
            sys.executable,
            str(CONSUMER),
            "--url",
            url,
            "--user",
            "alice.b",
            "--durable",
            durable,
            "--count",
            str(count),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [line.split(" ", 1) for line in done.stdout.splitlines()]
    return [(subject, json.loads(data)) for subject, data in lines]


def test_example_consumer_resumes_and_consumers_are_independent(
    server_factory: Any, nats_server: NatsServer
) -> None:
    """scripts/jetstream-consumer: a durable consumer goes on after a restart where it
    acknowledged; a second one gets the same events on its own."""
    server: RunningServer = server_factory(
        event_notifier="jetstream", jetstream_url=nats_server.url, event_groups=("message",)
    )
    server.add_user("alice.b")
    server.add_user("bob")
    for user in ("alice.b", "bob", "alice.b"):
        client = imaplib.IMAP4(server.host, server.port)
        client.login(user, PASSWORD)
        client.append("INBOX", None, None, f"Subject: for {user}\r\n\r\nhi\r\n".encode())
        client.logout()
    asyncio.run(stream_messages(nats_server.url, at_least=3))
    first = consume(nats_server.url, "indexer", 1)
    after_restart = consume(nats_server.url, "indexer", 1)
    other = consume(nats_server.url, "audit", 2)
    assert [s for s, _ in first + after_restart] == ["imapd.MessageAppend.alice%2Eb"] * 2
    uids = [e["uri"].rsplit("=", 1)[1] for _, e in first + after_restart]
    assert uids == ["1", "2"]
    assert [e for _, e in other] == [e for _, e in first + after_restart]
    assert all(e["user"] == "alice.b" for _, e in other)
