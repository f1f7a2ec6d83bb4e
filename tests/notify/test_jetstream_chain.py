"""The JetStream sink's chaining (notify/jetstream.py) against a real nats-server -js: each
message carries Nats-Expected-Last-Msg-Id (or, after a resync, Nats-Expected-Last-Sequence),
only a round's last one asks for an ack, and a stream whose state is not what the sink
expects makes it resync from the stream, never store out of order, twice, or lose a message."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from notify import jetstream
from notify.bus import EventBus
from notify.follow import Position
from store.api import NewMessage
from store.sqlite import SqliteStore
from tests.helpers.natsserver import NatsServer
from tests.notify import test_jetstream as base
from tests.notify.test_jetstream import ORIGIN, Reader, _has, _state, message, sink_for, until

# The fixtures of the sink's main tests (a nats-server -js, a SQLite store with its bus).
nats_binary = base.nats_binary
nats_server = base.nats_server
store = base.store


async def test_the_round_after_a_refused_message_is_refused_too(
    store: tuple[SqliteStore, EventBus], nats_server: NatsServer, tmp_path: Path
) -> None:
    """The ordering edge the chain closes: a stream with max_bytes and discard new refuses a
    large message and would take a smaller one after it. Four events of one MULTIAPPEND in
    one round (small, large, small, small): the stream holds the first only, the sink says
    "refused" and stands after it; once the limit is raised all four are in, in order."""
    import nats
    from nats.js.api import DiscardPolicy, StreamConfig

    db, bus = store
    bob = await db.create_user("bob", "pw")
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(name="EV", subjects=["imapd.>"], max_bytes=6000, discard=DiscardPolicy.NEW)
    )
    sink = sink_for(db, nats_server.url, tmp_path, stream="EV")
    await sink.start()
    bus.add_listener(sink.wake)
    try:
        await until(lambda: _state(sink, "ok"))
        head = await db.change_log_head()
        big = message("big" + "x" * 8000)
        mails = [message("s0"), big, message("s2"), message("s3")]
        await db.append(bob.id, "INBOX", [NewMessage(m) for m in mails], ORIGIN)
        await until(lambda: _state(sink, "refused"))
        assert "maximum bytes" in (sink.health.error or "")
        info = await js.stream_info("EV")
        assert info.state.messages == 1  # not s2 nor s3 after the refused one
        assert sink.position == Position(head + 1, 0, complete=False)
        await js.update_stream(
            StreamConfig(
                name="EV", subjects=["imapd.>"], max_bytes=1 << 20, discard=DiscardPolicy.NEW
            )
        )

        async def all_in() -> bool:
            return int((await js.stream_info("EV")).state.messages) >= 4

        await until(all_in, timeout=30)
        await until(lambda: _state(sink, "ok"))
        await asyncio.sleep(0.3)  # nothing more comes
        info = await js.stream_info("EV")
        msgs = [await js.get_msg("EV", s) for s in range(1, info.state.last_seq + 1)]
    finally:
        await sink.stop()
        await nc.close()
    assert [(m.headers or {}).get("Nats-Msg-Id") for m in msgs] == [
        f"imapd:{head + 1}:{i}" for i in range(4)
    ]
    assert [json.loads(m.data or b"{}")["uri"].rsplit("=", 1)[1] for m in msgs] == [
        "1",
        "2",
        "3",
        "4",
    ]


async def test_a_stream_ahead_of_the_sink_is_resynced_without_duplicates(
    store: tuple[SqliteStore, EventBus], nats_server: NatsServer, tmp_path: Path
) -> None:
    """The stream's last message id is not the one the sink published last: another
    instance already put the next two events in (the same ids), and the duplicate window has
    passed, so de-duplication no longer drops repeats. The sink's round is refused by its
    chain, it resyncs from the stream (its last message of ours) and goes on after it: each
    event once, in order, no loss."""
    import nats

    db, _bus = store  # the sink is woken by hand: it does not see the two commits at once
    bob = await db.create_user("bob", "pw")
    sink = sink_for(db, nats_server.url, tmp_path)
    await sink.start()
    nc: Any = None
    try:
        await until(lambda: _state(sink, "ok"))
        head = await db.change_log_head()
        for i in range(3):
            await db.append(bob.id, "INBOX", [NewMessage(message(f"m{i}"))], ORIGIN)
        sink.wake()
        async with Reader(nats_server.url) as reader:
            await until(lambda: _has(reader, 3))
        await until(lambda: _acked(sink, head + 3))
        resyncs = sink.resyncs
        # Two more commits, published by "another instance" with the sink's ids and chain.
        for i in range(3, 5):
            await db.append(bob.id, "INBOX", [NewMessage(message(f"m{i}"))], ORIGIN)
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        info = await js.stream_info(jetstream.DEFAULT_STREAM)
        last = await js.get_msg(jetstream.DEFAULT_STREAM, info.state.last_seq)
        for seq in (head + 4, head + 5):
            ack = await js.publish(
                last.subject,
                b"{}",
                headers={
                    "Nats-Msg-Id": f"imapd:{seq}:0",
                    "Nats-Expected-Last-Msg-Id": f"imapd:{seq - 1}:0",
                },
            )
            assert not ack.duplicate
        cfg = info.config
        cfg.duplicate_window = 0.1  # the ids are forgotten: only the chain stands now
        await js.update_stream(cfg)
        await asyncio.sleep(0.5)
        sink.wake()
        await until(lambda: _acked(sink, head + 5))
        assert sink.resyncs > resyncs
        await db.append(bob.id, "INBOX", [NewMessage(message("m5"))], ORIGIN)
        sink.wake()
        async with Reader(nats_server.url) as reader:
            await until(lambda: _has(reader, 6))
            await asyncio.sleep(0.3)  # nothing more comes
            msgs = await reader.messages()
        assert sink.health.state == "ok"
    finally:
        await sink.stop()
        if nc is not None:
            await nc.close()
    assert [m.headers["Nats-Msg-Id"] for m in msgs] == [f"imapd:{head + 1 + i}:0" for i in range(6)]
    assert sink.duplicates == 0


async def test_a_foreign_message_breaks_the_chain_not_the_order(
    store: tuple[SqliteStore, EventBus], nats_server: NatsServer, tmp_path: Path
) -> None:
    """Another publisher puts a message without an id of ours into the stream between two
    rounds: the next round's chain does not hold, the sink resyncs (the stream's last
    sequence) and publishes again: our events each once, in order, the foreign one where it
    landed; one ack per round (fewer acks than messages)."""
    import nats

    db, bus = store
    bob = await db.create_user("bob", "pw")
    sink = sink_for(db, nats_server.url, tmp_path)
    await sink.start()
    bus.add_listener(sink.wake)
    nc: Any = None
    try:
        await until(lambda: _state(sink, "ok"))
        head = await db.change_log_head()
        await db.append(bob.id, "INBOX", [NewMessage(message(f"a{i}")) for i in range(20)], ORIGIN)
        async with Reader(nats_server.url) as reader:
            await until(lambda: _has(reader, 20))
            await until(lambda: _acked(sink, head + 1))
            rounds, resyncs = sink.attempts, sink.resyncs
            nc = await nats.connect(nats_server.url)
            await nc.jetstream().publish("imapd.Other.x", b"foreign")
            await db.append(
                bob.id, "INBOX", [NewMessage(message(f"b{i}")) for i in range(20)], ORIGIN
            )
            await until(lambda: _has(reader, 41))
            await until(lambda: _acked(sink, head + 2))
            await asyncio.sleep(0.3)  # nothing more comes
            msgs = await reader.messages()
        assert sink.resyncs > resyncs
        assert sink.attempts - rounds < 20  # not one round per message
        assert sink.health.state == "ok"
    finally:
        await sink.stop()
        if nc is not None:
            await nc.close()
    ids = [(m.headers or {}).get("Nats-Msg-Id") for m in msgs]
    assert ids[20] is None and msgs[20].data == b"foreign"
    assert ids[:20] + ids[21:] == [f"imapd:{head + 1 + c}:{i}" for c in range(2) for i in range(20)]
    assert sink.duplicates == 0


async def _acked(sink: jetstream.JetStreamSink, seq: int) -> bool:
    """The sink's position covers all of change ``seq``."""
    pos = sink.position
    return pos is not None and (pos.seq > seq or (pos.seq == seq and pos.complete))
