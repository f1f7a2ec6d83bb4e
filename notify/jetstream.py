"""The JetStream sink: change_log -> RFC 5423 events (Cyrus JSON) -> a NATS JetStream stream.

Owns: the publish loop with its cursor, reconnects, back-off and health states (subjects,
ids, options and the stream's defaults: notify/jetstream_names.py; where the cursor is kept
and the status file: notify/jetstream_state.py). Used by the server
(``event_notifier = "jetstream"``, imapd/server.py) and by ``imapd notifyd --method
jetstream`` (imapd/cli/jetstream.py): the same loop, reading the change_log outbox after a
persisted cursor like the other sinks (notify/sink.py, notify/follow.py); only where the
cursor lives and what wakes the loop differ. Must not import imapd. ``nats-py`` (the
``[nats]`` extra) is imported here only, when a sink connects: the core never needs it.

Subjects: ``PREFIX.<event type>.<user>``, ``user`` the account the event belongs to (the
mailbox's owner, else the event's user: as ``imapd events tail --user`` and the bus route
it). Each token is escaped with `subject_token` (docs/jetstream.md has the table): ``%`` and
every octet NATS cannot hold in a token (``.``, ``*``, ``>``, whitespace, controls, DEL,
non-ASCII as its UTF-8 octets) become ``%XX`` (upper-case hex); an empty token becomes
``%``. The mapping is reversible (`subject_token_decode`).

Exactly once into the stream: every message carries ``Nats-Msg-Id: PREFIX:SEQ:INDEX``
(change_log seq, the event's index in its change), so a publish repeated after a crash or a
lost ack is dropped by JetStream's de-duplication (within the stream's duplicate window). The
cursor moves only over messages the stream acknowledged, and at start the sink also reads the
id of the stream's last message under PREFIX and resumes after the later of the two, so a
restart after the window cannot repeat what the stream holds.

In order, by chaining: publishes are pipelined in rounds (what is ready when the sink turns,
within the window) and only a round's last message asks for an ack, taken at the next turn
(the next commits', or an idle alarm's: a round costs one turn of the sink's task). Every
message carries ``Nats-Expected-Last-Msg-Id`` (the id of the message published before it)
or, the first after a (re)start or a resync, ``Nats-Expected-Last-Sequence`` (the stream's
last sequence then), so the stream takes a message only right after its predecessor: a
refused or lost message makes every later one refused too, and the last one's ack stands for
its round. Any other answer (a broken chain, a refusal, a lost ack) ends the window and the
sink resyncs from the stream's state (its last sequence and last message of ours), then
probes one message at a time until one is stored.

Faults: NATS down (at start or later) -> state ``disconnected``, events wait in the outbox,
reconnects with exponential back-off, resumes at the first event not acknowledged. The stream
refusing a message (its limits with ``discard: new``, a message over its size) -> state
``refused``: one warning with the server's reason, then one message at a time, at a slowing
pace (`Options.refused_initial` .. `refused_max`), until it is taken. The state is logged on
each change and written to the status file (`Health`), the sink's health signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notify.bus import change_owner
from notify.cpumeter import CpuMeter
from notify.cyrus import Format, event_fields
from notify.events import Event, Policy, events_for
from notify.follow import Position, start_of
from notify.jetstream_acks import DUPLICATE, NO_RESPONDERS, Alarm, Backoff, read_ack
from notify.jetstream_names import (  # re-exported: imapd/jetstream.py, tests
    DEFAULT_DUPLICATE_WINDOW as DEFAULT_DUPLICATE_WINDOW,
)
from notify.jetstream_names import DEFAULT_MAX_AGE as DEFAULT_MAX_AGE
from notify.jetstream_names import DEFAULT_MAX_BYTES as DEFAULT_MAX_BYTES
from notify.jetstream_names import DEFAULT_PREFIX as DEFAULT_PREFIX
from notify.jetstream_names import DEFAULT_STREAM as DEFAULT_STREAM
from notify.jetstream_names import Options as Options
from notify.jetstream_names import check_prefix as check_prefix
from notify.jetstream_names import check_stream_name as check_stream_name
from notify.jetstream_names import check_url as check_url
from notify.jetstream_names import fit_payload, msg_id, parse_msg_id, subject
from notify.jetstream_names import subject_token as subject_token
from notify.jetstream_names import subject_token_decode as subject_token_decode
from notify.jetstream_state import Cursor, Health
from notify.sink import needs_content, render
from store.api import ChangeFeed
from store.changes import Change
from store.errors import Unavailable

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.js.client import JetStreamContext

log = logging.getLogger("imapd.notify.jetstream")

MSG_ID = "Nats-Msg-Id"
EXPECTED_STREAM = "Nats-Expected-Stream"
EXPECTED_LAST_MSG_ID = "Nats-Expected-Last-Msg-Id"
EXPECTED_LAST_SEQUENCE = "Nats-Expected-Last-Sequence"
#: JetStream's err_codes for a chain expectation that did not hold (the stream's last message
#: is not the one we published before): "wrong last msg ID", "wrong last sequence".
CHAIN_BROKEN = frozenset({10070, 10071})
#: Room kept under the server's max_payload for the headers (id, expected stream).
HEADER_ROOM = 512
RECENT_MAX = 10_000  # published Changes kept for a sink that keeps up (as notify/sink.py)
STATUS_INTERVAL = 5.0  # seconds between status file writes while the state stays the same


# --- the sink ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Outgoing:
    position: Position
    subject: str
    payload: bytes
    msg_id: str


class _Refused(Exception):
    """The stream refused a message (its limits): back off slowly, one at a time."""


class _Unavailable(Exception):
    """No connection, no answer, or no stream: reconnect / re-check with back-off."""


class _ChainBroken(Exception):
    """A round's last ack does not vouch for the round (the chain broke, or the answer is
    not "stored"): resync from the stream's state, then probe one message at a time."""


class JetStreamSink:
    """Publishes the outbox's events after ``cursor`` to the stream. `start` / `wake` /
    `stop`; never raises into its caller, never blocks a store commit."""

    def __init__(
        self,
        store: ChangeFeed,
        options: Options,
        cursor: Cursor,
        *,
        policy: Policy | None = None,
        fmt: Format | None = None,
        status_file: str | Path | None = None,
    ) -> None:
        self.store = store
        self.options = options
        self.cursor = cursor
        self.policy = policy or Policy()
        self.fmt = fmt or Format()
        self.health = Health(status_file, url=options.url, stream=options.stream)
        self.pid = os.getpid()
        self.position: Position | None = None  # last event the stream acknowledged
        self.published = 0  # messages acknowledged (new ones)
        self.duplicates = 0  # acknowledged as duplicates (a repeat the stream dropped)
        self.dropped = 0  # events too large even without content, or unreadable changes
        self.attempts = 0  # publish rounds (a refused stream must not make this race)
        self.peak_inflight = 0  # the most messages awaiting their acks at once
        self.resyncs = 0  # reads of the stream's state after a broken chain or a fault
        self.cpu = CpuMeter()  # the sink's own task and its ack callback (not nats-py's)
        self._saved: Position | None = None
        self._last_save = 0.0
        self._status_written = 0.0
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._reconnected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._probing = False  # after a refusal: one message at a time until one is taken
        self._inbox: str | None = None
        self._inbox_of: NatsClient | None = None
        # The window: rounds published and not yet acknowledged, in order, each as (token
        # of its last message's ack, that message, sent at, messages in the round); the
        # acks by token; `_sent` the last published position (>= `position`).
        self._inflight: deque[tuple[int, Outgoing, float, int]] = deque()
        self._inflight_msgs = 0
        # The chain: the header the next published message carries (its predecessor's id,
        # or the stream's last sequence after a resync); None: resync before publishing.
        self._chain: tuple[str, str] | None = None
        self._stream_seq: int | None = None  # the stream seq of our last stored message
        self._answers: dict[int, Any] = {}  # ack messages by token
        self._sent: Position | None = None
        self._token = 0
        self._floor = 0  # tokens up to here belong to an abandoned window
        self._lost = False  # reconnected: acks of the window may never come
        self._acked = asyncio.Event()  # an ack came (or a reconnection, or one is due)
        self._recent: deque[Change] = deque()  # published, maybe not yet in the stream
        self._bus_head: int | None = None  # the last seq the bus published (server only)
        self._kick = asyncio.Event()  # reconnected: end a back-off early
        self._limit = 1 << 20  # payload limit: the server's max_payload, the stream's
        # Rings when the oldest round's ack is due, and when acks or an unsaved cursor wait
        # while idle: each timer stays armed over the rounds while its time lies ahead.
        self._ack_alarm = Alarm(self._acked.set)
        self._idle_alarm = Alarm(self._wakeup.set)

    # --- life cycle --------------------------------------------------------------------
    async def start(self) -> None:
        await self.health.write(self)
        self._task = asyncio.create_task(self.cpu.timed(self._run()), name="jetstream-sink")
        self._task.add_done_callback(_report_death)

    def wake(self, changes: Sequence[Change] = ()) -> None:
        """The bus listener (and the CLI's publish notices): never blocks. Keeps the
        published Changes (they carry their seqs), so a sink that keeps up does not read
        them back from change_log; any gap or overflow falls back to change_log."""
        recent = self._recent
        if changes:
            self._bus_head = max(self._bus_head or 0, changes[-1].seq)
        if (
            changes
            and len(recent) + len(changes) <= RECENT_MAX
            and (not recent or recent[-1].seq + 1 == changes[0].seq)
        ):
            recent.extend(changes)
        else:
            recent.clear()
        self._wakeup.set()

    async def stop(self, grace: float = 2.0) -> None:
        """Publish what is committed for up to ``grace`` seconds, save the cursor, close."""
        self._stopping.set()
        self._wakeup.set()
        task = self._task
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=grace)
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._ack_alarm.cancel()
        self._idle_alarm.cancel()
        await self._save(force=True)
        nc, self._nc = self._nc, None
        if nc is not None:
            with contextlib.suppress(Exception):  # closing a dead connection: nothing to do
                await asyncio.wait_for(nc.close(), 2.0)
        await self.health.set(self, "stopped")

    # --- the loop ----------------------------------------------------------------------
    async def _run(self) -> None:
        opts = self.options
        retry = Backoff(opts.retry_initial, opts.retry_max)
        refused = Backoff(opts.refused_initial, opts.refused_max)
        ready = False
        while True:  # stopping: until nothing is left (stop's grace cuts it short) or a fault
            delay: float | None = None
            try:
                if self._js is None:
                    await self._connect()
                if not ready:
                    await self._ensure_stream()
                    if self.position is None:
                        await self._resume()
                    if self._sent is None:
                        self._sent = self.position
                    ready = True
                if self._chain is None:
                    await self._resync()
                progress, more = await self._step()
            except _ChainBroken as exc:
                log.info("jetstream: %s; resyncing from the stream", exc)
                probing, self._probing = self._probing, True
                if not probing:
                    continue
                # A probe's own chain broke: the stream's last message changed between our
                # read and the probe (another publisher?): not a tight loop.
                await self.health.set(self, "refused", f"{exc} (another publisher?)")
                delay = refused.next()
            except _Refused as exc:
                self._probing = True
                await self.health.set(self, "refused", str(exc))
                delay = refused.next()
            except (_Unavailable, OSError, TimeoutError) as exc:
                await self.health.set(self, "disconnected", _describe(exc))
                if isinstance(exc, _Unavailable) and "stream" in str(exc):
                    ready = False  # deleted or not there yet: look again
                delay = retry.next()
            except Unavailable as exc:  # the store (a full disk): later
                log.warning("jetstream: the outbox cannot be read: %s", exc.text)
                delay = retry.next()
            except Exception:  # a bug or the store going away: log, keep the cursor, retry
                log.exception(
                    "jetstream: publishing failed after seq %s",
                    self.position.seq if self.position is not None else "-",
                )
                delay = opts.retry_max
            if delay is not None:
                if self._stopping.is_set():
                    return
                await self._pause(delay)
                continue
            retry.reset()
            if progress:
                refused.reset()
            await self.health.set(self, "ok")
            await self._save()
            if more:
                continue
            if self._stopping.is_set():
                return
            await self._idle()

    async def _idle(self) -> None:
        """Wait for a wake-up (commits, not acks); ring again when acks of published rounds
        are still to be taken (``cursor_interval`` after the last round: the cursor is saved
        no more often) or an unsaved cursor falls due. One timer kept armed across rounds,
        not one per round: a ring before it is due only turns the loop once more."""
        interval = self.options.cursor_interval
        if self._inflight:
            self._idle_alarm.at(self._inflight[-1][2] + interval)
        elif self.position != self._saved:
            self._idle_alarm.at(self._last_save + interval)
        await self._wakeup.wait()
        self._wakeup.clear()

    async def _pause(self, delay: float) -> None:
        """Sleep ``delay`` seconds unless stopping or reconnected meanwhile."""
        self._kick.clear()
        stop = asyncio.ensure_future(self._stopping.wait())
        kick = asyncio.ensure_future(self._kick.wait())
        try:
            await asyncio.wait({stop, kick}, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            kick.cancel()

    # --- NATS ----------------------------------------------------------------------------
    async def _connect(self) -> None:
        import nats
        import nats.errors

        opts = self.options

        async def on_error(exc: Exception) -> None:
            log.debug("jetstream: connection error: %s", _describe(exc))

        async def on_disconnected() -> None:
            self._reconnected.clear()

        async def on_reconnected() -> None:
            self._reconnected.set()
            self._lost = bool(self._inflight)
            self._chain = None  # the server may have lost its last message: ask it again
            self._acked.set()
            self._kick.set()
            self._wakeup.set()

        try:
            nc = await nats.connect(
                servers=[u.strip() for u in opts.url.split(",")],
                name=f"imapd-{os.getpid()}",
                user_credentials=opts.creds,
                connect_timeout=opts.connect_timeout,
                # One attempt here (our back-off retries a first connection, so that the
                # sink's state says "disconnected"); once connected, nats-py reconnects on
                # its own, without end (the options it reads at each disconnection).
                allow_reconnect=False,
                max_reconnect_attempts=1,  # nats-py: two tries of the server, 0.1 s apart
                reconnect_time_wait=0.1,
                error_cb=on_error,
                disconnected_cb=on_disconnected,
                reconnected_cb=on_reconnected,
            )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise _Unavailable(_describe(exc)) from exc
        nc.options["allow_reconnect"] = True
        nc.options["max_reconnect_attempts"] = -1
        nc.options["reconnect_time_wait"] = min(2.0, opts.retry_max)
        self._reconnected.set()
        self._nc = nc
        self._js = nc.jetstream(timeout=opts.ack_timeout)

    def _live(self) -> JetStreamContext:
        if self._js is None or self._nc is None or not self._nc.is_connected:
            raise _Unavailable("not connected")
        return self._js

    async def _ensure_stream(self) -> None:
        """The stream as configured, or created with the documented defaults."""
        import nats.errors
        from nats.js import api
        from nats.js.errors import APIError, NotFoundError

        opts = self.options
        js = self._live()
        try:
            info = await js.stream_info(opts.stream)
        except NotFoundError:
            config = api.StreamConfig(
                name=opts.stream,
                subjects=[f"{opts.subject_prefix}.>"],
                storage=api.StorageType.FILE,
                retention=api.RetentionPolicy.LIMITS,
                discard=api.DiscardPolicy.OLD,
                max_age=opts.max_age,
                max_bytes=opts.max_bytes,
                duplicate_window=opts.duplicate_window,
            )
            try:
                await js.add_stream(config)
            except APIError as exc:
                if exc.err_code != 10058:  # "stream name already in use": another producer
                    raise _Unavailable(f"stream {opts.stream} not created: {exc}") from exc
            log.info(
                "jetstream: created stream %s (subjects %s.>, file storage, max age "
                "%.0f s, max bytes %d)",
                opts.stream,
                opts.subject_prefix,
                opts.max_age,
                opts.max_bytes,
            )
            self._limit = self._max_payload()
            return
        except (nats.errors.Error, APIError) as exc:
            raise _Unavailable(f"stream {opts.stream}: {_describe(exc)}") from exc
        subjects = info.config.subjects or []
        self._limit = self._max_payload(info.config.max_msg_size)
        log.info(
            "jetstream: using stream %s as configured (subjects %s)",
            opts.stream,
            " ".join(subjects),
        )

    def _max_payload(self, max_msg_size: int | None = None) -> int:
        """What one message may hold: the server's max_payload, the stream's max_msg_size."""
        limit = self._nc.max_payload if self._nc is not None else 1 << 20
        if max_msg_size is not None and max_msg_size > 0:
            limit = min(limit, max_msg_size)
        return limit

    async def _resume(self) -> None:
        """The later of the saved cursor and the stream's last message of ours; on a first
        start (neither), the outbox's current end: history is not replayed."""
        saved = await self.cursor.load()
        head = await self.store.change_log_head()
        in_stream = await self._stream_position()
        if in_stream is not None and in_stream.seq > head:
            log.warning(
                "jetstream: stream %s holds seq %d, beyond this outbox's end %d: "
                "another store's events? ignored",
                self.options.stream,
                in_stream.seq,
                head,
            )
            in_stream = None
        known = [p for p in (saved, in_stream) if p is not None]
        if not known:
            self.position = Position(head, -1, complete=True)
            await self._save(force=True)
            log.info("jetstream: first start, from change_log seq %d", head)
            return
        self.position = max(known, key=_order)
        self._saved = saved
        log.info(
            "jetstream: resuming after change_log seq %d (event %d)",
            self.position.seq,
            self.position.index,
        )

    async def _stream_position(self) -> Position | None:
        found = await self._stream_last()
        return None if found is None else found[0]

    async def _stream_last(self) -> tuple[Position, int] | None:
        """The stream's last message under PREFIX: its position and its stream seq (None:
        none, or not an id of ours)."""
        import nats.errors
        from nats.js.errors import APIError, NotFoundError

        opts = self.options
        js = self._live()
        try:
            msg = await js.get_last_msg(opts.stream, f"{opts.subject_prefix}.>")
        except NotFoundError:
            return None
        except (nats.errors.Error, APIError) as exc:
            raise _Unavailable(f"stream {opts.stream}: {_describe(exc)}") from exc
        value = (msg.headers or {}).get(MSG_ID)
        position = parse_msg_id(opts.subject_prefix, value) if isinstance(value, str) else None
        return None if position is None or msg.seq is None else (position, int(msg.seq))

    # --- the window ----------------------------------------------------------------------
    async def _replies(self) -> str:
        """The inbox our publishes' acks come to (one subscription per connection). Ours, not
        nats-py's publish_async: its future never completes when the stream answers an error
        with code 503 (as "maximum messages exceeded" is), and we need that answer. An ack
        is kept by its token (the reply subject's last token) and wakes the loop; tokens of
        an abandoned window (at or under `_floor`) are ignored."""
        nc = self._nc
        assert nc is not None
        if self._inbox is not None and self._inbox_of is nc:
            return self._inbox
        inbox = nc.new_inbox()
        answers = self._answers
        acked = self._acked

        meter = self.cpu

        async def on_reply(msg: Any) -> None:
            with meter:
                tail = msg.subject.rpartition(".")[2]
                if not tail.isdigit() or int(tail) <= self._floor:
                    return
                answers[int(tail)] = msg  # read by `_collect`, in the sink's task
                acked.set()

        await nc.subscribe(f"{inbox}.*", cb=on_reply)
        self._inbox, self._inbox_of = inbox, nc
        return inbox

    async def _step(self) -> tuple[bool, bool]:
        """One turn of the window: take the acks that arrived (the position moves over the
        acknowledged rounds), publish what fits in the window, then, when messages are in
        flight and nothing more is ready (the batch did not fill the room), wait for an ack
        in the same turn. Returns (progress, more): progress when the position moved or
        messages went out; more when the loop should turn again at once (messages in flight,
        or more may be ready), else it idles until woken. So a round costs two turns (publish
        and wait; take the ack), not four. Any fault abandons the window: the next turn
        resyncs from the stream's state and publishes from there."""
        try:
            moved = self._collect()
            window = 1 if self._probing else self.options.max_inflight
            room = window - self._inflight_msgs
            published = full = False
            if room > 0:
                limit = min(room, self.options.batch)
                # Wake-ups until now are for what is read below (the bus hands Changes over
                # synchronously): one turn per burst of commits, not one per commit.
                self._wakeup.clear()
                batch = await self._next_batch(limit)
                if batch:
                    await self._publish(batch)
                    published = True
                    full = len(batch) >= limit
            if not self._inflight:
                self.position = self._sent  # all acknowledged, and changes without events
                return moved or published, False
            if full:
                return True, True  # more may be ready
            if published and not self._stopping.is_set():
                # Its ack is taken at the next turn: the next commits' (most rounds under
                # load), else the idle alarm's; a turn per round, not one more per ack.
                return True, False
            await self._await_ack()
            return True, True
        except BaseException:
            self._abandon()
            raise

    def _abandon(self) -> None:
        """Forget the window: its late acks are ignored; resync before publishing again."""
        self._inflight.clear()
        self._inflight_msgs = 0
        self._answers.clear()
        self._floor = self._token
        self._sent = self.position
        self._chain = None

    async def _resync(self) -> None:
        """Where the stream stands: its last sequence (the next message's expectation) and
        its last message of ours (the position moves there if the stream is ahead: the chain
        kept everything before it in order). Read in this order, so a message landing in
        between makes the next one's expectation fail rather than be skipped."""
        import nats.errors
        from nats.js.errors import APIError

        opts = self.options
        js = self._live()
        self.resyncs += 1
        try:
            info = await js.stream_info(opts.stream)
        except (nats.errors.Error, APIError) as exc:
            raise _Unavailable(f"stream {opts.stream}: {_describe(exc)}") from exc
        last_seq = int(info.state.last_seq or 0)
        found = await self._stream_last()
        head = await self.store.change_log_head()
        if found is not None and found[0].seq <= head:
            ours, seq = found
            position = self.position
            if position is None or _order(ours) > _order(position):
                if self._stream_seq is not None and seq > self._stream_seq:
                    self.published += seq - self._stream_seq  # taken, their acks not asked
                self.position = ours
            self._stream_seq = seq
        self._sent = self.position
        self._chain = (EXPECTED_LAST_SEQUENCE, str(last_seq))

    def _collect(self) -> bool:
        """Move the position over the acknowledged rounds of the window; raise at a round
        whose last ack does not vouch for it, or when the oldest one waited ``ack_timeout``
        (or a reconnection lost it)."""
        inflight = self._inflight
        answers = self._answers
        moved = False
        while inflight:
            token, out, sent, count = inflight[0]
            reply = answers.pop(token, None)
            if reply is None:
                if self._lost:
                    self._lost = False
                    raise _Unavailable(f"reconnected: acks lost (seq {out.position.seq})")
                if asyncio.get_running_loop().time() - sent >= self.options.ack_timeout:
                    raise _Unavailable(
                        f"no acknowledgement within {self.options.ack_timeout} s "
                        f"(seq {out.position.seq})"
                    )
                break
            inflight.popleft()
            self._inflight_msgs -= count
            answer = read_ack(reply)
            if isinstance(answer, int):  # stored at this stream seq: the whole round is
                self.published += count
                self._stream_seq = answer
            elif answer is DUPLICATE and count == 1:
                self.duplicates += 1
            elif answer is NO_RESPONDERS:
                raise _Unavailable(
                    f"no stream takes {out.subject} (stream {self.options.stream} deleted?)"
                )
            elif answer is DUPLICATE:  # the earlier ones of the round: not known
                raise _ChainBroken(f"the last of {count} messages was a duplicate")
            else:
                assert isinstance(answer, dict)
                text = (
                    f"{answer.get('description')} (code {answer.get('code')}, "
                    f"err_code {answer.get('err_code')}; seq {out.position.seq})"
                )
                if count > 1 or answer.get("err_code") in CHAIN_BROKEN:
                    raise _ChainBroken(text)
                raise _Refused(text)
            self.position = out.position
            self._probing = False
            moved = True
        self._lost = False
        return moved

    async def _publish(self, batch: list[Outgoing]) -> None:
        """One round: every message chained to the one before it; the last asks for the
        ack that stands for the round."""
        import nats.errors

        self._live()
        nc = self._nc
        assert nc is not None and self._chain is not None
        inbox = await self._replies()
        now = asyncio.get_running_loop().time()
        stream = self.options.stream
        self.attempts += 1
        last = batch[-1]
        try:
            for out in batch:
                if not nc.is_connected:  # nats-py would buffer it behind a gap
                    raise _Unavailable("not connected")
                name, value = self._chain
                headers = {MSG_ID: out.msg_id, name: value}
                if out is last:
                    headers[EXPECTED_STREAM] = stream
                    self._token += 1
                    reply = f"{inbox}.{self._token}"
                    await nc.publish(out.subject, out.payload, reply=reply, headers=headers)
                else:
                    # Chained to our previous message, which no other stream can hold as
                    # its last (the chain starts at a message that names our stream):
                    # Nats-Expected-Stream is not needed here (nats-py builds each header
                    # through a regex: a third of the publish's work, profiled).
                    if name == EXPECTED_LAST_SEQUENCE:
                        headers[EXPECTED_STREAM] = stream
                    await nc.publish(out.subject, out.payload, headers=headers)
                self._chain = (EXPECTED_LAST_MSG_ID, out.msg_id)
                self._sent = out.position
        except nats.errors.Error as exc:
            raise _Unavailable(_describe(exc)) from exc
        self._inflight.append((self._token, last, now, len(batch)))
        self._inflight_msgs += len(batch)
        self.peak_inflight = max(self.peak_inflight, self._inflight_msgs)

    async def _await_ack(self) -> None:
        """Until an ack comes or the oldest round's ack is due. New commits do not end
        the wait: they are published with the acks' next turn, together (one publish round
        per ack round trip, as many events in it as came meanwhile, within the window)."""
        self._ack_alarm.at(self._inflight[0][2] + self.options.ack_timeout)
        await self._acked.wait()
        self._acked.clear()

    async def _next_batch(self, limit: int) -> list[Outgoing]:
        """Up to ``limit`` events after the last published one (stopping inside a change if
        need be: the position holds the event's index); changes without events move that
        point on (so the outbox is not read again for them)."""
        assert self._sent is not None
        position = self._sent
        out: list[Outgoing] = []
        fmt, pid, wants_content = self.fmt, self.pid, self.fmt.wants_content
        for seq, change in await self._changes(start_of(position), limit):
            events = [] if change is None else events_for(change, self.policy)
            skip = position.index if seq == position.seq and not position.complete else -1
            for index, event in enumerate(events):
                if index <= skip:
                    continue
                assert change is not None
                at = Position(seq, index, index == len(events) - 1)
                if wants_content and needs_content(event, fmt):
                    fields = await render(self.store, event, fmt, pid=pid)
                else:  # the usual case: no store read, so no coroutine per event
                    fields = event_fields(event, fmt, pid=pid)
                item = self._outgoing(change, event, at, fields)
                if item is not None:
                    out.append(item)
                    if len(out) >= limit:
                        return out
            if not out:  # nothing to publish up to here: step over this change for good
                self._sent = Position(seq, len(events) - 1, complete=True)
        return out

    async def _changes(self, after: int, limit: int) -> list[tuple[int, Change | None]]:
        """Up to ``limit`` changes after seq ``after`` (None: a row this version cannot
        read): from what the bus handed over when it holds them all from there, else from
        the store's change-log follower (`ChangeFeed.follow`)."""
        recent = self._recent
        while recent and recent[0].seq <= after:
            recent.popleft()
        if recent and recent[0].seq == after + 1:
            return [(c.seq, c) for c in itertools.islice(recent, limit)]
        if not recent and self._bus_head is not None and after >= self._bus_head:
            return []  # the bus told of nothing newer (every commit goes through it)
        out: list[tuple[int, Change | None]] = []

        def unreadable(seq: int, kind: str) -> None:
            log.warning("jetstream: change_log seq %d (%s) cannot be read; skipped", seq, kind)
            self.dropped += 1
            out.append((seq, None))

        follower = self.store.follow(after, unreadable=unreadable)
        async with contextlib.aclosing(follower):
            async for change in follower:
                out.append((change.seq, change))
                if len(out) >= limit:
                    break
        return out

    def _outgoing(
        self, change: Change, event: Event, position: Position, fields: dict[str, object]
    ) -> Outgoing | None:
        """``fields`` (notify/sink.py `render`) as the message to publish, or None (dropped:
        too large even without messageContent and messageHeaders)."""
        prefix = self.options.subject_prefix
        limit = self._limit - HEADER_ROOM
        fitted = fit_payload(fields, limit)
        if fitted is None:
            self.dropped += 1
            log.warning(
                "jetstream: %s (seq %d) larger than %d bytes: dropped, %d in total",
                event.type,
                event.seq,
                limit,
                self.dropped,
            )
            return None
        data, shed = fitted
        if shed:
            log.info(
                "jetstream: %s (seq %d) sent without %s (NATS max_payload)",
                event.type,
                event.seq,
                ", ".join(shed),
            )
        return Outgoing(
            position,
            subject(prefix, event.type, change_owner(change)),
            data,
            msg_id(prefix, position.seq, position.index),
        )

    async def _save(self, *, force: bool = False) -> None:
        position = self.position
        if position is None or position == self._saved:
            return
        loop = asyncio.get_running_loop()
        if not force and loop.time() - self._last_save < self.options.cursor_interval:
            return
        try:
            await self.cursor.save(position)
        except Unavailable as exc:  # a full disk: the ids keep it exactly once meanwhile
            log.warning("jetstream: cursor %d not saved: %s", position.seq, exc.text)
            return
        self._saved = position
        self._last_save = loop.time()
        if force or self._last_save - self._status_written >= STATUS_INTERVAL:
            self._status_written = self._last_save
            await self.health.write(self)  # the counters; a change of state writes at once


def _order(position: Position) -> tuple[int, bool, int]:
    return (position.seq, position.complete, position.index)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _report_death(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error(
            "jetstream sink stopped: events wait in the outbox until the next start",
            exc_info=task.exception(),
        )
