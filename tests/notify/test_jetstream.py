"""The JetStream sink (notify/jetstream.py) against a real nats-server -js: subjects, ids,
the stream's defaults, outages at start and mid-run, a stream refusing messages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from notify import jetstream, jetstream_names
from notify.bus import EventBus
from notify.cyrus import to_json
from notify.events import Policy, events_for
from notify.follow import Position
from notify.jetstream import JetStreamSink, Options
from notify.jetstream_acks import Alarm
from notify.jetstream_state import CURSOR_NAME, StoreCursor
from notify.sink import render
from store.api import NewMessage
from store.changes import Origin, read_change
from store.sqlite import SqliteStore
from tests.helpers.natsserver import NatsServer, require_nats

ORIGIN = Origin(service="imap", user="bob")


# --- pure ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("bob", "bob"),
        ("bob.smith", "bob%2Esmith"),
        ("a*b>c", "a%2Ab%3Ec"),
        ("50%", "50%25"),
        ("with space\ttab", "with%20space%09tab"),
        ("jürgen", "j%C3%BCrgen"),
        ("vnd.cmu.MessageCopy", "vnd%2Ecmu%2EMessageCopy"),
        ("", "%"),
        ("bob@example.org", "bob@example%2Eorg"),
    ],
)
def test_subject_token(text: str, token: str) -> None:
    assert jetstream.subject_token(text) == token
    assert jetstream.subject_token_decode(token) == text


def test_subject_and_id() -> None:
    assert jetstream_names.subject("mail.ev", "MessageNew", "a.b") == "mail.ev.MessageNew.a%2Eb"
    assert jetstream_names.msg_id("imapd", 12, 3) == "imapd:12:3"
    assert jetstream_names.parse_msg_id("imapd", "imapd:12:3") == Position(12, 3)
    assert jetstream_names.parse_msg_id("imapd", "other:12:3") is None
    assert jetstream_names.parse_msg_id("imapd", "imapd:x:3") is None


@pytest.mark.parametrize("prefix", ["", "a..b", "a.*", ">", "a b", "é"])
def test_bad_prefix(prefix: str) -> None:
    with pytest.raises(ValueError, match="subject prefix"):
        jetstream.check_prefix(prefix)


def test_bad_url_and_stream() -> None:
    with pytest.raises(ValueError, match="NATS URL"):
        Options(url="http://x:4222")
    with pytest.raises(ValueError, match="stream name"):
        Options(url="nats://x:4222", stream="a.b")


# --- against nats-server ---------------------------------------------------------------------
def message(subject: str, size: int = 0) -> bytes:
    return (
        f"From: a@example.org\r\nSubject: {subject}\r\nMessage-ID: <{subject}@x>\r\n\r\n"
        + "x" * size
        + "body\r\n"
    ).encode()


@pytest.fixture
def nats_binary() -> str:
    return require_nats()


@pytest.fixture
def nats_server(nats_binary: str, tmp_path: Path) -> Any:
    server = NatsServer(nats_binary, tmp_path / "js")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, EventBus]]:
    bus = EventBus()
    store = await SqliteStore.open(tmp_path / "imapd.sqlite3", bus.publish, scrypt_n=16)
    yield store, bus
    await store.close()


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


class Reader:
    """Reads the stream back with nats-py (every message, in stream order)."""

    def __init__(self, url: str, stream: str = jetstream.DEFAULT_STREAM) -> None:
        self.url = url
        self.stream = stream
        self.nc: Any = None

    async def __aenter__(self) -> Reader:
        import nats

        self.nc = await nats.connect(self.url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.nc.close()

    async def count(self) -> int:
        from nats.js.errors import NotFoundError

        try:
            info = await self.nc.jetstream().stream_info(self.stream)
        except NotFoundError:
            return 0
        return int(info.state.messages)

    async def messages(self) -> list[Any]:
        js = self.nc.jetstream()
        info = await js.stream_info(self.stream)
        return [
            await js.get_msg(self.stream, seq)
            for seq in range(info.state.first_seq, info.state.last_seq + 1)
        ]


def sink_for(store: SqliteStore, url: str, tmp_path: Path, **options: Any) -> JetStreamSink:
    opts = Options(url=url, **({"retry_max": 0.5, "refused_initial": 0.5} | options))
    return JetStreamSink(store, opts, StoreCursor(store), status_file=tmp_path / "status.json")


async def test_events_arrive_with_subjects_ids_and_cyrus_json(
    store: tuple[SqliteStore, EventBus], nats_server: NatsServer, tmp_path: Path
) -> None:
    db, bus = store
    bob = await db.create_user("bob.smith", "pw")
    sink = sink_for(db, nats_server.url, tmp_path)
    await sink.start()
    bus.add_listener(sink.wake)
    try:
        await until(lambda: _state(sink, "ok"))
        head = await db.change_log_head()
        await db.append(
            bob.id, "INBOX", [NewMessage(message("one")), NewMessage(message("two"))], ORIGIN
        )
        await db.create_mailbox(bob.id, "Lists", ORIGIN)
        async with Reader(nats_server.url) as reader:
            await until(lambda: _has(reader, 3))
            msgs = await reader.messages()
            info = await reader.nc.jetstream().stream_info(jetstream.DEFAULT_STREAM)
    finally:
        await sink.stop()
    assert [m.subject for m in msgs] == ["imapd.MessageAppend.bob%2Esmith"] * 2 + [
        "imapd.MailboxCreate.bob%2Esmith"
    ]
    assert [m.headers["Nats-Msg-Id"] for m in msgs] == [
        f"imapd:{head + 1}:0",
        f"imapd:{head + 1}:1",
        f"imapd:{head + 2}:0",
    ]
    # The payload is the sink's Cyrus JSON, byte for byte (notify/sink.py render).
    expected = []
    for seq, kind, payload in await db.change_log(head, 10):
        change = read_change(kind, seq, payload)
        assert change is not None
        for event in events_for(change, Policy()):
            expected.append(to_json(await render(db, event, sink.fmt, pid=sink.pid)))
    assert [m.data.decode() for m in msgs] == expected
    assert json.loads(msgs[0].data)["event"] == "MessageAppend"
    # The stream was created with the documented defaults.
    from nats.js.api import DiscardPolicy, StorageType

    assert info.config.subjects == ["imapd.>"]
    assert info.config.storage == StorageType.FILE
    assert info.config.max_age == jetstream.DEFAULT_MAX_AGE
    assert info.config.max_bytes == jetstream.DEFAULT_MAX_BYTES
    assert info.config.discard == DiscardPolicy.OLD
    assert await db.event_cursor(CURSOR_NAME) == head + 2


async def _state(sink: JetStreamSink, state: str) -> bool:
    return sink.health.state == state


async def _status_is(path: Path, state: str) -> bool:
    """The status file (written just after the state changes) says ``state``."""
    try:
        return bool(json.loads(path.read_text())["state"] == state)
    except (FileNotFoundError, ValueError):
        return False


async def _has(reader: Reader, n: int) -> bool:
    return await reader.count() >= n


async def test_nats_down_at_start_then_killed_mid_run(
    store: tuple[SqliteStore, EventBus], nats_binary: str, tmp_path: Path
) -> None:
    """Commits never wait for NATS; events wait in the outbox, go out once it is back, and
    after a kill -9 of nats-server mid-run resume where the acks stopped: each once, in
    order."""
    db, bus = store
    bob = await db.create_user("bob", "pw")
    nats_server = NatsServer(nats_binary, tmp_path / "js")
    # A first start with NATS down: the cursor starts at the outbox's end once connected,
    # so record it by hand as if the sink had run before.
    await db.set_event_cursor(CURSOR_NAME, await db.change_log_head())
    head = await db.change_log_head()
    sink = sink_for(db, nats_server.url, tmp_path)
    await sink.start()
    bus.add_listener(sink.wake)
    try:
        await until(lambda: _state(sink, "disconnected"))
        await until(lambda: _status_is(tmp_path / "status.json", "disconnected"))
        async with asyncio.timeout(5):  # commits go on at their own pace meanwhile
            for i in range(20):
                await db.append(bob.id, "INBOX", [NewMessage(message(f"m{i}"))], ORIGIN)
        nats_server.start()
        async with Reader(nats_server.url) as reader:
            await until(lambda: _has(reader, 20))
        for i in range(20, 40):
            await db.append(bob.id, "INBOX", [NewMessage(message(f"m{i}"))], ORIGIN)
            if i == 25:
                nats_server.kill()
        await until(lambda: _state(sink, "disconnected"))
        nats_server.start()
        async with Reader(nats_server.url) as reader:
            await until(lambda: _has(reader, 40))
            await until(lambda: _state(sink, "ok"))
            msgs = await reader.messages()
    finally:
        await sink.stop()
        nats_server.stop()
    ids = [m.headers["Nats-Msg-Id"] for m in msgs]
    assert ids == [f"imapd:{head + 1 + i}:0" for i in range(40)]
    subjects = [json.loads(m.data)["uri"] for m in msgs]
    assert [s.rsplit("=", 1)[1] for s in subjects] == [str(i + 1) for i in range(40)]


async def test_a_refusing_stream_is_reported_not_hammered(
    store: tuple[SqliteStore, EventBus],
    nats_server: NatsServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stream configured by the operator (max_msgs 3, discard new) is used as it is; the
    fourth message is refused: a warning with the server's reason, status "refused", one
    attempt per back-off step; once the limit is raised the rest goes in, in order."""
    import nats
    from nats.js.api import DiscardPolicy, StreamConfig

    db, bus = store
    bob = await db.create_user("bob", "pw")
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    config = StreamConfig(name="EV", subjects=["imapd.>"], max_msgs=3, discard=DiscardPolicy.NEW)
    await js.add_stream(config)
    sink = sink_for(db, nats_server.url, tmp_path, stream="EV")
    await sink.start()
    bus.add_listener(sink.wake)
    try:
        await until(lambda: _state(sink, "ok"))
        head = await db.change_log_head()
        for i in range(6):
            await db.append(bob.id, "INBOX", [NewMessage(message(f"m{i}"))], ORIGIN)
        await until(lambda: _state(sink, "refused"))
        attempts = sink.attempts
        await asyncio.sleep(2.0)  # back-off 0.5, 1, 2 s: at most 3 more rounds
        assert sink.attempts - attempts <= 3
        status = json.loads((tmp_path / "status.json").read_text())
        assert status["state"] == "refused"
        assert "maximum messages exceeded" in status["error"]
        assert any(
            "refuses messages" in r.getMessage() and r.levelname == "WARNING"
            for r in caplog.records
        )
        info = await js.stream_info("EV")
        assert info.state.messages == 3
        await js.update_stream(
            StreamConfig(name="EV", subjects=["imapd.>"], max_msgs=100, discard=DiscardPolicy.NEW)
        )
        await until(lambda: _state(sink, "ok"), timeout=30)  # the first probe is taken

        async def all_in() -> bool:
            return int((await js.stream_info("EV")).state.messages) >= 6

        await until(all_in)
        await asyncio.sleep(0.3)  # nothing more comes
        info = await js.stream_info("EV")
        assert info.state.messages == 6
        msgs = [await js.get_msg("EV", s) for s in range(1, 7)]
        assert [(m.headers or {}).get("Nats-Msg-Id") for m in msgs] == [
            f"imapd:{head + 1 + i}:0" for i in range(6)
        ]
    finally:
        await sink.stop()
        await nc.close()


async def test_a_refusal_in_the_middle_of_the_window_goes_out_again_in_order(
    store: tuple[SqliteStore, EventBus], nats_server: NatsServer, tmp_path: Path
) -> None:
    """A window of 8 un-acked messages; the stream (max_msgs 10, discard new) takes the first
    10 of one 30-message MULTIAPPEND and refuses the 11th, inside the second window. The
    position stops inside the change, after the 10th; once the limit is raised the rest
    goes in after it: 30 messages, each once, in order, never more than 8 in flight."""
    import nats
    from nats.js.api import DiscardPolicy, StreamConfig

    db, bus = store
    bob = await db.create_user("bob", "pw")
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    config = StreamConfig(name="EV", subjects=["imapd.>"], max_msgs=10, discard=DiscardPolicy.NEW)
    await js.add_stream(config)
    sink = sink_for(db, nats_server.url, tmp_path, stream="EV", max_inflight=8)
    await sink.start()
    bus.add_listener(sink.wake)
    try:
        await until(lambda: _state(sink, "ok"))
        head = await db.change_log_head()
        await db.append(bob.id, "INBOX", [NewMessage(message(f"m{i}")) for i in range(30)], ORIGIN)
        await until(lambda: _state(sink, "refused"))
        assert sink.position == Position(head + 1, 9, complete=False)
        assert (await js.stream_info("EV")).state.messages == 10
        await js.update_stream(
            StreamConfig(name="EV", subjects=["imapd.>"], max_msgs=100, discard=DiscardPolicy.NEW)
        )

        async def all_in() -> bool:
            return int((await js.stream_info("EV")).state.messages) >= 30

        await until(all_in, timeout=30)
        await until(lambda: _state(sink, "ok"))
        await asyncio.sleep(0.3)  # nothing more comes
        assert (await js.stream_info("EV")).state.messages == 30
        msgs = [await js.get_msg("EV", s) for s in range(1, 31)]
    finally:
        await sink.stop()
        await nc.close()
    assert [(m.headers or {}).get("Nats-Msg-Id") for m in msgs] == [
        f"imapd:{head + 1}:{i}" for i in range(30)
    ]
    uids = [json.loads(m.data or b"{}")["uri"].rsplit("=", 1)[1] for m in msgs]
    assert uids == [str(i + 1) for i in range(30)]
    assert sink.published == 30
    assert 1 < sink.peak_inflight <= 8
    assert sink.position == Position(head + 1, 29, complete=True)


async def test_nats_restarted_with_a_window_in_flight(
    store: tuple[SqliteStore, EventBus], nats_binary: str, tmp_path: Path
) -> None:
    """nats-server stopped while a window of up to 100 messages is in flight (its acks never
    come), then started again: the sink publishes again from the first message without an
    ack; the stream drops what it already held, so each event is in it once, in order."""
    db, bus = store
    bob = await db.create_user("bob", "pw")
    nats_server = NatsServer(nats_binary, tmp_path / "js")
    nats_server.start()
    sink = sink_for(db, nats_server.url, tmp_path, max_inflight=100, ack_timeout=2.0)
    await sink.start()
    bus.add_listener(sink.wake)
    try:
        await until(lambda: _state(sink, "ok"))
        head = await db.change_log_head()
        await db.append(bob.id, "INBOX", [NewMessage(message(f"m{i}")) for i in range(600)], ORIGIN)
        async with asyncio.timeout(30):
            while sink.published < 150:
                await asyncio.sleep(0.002)
        assert sink.published < 600
        nats_server.stop()
        acked = sink.published
        nats_server.start()
        async with Reader(nats_server.url) as reader:
            await until(lambda: _has(reader, 600), timeout=60)
            await until(lambda: _state(sink, "ok"))
            await asyncio.sleep(0.3)
            msgs = await reader.messages()
    finally:
        await sink.stop()
        nats_server.stop()
    assert [m.headers["Nats-Msg-Id"] for m in msgs] == [f"imapd:{head + 1}:{i}" for i in range(600)]
    assert sink.published + sink.duplicates >= 600
    assert acked < 600


async def test_restart_after_the_dedupe_window_repeats_nothing(
    store: tuple[SqliteStore, EventBus], nats_server: NatsServer, tmp_path: Path
) -> None:
    """A cursor saved behind what the stream holds (a crash between ack and save) and a
    stream whose duplicate window is long gone: the stream's last id is where it resumes."""
    db, bus = store
    bob = await db.create_user("bob", "pw")
    sink = sink_for(db, nats_server.url, tmp_path)
    await sink.start()
    bus.add_listener(sink.wake)
    await until(lambda: _state(sink, "ok"))
    head = await db.change_log_head()
    for i in range(5):
        await db.append(bob.id, "INBOX", [NewMessage(message(f"m{i}"))], ORIGIN)
    async with Reader(nats_server.url) as reader:
        await until(lambda: _has(reader, 5))
    await sink.stop()
    await db.set_event_cursor(CURSOR_NAME, head)  # as if never saved
    import nats

    nc = await nats.connect(nats_server.url)  # forget the ids: no de-duplication left
    from nats.js.api import StreamConfig

    js = nc.jetstream()
    info = await js.stream_info(jetstream.DEFAULT_STREAM)
    cfg: StreamConfig = info.config
    cfg.duplicate_window = 0.1
    await js.update_stream(cfg)
    await nc.close()
    await asyncio.sleep(0.3)
    again = sink_for(db, nats_server.url, tmp_path)
    await again.start()
    bus.add_listener(again.wake)
    try:
        await until(lambda: _state(again, "ok"))
        await db.append(bob.id, "INBOX", [NewMessage(message("m5"))], ORIGIN)
        async with Reader(nats_server.url) as reader:
            await until(lambda: _has(reader, 6))
            await asyncio.sleep(0.3)
            msgs = await reader.messages()
    finally:
        await again.stop()
    assert [m.headers["Nats-Msg-Id"] for m in msgs] == [f"imapd:{head + 1 + i}:0" for i in range(6)]


async def test_stop_publishes_what_is_committed(
    store: tuple[SqliteStore, EventBus], nats_server: NatsServer, tmp_path: Path
) -> None:
    """SIGTERM's path: stop() goes on until the outbox is empty (within its grace), then
    saves the cursor there."""
    db, bus = store
    bob = await db.create_user("bob", "pw")
    sink = sink_for(db, nats_server.url, tmp_path)
    await sink.start()
    bus.add_listener(sink.wake)
    await until(lambda: _state(sink, "ok"))
    head = await db.change_log_head()
    await db.append(bob.id, "INBOX", [NewMessage(message(f"m{i}")) for i in range(300)], ORIGIN)
    await sink.stop(grace=20)
    async with Reader(nats_server.url) as reader:
        assert await reader.count() == 300
    assert await db.event_cursor(CURSOR_NAME) == head + 1
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "stopped"


async def test_acks_are_taken_while_idle(
    store: tuple[SqliteStore, EventBus], nats_server: NatsServer, tmp_path: Path
) -> None:
    """A round's ack is taken at the next turn, not waited for (the next commits' turn
    takes it under load); with no further commits the idle alarm takes it: the position and
    the saved cursor reach the last event without a stop, each event once and in order."""
    db, bus = store
    bob = await db.create_user("bob", "pw")
    sink = sink_for(db, nats_server.url, tmp_path, cursor_interval=0.2)
    await sink.start()
    bus.add_listener(sink.wake)
    try:
        await until(lambda: _state(sink, "ok"))
        first = await db.change_log_head()
        await until(lambda: _saved(db, first))  # the first start saves where it begins
        # One commit on a saved cursor: only the idle alarm can take its ack.
        await db.append(bob.id, "INBOX", [NewMessage(message("m0"))], ORIGIN)
        await until(lambda: _saved(db, first + 1))
        assert sink.position == Position(first + 1, 0, complete=True)
        for i in range(1, 5):
            await db.append(bob.id, "INBOX", [NewMessage(message(f"m{i}"))], ORIGIN)
        await until(lambda: _saved(db, first + 5))
        assert sink.published == 5
        async with Reader(nats_server.url) as reader:
            msgs = await reader.messages()
    finally:
        await sink.stop()
    assert [m.headers["Nats-Msg-Id"] for m in msgs] == [
        f"imapd:{first + 1 + i}:0" for i in range(5)
    ]


async def _saved(db: SqliteStore, seq: int) -> bool:
    return await db.event_cursor(CURSOR_NAME) == seq


async def test_alarm_keeps_one_timer_at_the_earliest_time() -> None:
    """`Alarm.at` keeps an armed timer that rings no later than asked, re-arms for an
    earlier time, and rings once per arming; `cancel` disarms it."""
    loop = asyncio.get_running_loop()
    rings: list[float] = []
    alarm = Alarm(lambda: rings.append(loop.time()))
    asked = loop.time() + 0.05
    alarm.at(asked)
    alarm.at(asked + 60)  # later: the armed timer stays
    await asyncio.sleep(0.2)
    assert len(rings) == 1 and rings[0] >= asked
    alarm.at(loop.time() + 60)
    asked = loop.time() + 0.05
    alarm.at(asked)  # earlier: re-armed
    await asyncio.sleep(0.2)
    assert len(rings) == 2 and rings[1] >= asked
    alarm.at(loop.time() + 0.05)
    alarm.cancel()
    await asyncio.sleep(0.2)
    assert len(rings) == 2


def test_the_core_never_imports_nats() -> None:
    """nats-py is the [nats] extra: the server, the CLI and the sink's module load without it
    (it is imported when a sink connects)."""
    import subprocess
    import sys

    code = (
        "import sys, imapd.server, imapd.cli, imapd.jetstream, notify.jetstream; "
        "from imapd import config; "
        "config.load(None, jetstream_url='nats://h:1', event_notifier='jetstream'); "
        "assert not [m for m in sys.modules if m == 'nats' or m.startswith('nats.')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
