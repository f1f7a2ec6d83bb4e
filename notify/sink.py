"""The notification socket sink: change_log -> Cyrus events -> notifyd datagrams, durably.

Owns: delivery of every committed change's events, in commit order, as one UNIX datagram
each in notifyd's layout (notify/cyrus.py), to ``notifysocket``. Must not import imapd.

Unlike Cyrus (fire and forget: an event is lost when notifyd is absent; docs/events.md) the
sink is a durable consumer of the ``change_log`` outbox:
- It follows change_log (`ChangeFeed.follow`) after its own cursor (``event_cursors``),
  so events wait in the outbox while the listener is absent, refusing or full, and go out in
  order when it is back, also after a restart or a kill -9: at-least-once (a change whose
  events were sent but whose cursor was not yet saved is sent again after a crash).
- The bus only wakes it (`wake`, a whole-feed listener that never blocks); it never polls.
  While the listener is unavailable it retries on a timer with exponential backoff.
- The socket is non-blocking: a slow or absent listener never blocks an IMAP command, and
  the sink never holds the store's writer lock while sending.
- The cursor is saved after each batch, at most every ``cursor_interval`` seconds (1 s), so
  a burst of APPENDs costs one small write, not one per change (after a crash up to that
  much is sent again). Each save is a durable write: at 0.1 s one client's APPENDs paid a
  tenth more CPU for the fsyncs (docs/events.md "Cost"); under load a save shares the
  APPENDs' group commit.
- A sink that keeps up takes the Changes the bus hands it (they carry their seqs) instead
  of reading them back from change_log; any gap (a restart, an outage, a change made by
  the CLI in another process) falls back to change_log, so a CLI change goes out with the
  server's next change or at the next start.
- ``backlog_max`` bounds the outbox the sink will catch up on: beyond it the oldest changes
  are skipped, counted in ``dropped`` and logged.
- An event larger than the datagram limit (Cyrus 3.x: min(SO_SNDBUF/10 - 32, 65536)) is sent
  without messageContent (then messageHeaders); only if it still does not fit is it
  dropped, counted and logged (Cyrus drops it whole).
- The first start begins at the current end of change_log: history made before events were
  configured is not replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
from collections import deque
from collections.abc import Sequence

from notify.cyrus import Format, event_fields, fit
from notify.events import Event, EventType, Policy, events_for
from store.api import ChangeFeed
from store.changes import Change
from store.errors import Unavailable

log = logging.getLogger("imapd.notify.sink")

CURSOR_NAME = "notifysocket"
MAX_DATAGRAM = 65536  # Cyrus 3.x's ceiling
BATCH = 500  # changes sent between two checks of the backlog bound
RECENT_MAX = 10_000  # published Changes kept in memory for a sink that keeps up
#: Errors meaning "listener absent, refusing or full": keep the event, retry later.
_RETRY_ERRNOS = frozenset(
    {
        errno.ENOENT,
        errno.ECONNREFUSED,
        errno.EAGAIN,
        errno.ENOBUFS,
        errno.ENOTSOCK,
        errno.EPROTOTYPE,
        errno.ENOTCONN,
    }
)


def _report_death(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error(
            "notify sink stopped: events wait in the outbox until the next start",
            exc_info=task.exception(),
        )


async def render(store: ChangeFeed, event: Event, fmt: Format, *, pid: int) -> dict[str, object]:
    """An event's Cyrus JSON fields as the sink sends them (before `fit`); also
    ``imapd events tail`` (imapd/cli/events.py). messageContent/messageHeaders are read
    now: a message expunged before its event went out has none."""
    content: dict[int, bytes] | None = None
    if needs_content(event, fmt):
        assert event.mailbox is not None and event.uid is not None
        records = await store.fetch(event.mailbox.id, [event.uid], content=True)
        content = {r.uid: r.content for r in records if r.content is not None}
    return event_fields(event, fmt, pid=pid, content=content)


_NEW_MESSAGE = frozenset({EventType.MessageAppend, EventType.MessageNew})


def needs_content(event: Event, fmt: Format) -> bool:
    """Whether `render` reads the message from the store for ``event`` (messageContent or
    messageHeaders asked for a new message); when not, its fields are
    ``event_fields(event, fmt, pid=pid)`` at once, without a coroutine (the JetStream sink's
    hot path, notify/jetstream.py)."""
    return (
        fmt.wants_content
        and event.type in _NEW_MESSAGE
        and event.mailbox is not None
        and event.uid is not None
    )


def datagram_limit(sock: socket.socket) -> int:
    """Cyrus 3.x's rule (imap/notify.c): min(SO_SNDBUF / 10 - 32, 65536)."""
    sndbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    return max(512, min(sndbuf // 10 - 32, MAX_DATAGRAM))


class NotifySink:
    def __init__(
        self,
        store: ChangeFeed,
        path: str,
        *,
        method: str = "log",
        policy: Policy | None = None,
        fmt: Format | None = None,
        backlog_max: int = 100_000,
        max_datagram: int | None = None,
        cursor_interval: float = 1.0,
        retry_initial: float = 0.05,
        retry_max: float = 5.0,
        name: str = CURSOR_NAME,
    ) -> None:
        self.store = store
        self.path = path
        self.method = method
        self.policy = policy or Policy()
        self.fmt = fmt or Format()
        self.backlog_max = backlog_max
        self.cursor_interval = cursor_interval
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.name = name
        self.pid = os.getpid()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.limit = max_datagram or datagram_limit(self.sock)
        self.cursor = 0  # last change_log.seq fully delivered
        self.sent = 0  # datagrams sent
        self.dropped = 0  # changes skipped over the backlog bound + events too large
        self.shed = 0  # events sent without messageContent/messageHeaders
        self._saved = 0
        self._partial = 0  # events of change cursor+1 already sent (after a failed send)
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._last_save = 0.0
        self._failing: str | None = None
        self._connected = False
        self._recent: deque[Change] = deque()  # published, maybe not yet sent

    # --- life cycle ----------------------------------------------------------------------
    async def start(self) -> None:
        cursor = await self.store.event_cursor(self.name)
        if cursor is None:
            cursor = await self.store.change_log_head()
            await self.store.set_event_cursor(self.name, cursor)
        self.cursor = self._saved = cursor
        self._task = asyncio.create_task(self._run(), name="notify-sink")
        self._task.add_done_callback(_report_death)
        self._wakeup.set()  # whatever waited in the outbox while we were down

    def wake(self, changes: Sequence[Change] = ()) -> None:
        """The bus listener: never blocks. Rings, and keeps the published Changes (they
        carry their seqs) so that a sink that is caught up skips the change_log read; any
        gap or overflow falls back to reading change_log."""
        recent = self._recent
        if (
            changes
            and len(recent) + len(changes) <= RECENT_MAX
            and (not recent or recent[-1].seq + 1 == changes[0].seq)
        ):
            recent.extend(changes)
        else:
            recent.clear()
        self._wakeup.set()

    async def stop(self, grace: float = 1.0) -> None:
        """Deliver what is already committed for up to ``grace`` seconds, save the
        cursor, close the socket. Whatever is left stays in the outbox for the next start."""
        self._stopping = True
        self._wakeup.set()
        task = self._task
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=grace)
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._save()
        self.sock.close()

    # --- the loop ------------------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = self.retry_initial
        save_due: float | None = None  # when the ring for an unsaved cursor comes
        while True:
            if self.cursor != self._saved and save_due is None:
                # Ring again when the unsaved cursor is due (cheaper than a wait_for per wake).
                save_due = max(loop.time(), self._last_save + self.cursor_interval)
                loop.call_at(save_due, self._wakeup.set)
            await self._wakeup.wait()
            self._wakeup.clear()
            if save_due is not None and loop.time() >= save_due:
                save_due = None
            sent_before = self.sent
            try:
                ok = await self._drain()
            except Exception:  # a bug or the store going away: log, keep the cursor, retry
                log.exception("notify sink: delivery failed at seq %d", self.cursor + 1)
                ok = False
            if self.cursor != self._saved and (
                self._stopping or loop.time() - self._last_save >= self.cursor_interval
            ):
                await self._save()
            if ok:
                backoff = self.retry_initial
                if self._stopping:
                    return
                continue
            if self._stopping:
                return
            if self.sent > sent_before:  # it took some: start the backoff over
                backoff = self.retry_initial
            await asyncio.sleep(backoff)  # the listener is absent or refusing
            backoff = min(backoff * 2, self.retry_max)
            self._wakeup.set()

    def _from_memory(self) -> list[Change] | None:
        """The published Changes right after the cursor, if memory has them all."""
        recent = self._recent
        while recent and recent[0].seq <= self.cursor:
            recent.popleft()
        if recent and recent[0].seq == self.cursor + 1:
            out = list(recent)
            recent.clear()
            return out
        return None

    async def _drain(self) -> bool:
        """Send everything after the cursor; False if the listener stopped taking it."""
        changes = self._from_memory()
        if changes is not None:  # caught up: what the bus handed over is all there is
            for change in changes:
                if not await self._deliver_change(change):
                    self._recent.extendleft(reversed([c for c in changes if c.seq > self.cursor]))
                    return False
                self.cursor = change.seq
                self._partial = 0
            return True
        while True:  # from change_log: a restart, an outage, another process's change
            await self._bound_backlog()
            logged = self.store.follow(self.cursor, unreadable=self._skip_unreadable)
            async with contextlib.aclosing(logged):
                delivered = 0
                async for change in logged:
                    if not await self._deliver_change(change):
                        return False
                    self.cursor = change.seq
                    self._partial = 0
                    delivered += 1
                    if delivered % BATCH == 0 and await self._bound_backlog():
                        break  # the backlog outgrew the bound while we sent: skip ahead
                else:
                    return True

    async def _bound_backlog(self) -> bool:
        """Skip the oldest changes when more than ``backlog_max`` wait; True if it did."""
        head = await self.store.change_log_head()
        if head - self.cursor <= self.backlog_max:
            return False
        skip_to = head - self.backlog_max
        skipped = skip_to - self.cursor
        self.dropped += skipped
        log.warning(
            "notify sink: backlog over %d changes: dropped %d (seq %d..%d), %d in total",
            self.backlog_max,
            skipped,
            self.cursor + 1,
            skip_to,
            self.dropped,
        )
        self.cursor, self._partial = skip_to, 0
        return True

    def _skip_unreadable(self, seq: int, kind: str) -> None:
        """A row this version cannot read, reached in order (all before it delivered)."""
        log.warning("notify sink: change_log seq %d (%s) cannot be read; skipped", seq, kind)
        self.cursor, self._partial = seq, 0

    async def _deliver_change(self, change: Change) -> bool:
        events = events_for(change, self.policy)
        for index in range(self._partial, len(events)):
            if not await self._send(events[index]):
                return False
            self._partial = index + 1
        return True

    async def _send(self, event: Event) -> bool:
        fields = await render(self.store, event, self.fmt, pid=self.pid)
        fitted = fit(fields, self.method, self.limit)
        if fitted is None:
            self.dropped += 1
            log.warning(
                "notify sink: %s (seq %d) larger than %d bytes: dropped, %d in total",
                event.type,
                event.seq,
                self.limit,
                self.dropped,
            )
            return True
        data, shed = fitted
        if shed:
            self.shed += 1
            log.info(
                "notify sink: %s (seq %d) sent without %s (datagram limit %d)",
                event.type,
                event.seq,
                ", ".join(shed),
                self.limit,
            )
        try:
            await self._send_datagram(data)
        except OSError as exc:
            if exc.errno == errno.EMSGSIZE:
                self.dropped += 1
                log.warning(
                    "notify sink: %s (seq %d) refused as too large: dropped", event.type, event.seq
                )
                return True
            if exc.errno not in _RETRY_ERRNOS and not isinstance(exc, ConnectionError):
                raise
            self._reset_socket()
            if self._failing is None:
                log.warning(
                    "notify sink: %s unavailable (%s); events wait in the outbox",
                    self.path,
                    exc.strerror or exc,
                )
            self._failing = exc.strerror or str(exc)
            return False
        if self._failing is not None:
            log.info("notify sink: %s is back; resuming at seq %d", self.path, event.seq)
            self._failing = None
        self.sent += 1
        return True

    async def _send_datagram(self, data: bytes) -> None:
        """Send on a socket connected to the listener. A full listener (EAGAIN) is waited
        for: a connected AF_UNIX datagram socket polls writable when the peer's queue has
        room (Linux unix_dgram_poll), so no timer is needed; an absent or restarted one
        raises (ENOENT, ECONNREFUSED) and the caller backs off."""
        if not self._connected:
            self.sock.connect(self.path)
            self._connected = True
        while True:
            try:
                self.sock.send(data)
                return
            except BlockingIOError:
                if not await self._writable():
                    raise
            except InterruptedError:
                continue

    async def _writable(self) -> bool:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = self.sock.fileno()

        def on_writable() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_writer(fd, on_writable)
        try:
            await asyncio.wait_for(ready, self.retry_max)
        except TimeoutError:
            return False
        finally:
            loop.remove_writer(fd)
        return True

    def _reset_socket(self) -> None:
        """A listener that went away leaves the connected socket useless: start afresh."""
        self.sock.close()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self._connected = False

    async def _save(self) -> None:
        if self.cursor == self._saved:
            return
        cursor = self.cursor
        try:
            await self.store.set_event_cursor(self.name, cursor)
        except Unavailable as exc:  # a full disk: saved at the next turn once there is room
            log.warning("notify sink: cursor %d not saved: %s", cursor, exc.text)
            return
        self._saved = cursor
        self._last_save = asyncio.get_running_loop().time()
