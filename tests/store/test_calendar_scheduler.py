"""The alarm scheduler (imapd/alarms.py) on a real store with a `ManualClock` both share: one
timer for the earliest alarm, woken by a commit that brings an earlier one; nothing fires
before its time; each alarm fires once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from imapd.alarms import AlarmScheduler, ManualClock
from store.api import NewMessage
from store.changes import CalendarAlarmFired, Change
from store.metadata import MetadataLimits
from store.sqlite import SqliteStore
from tests.helpers.store import ORIGIN
from tests.store.calendar_data import ics, message, utc, valarm, vevent

pytest.importorskip("icalendar")
pytest.importorskip("recurring_ical_events")


def event(uid: str, start: str) -> NewMessage:
    return NewMessage(
        message(ics(vevent(f"DTSTART:{start}", uid=uid, alarms=(valarm("TRIGGER:-PT10M"),))))
    )


async def test_one_timer_woken_by_an_earlier_alarm(tmp_path: Path) -> None:
    clock = ManualClock(utc(2026, 3, 2, 9, 0))
    fired: list[CalendarAlarmFired] = []
    arrived = asyncio.Event()
    scheduler: AlarmScheduler | None = None
    task: asyncio.Task[None] | None = None

    def publish(changes: Sequence[Change]) -> None:
        fired.extend(c for c in changes if isinstance(c, CalendarAlarmFired))
        if any(isinstance(c, CalendarAlarmFired) for c in changes):
            arrived.set()
        if scheduler is not None:
            scheduler.wake(changes)

    store = await SqliteStore.open(tmp_path / "s.sqlite3", publish, scrypt_n=16, clock=clock.now)
    try:
        user = await store.create_user("bob", "pw")
        await store.create_mailbox(user.id, "Calendar", ORIGIN)
        await store.set_metadata(
            user.id,
            "Calendar",
            [("/shared/vendor/kolab/folder-type", b"event.default")],
            ORIGIN,
            MetadataLimits(1024, 16),
        )
        scheduler = AlarmScheduler(store, clock, lookback=3600)
        task = asyncio.create_task(scheduler.run())
        await store.append(user.id, "Calendar", [event("late", "20260302T110000Z")], ORIGIN)
        await asyncio.sleep(0)
        # The timer waits for 10:50; an object due at 09:20 arrives and must wake it.
        await store.append(user.id, "Calendar", [event("soon", "20260302T093000Z")], ORIGIN)
        clock.advance(19 * 60)  # 09:19: nothing yet
        for _ in range(20):
            await asyncio.sleep(0)
        assert fired == []
        clock.advance(60)  # 09:20
        await asyncio.wait_for(arrived.wait(), 10)
        assert [c.ical_uid for c in fired] == ["soon"]
        arrived.clear()
        clock.advance(90 * 60)  # 10:50
        await asyncio.wait_for(arrived.wait(), 10)
        assert [(c.ical_uid, c.alarm_time) for c in fired] == [
            ("soon", "20260302T092000Z"),
            ("late", "20260302T105000Z"),
        ]
        assert await store.next_calendar_alarm() is None
    finally:
        if task is not None:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        await store.close()
