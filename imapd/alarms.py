"""The calendar alarm scheduler: one timer for the store's earliest alarm (docs/calendar.md).

Owns: when to ask the store to fire (`store.sqlite.calendar`), and the clocks. The next alarm
of every object is kept in the store, not here: this task only sleeps until the earliest of
them (or until a commit that may have changed it), then calls `fire_calendar_alarms`, whose
transaction logs the CalendarAlarm changes and advances the objects together. A restart
starts from the store again: alarms that fell due meanwhile fire at once, back to
``calendar_alarm_lookback``; older ones are skipped with a log line.

Clocks: `SystemClock` (the wall clock) and `ManualClock`, which stands still until advanced:
the tests' clock, and the server's when ``calendar_test_clock`` is set (a test-only option:
the whole server, store timestamps included, then runs on it; see docs/calendar.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Sequence
from typing import Protocol

from store.changes import (
    AclChanged,
    Change,
    MailboxCreated,
    MailboxRenamed,
    MessagesAdded,
    MetadataChanged,
)
from store.errors import Unavailable

log = logging.getLogger("imapd.alarms")

#: Changes after which the earliest alarm may be earlier than the one the timer waits for.
_RESCHEDULING = (MessagesAdded, MetadataChanged, MailboxCreated, MailboxRenamed, AclChanged)
#: What the calendar index looks for in an appended message's structure (the stores'
#: ``_CALENDAR_PART``): one without it is never indexed, so cannot bring an alarm.
_CALENDAR_PART = '"calendar"'


def _may_reschedule(change: Change) -> bool:
    """False for an APPEND/COPY of messages none of which the calendar index can hold: no
    look for the next alarm (a store query) after every ordinary delivery."""
    if isinstance(change, MessagesAdded):
        return any(
            m.structure is None or _CALENDAR_PART in m.structure.lower() for m in change.messages
        )
    return True


#: Seconds to wait before trying again after a failed firing (a full disk, a bug).
RETRY_AFTER = 60.0


class AlarmStore(Protocol):
    """What the scheduler needs of the store (store/sqlite/calendar.py implements it)."""

    async def sync_calendar_index(self) -> int: ...

    async def next_calendar_alarm(self) -> dt.datetime | None: ...

    async def fire_calendar_alarms(self, lookback: dt.timedelta) -> int: ...


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """Aware UTC now."""
        ...

    async def wait(self, until: dt.datetime | None, wake: asyncio.Event) -> None:
        """Return at ``until`` (None: never) or when ``wake`` is set, whichever first (or
        sooner: the caller looks at the store again either way)."""
        ...


#: The longest the wall clock is trusted to the loop's monotonic timer: a wall clock set
#: forward (NTP, a suspended VM) delays an alarm by at most this much.
MAX_SLEEP = 300.0


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    async def wait(self, until: dt.datetime | None, wake: asyncio.Event) -> None:
        timeout = (
            MAX_SLEEP
            if until is None
            else min(MAX_SLEEP, max(0.0, (until - self.now()).total_seconds()))
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout)


class ManualClock:
    """A clock that moves only when told (`advance`, `set`); waiters then look again."""

    def __init__(self, start: dt.datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start.astimezone(dt.UTC)
        self._moved = asyncio.Event()

    def now(self) -> dt.datetime:
        return self._now

    def set(self, when: dt.datetime) -> None:
        self._now = when.astimezone(dt.UTC)
        self._moved.set()

    def advance(self, seconds: float) -> None:
        self.set(self._now + dt.timedelta(seconds=seconds))

    async def wait(self, until: dt.datetime | None, wake: asyncio.Event) -> None:
        while until is None or self._now < until:
            self._moved.clear()
            waiters = [
                asyncio.ensure_future(wake.wait()),
                asyncio.ensure_future(self._moved.wait()),
            ]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
            if wake.is_set():
                return


class AlarmScheduler:
    """The task firing calendar alarms; `wake` is its bus listener."""

    def __init__(self, store: AlarmStore, clock: Clock, lookback: float) -> None:
        self.store = store
        self.clock = clock
        self.lookback = dt.timedelta(seconds=lookback)
        self._wake = asyncio.Event()
        #: Alarms fired by this process (for logs and tests).
        self.fired = 0

    def wake(self, changes: Sequence[Change] = ()) -> None:
        """Bus listener: look again when a change may have brought an earlier alarm."""
        if any(isinstance(c, _RESCHEDULING) and _may_reschedule(c) for c in changes):
            self._wake.set()

    async def run(self) -> None:
        try:
            indexed = await self.store.sync_calendar_index()
        except Exception:  # the mailboxes are indexed at their next change instead
            log.exception("calendar: annotated mailboxes not indexed at start")
        else:
            if indexed:
                log.info("calendar: %d annotated mailboxes indexed", indexed)
        while True:
            self._wake.clear()
            due = await self.store.next_calendar_alarm()
            if due is not None and due <= self.clock.now():
                try:
                    count = await self.store.fire_calendar_alarms(self.lookback)
                except Exception as exc:
                    if isinstance(exc, Unavailable):  # a full disk: the store logged it
                        log.warning("calendar alarms not fired: %s; retrying", exc.text)
                    else:
                        log.exception("calendar alarms not fired; retrying")
                    await self.clock.wait(
                        self.clock.now() + dt.timedelta(seconds=RETRY_AFTER), self._wake
                    )
                    continue
                self.fired += count
                if count:
                    log.info("calendar: %d alarms fired", count)
                continue
            await self.clock.wait(due, self._wake)
