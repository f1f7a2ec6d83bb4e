"""The webhook listener (notify/webhook.py) against a real HTTP receiver and a real datagram
socket: bodies, signature, seq header, retries and backoff, Retry-After, skipped 4xx, batches,
the bounded queue, the state file and the catch-up from a real SQLite outbox."""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from notify import cyrus, webhook
from notify.cyrus import SEQ_PARAM, Format, datagram, event_fields
from notify.events import Event, EventType
from notify.webhook import Outbox, Position, StateFile, Webhook
from store.api import NewMessage
from store.changes import MailboxRef, Origin
from store.sqlite import SqliteStore
from tests.notify.listener import short_socket_path
from tests.notify.receiver import DROP, Receiver

SECRET = b"s3cret"
ORIGIN = Origin(session="s1", user="bob", service="imap", client="127.0.0.1:1234")


def event(seq: int, name: str = "MessageAppend", **extra: object) -> str:
    return cyrus.to_json(
        {"event": name, "uri": f"imap://bob@localhost/INBOX;n={seq}", **extra, SEQ_PARAM: seq}
    )


def send(path: str, *texts: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        for text in texts:
            s.sendto(datagram("log", text), path)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.close()


class Sleeps:
    """An injected sleep: records the delays asked for and yields without waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


Run = Callable[..., Awaitable[Webhook]]


@pytest.fixture
async def run(receiver: Receiver) -> AsyncIterator[Run]:
    """Start a webhook listener on a fresh socket: ``await run(**options)`` -> its Webhook,
    with ``.path`` set; stopped (and the socket removed) at teardown."""
    running: list[tuple[asyncio.Event, asyncio.Task[int]]] = []

    async def start(**options: Any) -> Webhook:
        options.setdefault("retry_initial", 0.01)
        hook = Webhook(options.pop("url", receiver.url), **options)
        path = short_socket_path()
        stop = asyncio.Event()
        task = asyncio.create_task(webhook.serve(path, hook, stop, grace=1.0))
        while not Path(path).exists():  # bound before serve's first await
            await asyncio.sleep(0.001)
        running.append((stop, task))
        hook.path = path  # type: ignore[attr-defined]
        return hook

    yield start
    for stop, task in running:
        stop.set()
        await asyncio.wait_for(task, 10)


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)


async def received(receiver: Receiver, count: int) -> list[Any]:
    return await asyncio.to_thread(receiver.wait, count)


# --- pure parts ------------------------------------------------------------------------------
def test_signature_is_hmac_sha256_of_the_body() -> None:
    body = b'{"event":"Login"}'
    expected = hmac.new(SECRET, body, "sha256").hexdigest()
    assert webhook.sign(SECRET, body) == "sha256=" + expected


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("http://h.example/", ("h.example", 80, "/", "h.example", False)),
        ("http://127.0.0.1:8080/a/b?x=1", ("127.0.0.1", 8080, "/a/b?x=1", "127.0.0.1:8080", False)),
        ("https://h.example", ("h.example", 443, "/", "h.example", True)),
        ("http://[::1]:81/p", ("::1", 81, "/p", "[::1]:81", False)),
    ],
)
def test_parse_url(url: str, target: tuple[Any, ...]) -> None:
    t = webhook.parse_url(url)
    assert (t.host, t.port, t.path, t.host_header, t.tls) == target


@pytest.mark.parametrize("url", ["ftp://h/", "http:///x", "http://u:p@h/", "h:80"])
def test_parse_url_refuses(url: str) -> None:
    with pytest.raises(ValueError, match="url"):
        webhook.parse_url(url)


def test_retry_after_seconds_and_date() -> None:
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert webhook.retry_after("7") == 7.0
    assert webhook.retry_after("Fri, 02 Jan 2026 03:04:35 GMT", now) == 30.0
    assert webhook.retry_after("Fri, 02 Jan 2026 03:00:00 GMT", now) == 0.0  # past: now
    assert webhook.retry_after("999999") == webhook.RETRY_AFTER_MAX
    assert webhook.retry_after("soon") is None
    assert webhook.retry_after(None) is None


@pytest.mark.parametrize(
    ("status", "retry"),
    [
        (500, True),
        (502, True),
        (503, True),
        (429, True),
        (408, True),
        (400, False),
        (401, False),
        (404, False),
        (410, False),
        (301, False),
    ],
)
def test_which_statuses_are_retried(status: int, retry: bool) -> None:
    assert webhook.retryable(status) is retry


def test_state_file_round_trip_is_atomic(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "hook.state")
    assert state.load() is None
    state.save(Position(12, 1))
    state.save(Position(13, 0, complete=True))
    assert state.load() == Position(13, 0, complete=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hook.state"]  # no temp left
    assert json.loads((tmp_path / "hook.state").read_text()) == {
        "seq": 13,
        "index": 0,
        "complete": True,
    }
    (tmp_path / "hook.state").write_text("{not json")
    with pytest.raises(ValueError, match="state file"):
        state.load()


def test_seq_param_is_opt_in_and_before_content() -> None:
    mailbox = MailboxRef(id=1, name="INBOX", owner="bob", uidvalidity=7)
    ev = Event(
        EventType.MailboxCreate,
        42,
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        ORIGIN,
        "bob",
        mailbox=mailbox,
    )
    assert SEQ_PARAM not in event_fields(ev, Format(), pid=1)
    fields = event_fields(ev, Format(extra_params=frozenset({SEQ_PARAM})), pid=1)
    assert fields[SEQ_PARAM] == 42
    assert list(fields)[-1] == SEQ_PARAM
    assert cyrus.KEY_ORDER.index(SEQ_PARAM) < cyrus.KEY_ORDER.index("messageHeaders")


def test_accept_numbers_events_of_one_change_and_skips_duplicates() -> None:
    hook = Webhook("http://127.0.0.1:9/")
    first = hook.accept(event(7))
    assert first is not None and first.position == Position(7, 0)
    second = hook.accept(event(7, "FlagsSet"))
    assert second is not None and second.position == Position(7, 1)
    assert hook.accept(event(6)) is None  # older: already seen
    third = hook.accept(event(9))
    assert third is not None and third.position == Position(9, 0)
    bare = hook.accept('{"event":"Login"}')  # no seq: delivered, not numbered
    assert bare is not None and bare.position is None
    assert hook.duplicates == 1


# --- against a receiver ----------------------------------------------------------------------
async def test_one_event_per_post_signed_with_seq_header(
    run: Run, receiver: Receiver, tmp_path: Path
) -> None:
    state = StateFile(tmp_path / "state")
    hook = await run(secret=SECRET, state=state)
    text = event(5, "MessageAppend", user="bob")
    send(hook.path, text)  # type: ignore[attr-defined]
    (req,) = await received(receiver, 1)
    assert req.path == "/hook?k=1"
    assert req.body == text.encode()  # the server's JSON as it is
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-imapd-seq"] == "5"
    assert req.headers["x-imapd-signature"] == webhook.sign(SECRET, req.body)
    assert hmac.compare_digest(
        req.headers["x-imapd-signature"],
        "sha256=" + hmac.new(SECRET, req.body, "sha256").hexdigest(),
    )
    await until(lambda: state.load() == Position(5, 0))


async def test_unsigned_without_secret(run: Run, receiver: Receiver) -> None:
    hook = await run()
    send(hook.path, event(1))  # type: ignore[attr-defined]
    (req,) = await received(receiver, 1)
    assert "x-imapd-signature" not in req.headers


async def test_500_twice_then_200_retries_with_backoff(run: Run, receiver: Receiver) -> None:
    receiver.script[:] = [(500, {}), (503, {})]
    sleeps = Sleeps()
    hook = await run(sleep=sleeps, retry_initial=0.5, retry_max=60.0, jitter=lambda: 1.0)
    send(hook.path, event(3))  # type: ignore[attr-defined]
    reqs = await received(receiver, 3)
    assert len({r.body for r in reqs}) == 1  # the same body each time
    await until(lambda: hook.delivered == 1)
    assert sleeps.delays == [0.5, 1.0]  # doubling
    assert hook.retries == 2


async def test_backoff_has_jitter_and_a_cap() -> None:
    hook = Webhook("http://127.0.0.1:9/", retry_initial=1.0, retry_max=8.0, jitter=lambda: 0.0)
    assert [hook._backoff(a) for a in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    hook.jitter = lambda: 1.0
    assert [hook._backoff(a) for a in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


async def test_429_honours_retry_after(run: Run, receiver: Receiver) -> None:
    receiver.script[:] = [(429, {"Retry-After": "7"}), (503, {"Retry-After": "2"})]
    sleeps = Sleeps()
    hook = await run(sleep=sleeps)
    send(hook.path, event(3))  # type: ignore[attr-defined]
    await received(receiver, 3)
    await until(lambda: hook.delivered == 1)
    assert sleeps.delays == [7.0, 2.0]


async def test_408_and_dropped_connections_are_retried(run: Run, receiver: Receiver) -> None:
    receiver.script[:] = [(408, {}), (DROP, {})]
    sleeps = Sleeps()
    hook = await run(sleep=sleeps)
    send(hook.path, event(3))  # type: ignore[attr-defined]
    await until(lambda: hook.delivered == 1)
    assert receiver.attempts == 3 and len(sleeps.delays) == 2


async def test_connection_refused_is_retried(receiver: Receiver) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    calls = 0

    async def sleep(delay: float) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:  # the receiver "comes up": point the hook at it
            hook.target = webhook.parse_url(receiver.url)

    hook = Webhook(f"http://127.0.0.1:{port}/hook", sleep=sleep)
    assert await hook.deliver([webhook.Item(event(1), Position(1, 0))])
    assert calls == 2 and hook.retries == 2
    (req,) = await received(receiver, 1)
    assert req.events()[0][SEQ_PARAM] == 1


async def test_4xx_is_logged_and_skipped(
    run: Run, receiver: Receiver, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.script[:] = [(400, {})]
    state = StateFile(tmp_path / "state")
    hook = await run(state=state)
    send(hook.path, event(1), event(2))  # type: ignore[attr-defined]
    reqs = await received(receiver, 2)
    assert [r.json()[SEQ_PARAM] for r in reqs] == [1, 2]  # 1 not retried
    await until(lambda: hook.delivered == 1)
    assert hook.skipped == 1
    assert "400" in caplog.text and "skipped" in caplog.text
    await until(lambda: state.load() == Position(2, 0))


async def test_batches_of_up_to_n_events(run: Run, receiver: Receiver) -> None:
    receiver.hold.clear()  # the first POST waits: the others queue up behind it
    hook = await run(batch=3, secret=SECRET)
    send(hook.path, *(event(s) for s in range(1, 8)))  # type: ignore[attr-defined]
    await until(lambda: hook.position is not None and hook.position.seq == 7)
    receiver.hold.set()
    events = await asyncio.to_thread(receiver.events, 7)
    assert [e[SEQ_PARAM] for e in events] == list(range(1, 8))
    reqs = list(receiver.requests)
    sizes = [len(r.json()["events"]) for r in reqs]
    assert max(sizes) == 3 and all(size == 3 for size in sizes[1:-1])  # as many as queued
    for r in reqs:
        assert r.headers["x-imapd-seq"] == str(r.json()["events"][-1][SEQ_PARAM])  # the last
        assert r.headers["x-imapd-signature"] == webhook.sign(SECRET, r.body)
    reqs = [r for r in reqs if len(r.json()["events"]) > 1]
    assert reqs[0].body.startswith(b'{"events":[{"event":')


async def test_full_queue_stops_reading_datagrams(run: Run, receiver: Receiver) -> None:
    receiver.hold.clear()
    hook = await run(queue=2)
    send(hook.path, *(event(s) for s in range(1, 9)))  # type: ignore[attr-defined]
    await asyncio.to_thread(receiver.wait_attempts, 1)
    await until(lambda: hook.queue.qsize() == 2)
    await asyncio.sleep(0.05)
    # One in flight, two queued, one read and waiting for room; the rest wait in the socket.
    assert hook.position is not None and hook.position.seq == 4
    receiver.hold.set()
    reqs = await received(receiver, 8)
    assert [r.json()[SEQ_PARAM] for r in reqs] == list(range(1, 9))


async def test_events_without_seq_are_delivered(
    run: Run, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    hook = await run()
    send(hook.path, '{"event":"Login"}', '{"event":"Logout"}')  # type: ignore[attr-defined]
    reqs = await received(receiver, 2)
    assert [r.json()["event"] for r in reqs] == ["Login", "Logout"]
    assert "x-imapd-seq" not in reqs[0].headers
    assert caplog.text.count(SEQ_PARAM) == 1  # warned once


async def test_restart_skips_what_the_state_file_acknowledged(
    run: Run, receiver: Receiver, tmp_path: Path
) -> None:
    state = StateFile(tmp_path / "state")
    state.save(Position(10, 0))
    hook = await run(state=state)
    send(hook.path, event(9), event(10, "FlagsSet"), event(11))  # type: ignore[attr-defined]
    reqs = await received(receiver, 2)
    assert [r.json()[SEQ_PARAM] for r in reqs] == [10, 11]
    assert hook.duplicates == 1
    await until(lambda: state.load() == Position(11, 0))


# --- catch-up from the outbox ----------------------------------------------------------------
def message(subject: str) -> bytes:
    return (
        f"From: a@example.org\r\nSubject: {subject}\r\nMessage-ID: <{subject}@x>\r\n\r\nbody\r\n"
    ).encode()


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, Path]]:
    path = tmp_path / "imapd.sqlite3"
    store = await SqliteStore.open(path, lambda changes: None, scrypt_n=16)
    yield store, path
    await store.close()


async def test_catch_up_from_the_outbox_then_datagrams(
    run: Run, receiver: Receiver, tmp_path: Path, outbox: tuple[SqliteStore, Path]
) -> None:
    store, path = outbox
    bob = await store.create_user("bob", "pw")
    head = await store.change_log_head()
    await store.append(
        bob.id, "INBOX", [NewMessage(message("one")), NewMessage(message("two"))], ORIGIN
    )
    await store.append(bob.id, "INBOX", [NewMessage(message("three"))], ORIGIN)
    state = StateFile(tmp_path / "state")
    state.save(Position(head, 5, complete=True))
    reader, close = await webhook.open_outbox(path)
    fmt = Format(extra_params=frozenset({*cyrus.DEFAULT_EXTRA_PARAMS, "messageContent"}))
    try:
        hook = await run(state=state, outbox=Outbox(reader, fmt=fmt))
        reqs = await received(receiver, 3)
        events = [r.json() for r in reqs]
        assert [e["event"] for e in events] == ["MessageAppend"] * 3
        assert [e[SEQ_PARAM] for e in events] == [head + 1, head + 1, head + 2]
        assert [e["uri"].rsplit("=", 1)[1] for e in events] == ["1", "2", "3"]
        assert "Subject: three" in events[2]["messageContent"]["3"]
        assert events[0]["vnd.cmu.midset"] == ["<one@x>"]
        await until(lambda: state.load() == Position(head + 2, 0, complete=True))
        # The server's datagrams of the same changes (its socket was away) are duplicates.
        send(
            hook.path,  # type: ignore[attr-defined]
            event(head + 1),
            event(head + 1),
            event(head + 2),
            event(head + 3, "MessageExpunge"),
        )
        (late,) = (await received(receiver, 4))[3:]
        assert late.json()["event"] == "MessageExpunge"
        assert hook.duplicates == 3
    finally:
        await close()


async def test_catch_up_resumes_inside_a_change(
    run: Run, receiver: Receiver, tmp_path: Path, outbox: tuple[SqliteStore, Path]
) -> None:
    store, path = outbox
    bob = await store.create_user("bob", "pw")
    await store.append(bob.id, "INBOX", [NewMessage(message(f"m{i}")) for i in range(3)], ORIGIN)
    head = await store.change_log_head()
    state = StateFile(tmp_path / "state")
    state.save(Position(head, 0))  # the first of the MULTIAPPEND's three was acknowledged
    reader, close = await webhook.open_outbox(path)
    try:
        await run(state=state, outbox=Outbox(reader))
        reqs = await received(receiver, 2)
        assert [r.json()["uri"].rsplit("=", 1)[1] for r in reqs] == ["2", "3"]
        await until(lambda: state.load() == Position(head, 2, complete=True))
    finally:
        await close()


async def test_first_start_with_an_outbox_begins_at_its_end(
    run: Run, receiver: Receiver, tmp_path: Path, outbox: tuple[SqliteStore, Path]
) -> None:
    store, path = outbox
    await store.create_user("bob", "pw")  # history: six MailboxCreate
    head = await store.change_log_head()
    state = StateFile(tmp_path / "state")
    reader, close = await webhook.open_outbox(path)
    try:
        hook = await run(state=state, outbox=Outbox(reader))
        await until(lambda: state.load() == Position(head, -1, complete=True))
        send(hook.path, event(head), event(head + 1))  # type: ignore[attr-defined]
        (req,) = await received(receiver, 1)
        assert req.json()[SEQ_PARAM] == head + 1
    finally:
        await close()


async def test_outbox_is_read_only(tmp_path: Path, outbox: tuple[SqliteStore, Path]) -> None:
    _, path = outbox
    reader, close = await webhook.open_outbox(path)
    try:
        assert isinstance(reader, SqliteStore)
        with pytest.raises(Exception, match=r"readonly|read-only|query_only"):
            await reader.set_event_cursor("x", 1)
    finally:
        await close()
    with pytest.raises(FileNotFoundError):
        await webhook.open_outbox(tmp_path / "missing.sqlite3")
